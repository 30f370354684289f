"""The team stack as containers: docker-compose.yml + docker/docker-compose.team.yml, up for real.

The same `.env` variables a user sets; where no registry can be reached, the PostgreSQL and
S3 images are the ones docker/local-images.sh builds (PostgreSQL 15 from Debian's packages,
moto's S3 server from PyPI), chosen through POSTGRES_IMAGE / MINIO_IMAGE as a user would.
One `up` for the scenario, one `down`/`up` to show that nothing is lost.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_repository, run, tool_env
from tests.integration.conftest import (
    KNOWN_ROWS,
    PASSWORDS,
    SECRETS,
    TeamStack,
    http,
    output_bytes,
    pipeline_client,
)

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(2400)]


def test_the_app_runs_the_pipeline_into_postgres_and_s3(
    team_stack: TeamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    assert team_stack.state("app")["ExitCode"] == 0
    run_id = json.loads((team_stack.project / "models" / "mlflow_run.json").read_text())["run_id"]
    mlflow = pipeline_client(team_stack, monkeypatch)
    assert mlflow.get_run(run_id).info.status == "FINISHED"
    assert mlflow.get_model_version_by_alias("iris_classifier", "champion").run_id == run_id
    s3 = boto3.client(
        "s3",
        endpoint_url=team_stack.s3_url,
        aws_access_key_id=SECRETS["MINIO_ROOT_USER"],
        aws_secret_access_key=SECRETS["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )
    keys = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket="mlflow-artifacts", Prefix="artifacts/").get(
            "Contents", []
        )
    ]
    assert any(key.endswith("MLmodel") for key in keys), keys[:20]
    assert "dvc-remote" in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}


def test_serve_answers_with_the_champion(team_stack: TeamStack) -> None:
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    payload = {"dataframe_split": {"columns": columns, "data": list(KNOWN_ROWS.values())}}
    status, body = http(f"{team_stack.serve_url}/invocations", payload)
    assert status == 200, body
    assert json.loads(body)["predictions"] == list(KNOWN_ROWS)


def test_dvc_push_from_the_app_container_and_pull_in_a_teammates_clone(
    team_stack: TeamStack, tmp_path: Path
) -> None:
    """The S3 keys travel in the environment (`-e NAME` takes the value from ours)."""
    keys = {
        "AWS_ACCESS_KEY_ID": SECRETS["MINIO_ROOT_USER"],
        "AWS_SECRET_ACCESS_KEY": SECRETS["MINIO_ROOT_PASSWORD"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    push = (
        "dvc remote add --local --force team s3://dvc-remote/store"
        " && dvc remote modify --local team endpointurl http://minio:9000"
        " && dvc push -r team"
    )
    team_stack.compose(
        "run", "--rm", "--no-deps", *(arg for name in keys for arg in ("-e", name)),
        "app", "sh", "-c", push, env=keys, timeout=600,
    )  # fmt: skip

    # A teammate's clone: the committed dvc.lock, the remote on the published port.
    clone = copy_repository(tmp_path / "teammate")
    shutil.copyfile(team_stack.project / "dvc.lock", clone / "dvc.lock")
    env = tool_env(keys)
    run(["dvc", "remote", "add", "--local", "team", "s3://dvc-remote/store"], cwd=clone, env=env)
    run(["dvc", "remote", "modify", "--local", "team", "endpointurl", team_stack.s3_url],
        cwd=clone, env=env)  # fmt: skip
    run(["dvc", "pull", "-r", "team"], cwd=clone, env=env, timeout=600)
    pushed, pulled = output_bytes(team_stack.project), output_bytes(clone)
    assert "models/pipeline.pkl" in pushed
    assert pulled == pushed


def test_no_secret_on_any_command_line_in_any_container(team_stack: TeamStack) -> None:
    script = 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f" 2>/dev/null; echo; done'
    containers = team_stack.running_containers()
    assert len(containers) >= 4, team_stack.compose("ps").stdout  # postgres, s3, mlflow, serve
    for container in containers:
        listed = run(["docker", "exec", container, "sh", "-c", script], cwd=team_stack.project)
        commands = [line for line in listed.stdout.splitlines() if line.strip()]
        assert commands, container
        for command in commands:
            for secret in PASSWORDS:
                assert secret not in command, (container, command)
    # The auth config file lives in the MLflow container's shared memory, nowhere else.
    mlflow = team_stack.compose("ps", "-q", "mlflow").stdout.strip()
    found = run(["docker", "exec", mlflow, "sh", "-c", "ls /dev/shm /tmp"], cwd=team_stack.project)
    assert "mlflow-auth." in found.stdout.split("/tmp:")[0], found.stdout
    assert "mlflow-auth." not in found.stdout.split("/tmp:")[1], found.stdout


def test_down_and_up_keep_runs_versions_aliases_and_users(
    team_stack: TeamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pipeline_client(team_stack, monkeypatch)
    first_run = json.loads((team_stack.project / "models" / "mlflow_run.json").read_text())
    champion = mlflow.get_model_version_by_alias("iris_classifier", "champion")

    team_stack.compose("down", timeout=300)
    team_stack.up()  # the users job runs again and must succeed; the app trains again

    assert team_stack.state("users")["ExitCode"] == 0
    assert mlflow.get_run(first_run["run_id"]).info.status == "FINISHED"
    versions = mlflow.search_model_versions("name='iris_classifier'")
    assert champion.version in {version.version for version in versions}
    assert len(versions) >= 2  # the second `up` registered another one
    assert mlflow.get_model_version_by_alias("iris_classifier", "champion").version
    second_run = json.loads((team_stack.project / "models" / "mlflow_run.json").read_text())
    assert second_run["run_id"] != first_run["run_id"]
    assert mlflow.get_run(second_run["run_id"]).info.status == "FINISHED"
