"""The team stack as containers: docker-compose.yml + docker/docker-compose.team.yml, up for real.

The same `.env` variables a user sets; where no registry can be reached, the PostgreSQL and
S3 images are the ones docker/local-images.sh builds (PostgreSQL 15 from Debian's packages,
moto's S3 server from PyPI), chosen through POSTGRES_IMAGE / MINIO_IMAGE as a user would.
One `up` for the scenario, one `down`/`up` to show that nothing is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_repository, free_port, run, tool_env
from tests.integration.test_docker import COMPOSE, IMAGE, KNOWN_ROWS, base_image, http

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(2400)]

UP_TIMEOUT_S = 900
FILES = ["-f", "docker-compose.yml", "-f", "docker/docker-compose.team.yml"]
# Pinned upstream images, and the stand-ins docker/local-images.sh builds.
UPSTREAM = {"POSTGRES_IMAGE": "postgres:16.10",
            "MINIO_IMAGE": "minio/minio:RELEASE.2025-09-07T16-13-09Z"}  # fmt: skip
LOCAL = {"POSTGRES_IMAGE": "local/postgres:15-bookworm", "MINIO_IMAGE": "local/s3-moto:5.2.5"}


def _secret(name: str) -> str:
    return f"{name}-{os.urandom(8).hex()}"


SECRETS = {
    "POSTGRES_PASSWORD": _secret("pg"),
    "MINIO_ROOT_USER": "team-s3",
    "MINIO_ROOT_PASSWORD": _secret("s3"),
    "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
    "MLFLOW_AUTH_ADMIN_PASSWORD": _secret("admin"),
    "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret("flask"),
    "MLFLOW_TRACKING_USERNAME": "pipeline",
    "MLFLOW_TRACKING_PASSWORD": _secret("pipeline"),
}
PASSWORDS = [value for key, value in SECRETS.items() if "PASSWORD" in key or "SECRET" in key]


def images() -> dict[str, str]:
    """The pinned images where the engine has them, else the locally built stand-ins."""
    if all(_has_image(image) for image in UPSTREAM.values()):
        return UPSTREAM
    run(["bash", REPO / "docker" / "local-images.sh", base_image()], cwd=REPO, timeout=1500)
    return LOCAL


def _has_image(image: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
    )


@dataclass(frozen=True)
class TeamStack:
    project: Path
    env: dict[str, str]
    mlflow_url: str
    serve_url: str
    s3_url: str

    def compose(
        self, *args: str, check: bool = True, timeout: float = 900, env: dict | None = None
    ):
        return run(
            [COMPOSE, *FILES, *args],
            cwd=self.project,
            env={**self.env, **(env or {})},
            check=check,
            timeout=timeout,
        )

    def running_containers(self) -> list[str]:
        """The containers running now (the finished jobs' are listed too, but exited)."""
        listed = self.compose("ps", "-q").stdout.split()
        states = run(["docker", "inspect", "-f", "{{.State.Running}}", *listed], cwd=self.project)
        return [c for c, up in zip(listed, states.stdout.split(), strict=True) if up == "true"]

    def state(self, service: str) -> dict:
        container = self.compose("ps", "-a", "-q", service).stdout.strip()
        if not container:
            return {}
        inspect = run(["docker", "inspect", "-f", "{{json .State}}", container], cwd=self.project)
        return json.loads(inspect.stdout)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail=40", check=False).stdout

    def up(self) -> None:
        """`up -d` of the pipeline and serving (their dependencies come along), until serve
        is healthy; fails early when a job exits non-zero."""
        self.compose("up", "-d", "app", "serve", timeout=UP_TIMEOUT_S)
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline:
            for job in ("buckets", "users", "app"):
                state = self.state(job)
                if state.get("Status") == "exited" and state.get("ExitCode") != 0:
                    pytest.fail(f"the {job} job exited {state['ExitCode']}\n{self.logs()}")
            if self.state("serve").get("Health", {}).get("Status") == "healthy":
                return
            time.sleep(5)
        pytest.fail(f"the team stack was not up after {UP_TIMEOUT_S} s\n{self.logs()}")

    def as_account(self, username: str, password: str) -> dict[str, str]:
        return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}


@pytest.fixture(scope="module")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is not installed; run docker/ci-setup.sh (make test-docker does)")
    project = copy_repository(tmp_path_factory.mktemp("team-compose") / "project")
    ports = {name: free_port() for name in ("MLFLOW_PORT", "SERVE_PORT", "JUPYTER_PORT",
                                            "MINIO_PORT", "MINIO_CONSOLE_PORT")}  # fmt: skip
    settings = {
        "IMAGE": IMAGE,
        "BASE_IMAGE": base_image(),
        "MLFLOW_WORKERS": "1",
        **images(),
        **{name: str(port) for name, port in ports.items()},
        **SECRETS,
    }
    # What a user writes into .env; compose reads it from the project folder.
    (project / ".env").write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    env = tool_env({"COMPOSE_PROJECT_NAME": f"mlopsteam{os.getpid()}"})
    stack = TeamStack(
        project=project,
        env=env,
        mlflow_url=f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
        serve_url=f"http://127.0.0.1:{ports['SERVE_PORT']}",
        s3_url=f"http://127.0.0.1:{ports['MINIO_PORT']}",
    )
    try:
        stack.compose("build", "app", timeout=1500)
        stack.up()
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)


def client(stack: TeamStack, username: str, password: str, monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)


def pipeline_client(stack: TeamStack, monkeypatch: pytest.MonkeyPatch):
    return client(
        stack, SECRETS["MLFLOW_TRACKING_USERNAME"], SECRETS["MLFLOW_TRACKING_PASSWORD"], monkeypatch
    )


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
    from tests.integration.test_team_setup import _output_bytes

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
    pushed, pulled = _output_bytes(team_stack.project), _output_bytes(clone)
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
