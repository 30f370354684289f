"""The team stack as containers: docker-compose.yml + docker/docker-compose.team.yml, up for real.

The same `.env` variables a user sets; where no registry can be reached, the PostgreSQL and
S3 images are the ones tests/standins/local-images.sh builds (PostgreSQL 15 from Debian's packages,
moto's S3 server from PyPI), chosen through POSTGRES_IMAGE / MINIO_IMAGE as a user would.
One `up` for the scenario, one `down`/`up` to show that nothing is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.compose import TeamStack, client, pipeline_client
from tests.support.http import http
from tests.support.iris import KNOWN_ROWS
from tests.support.repository import copy_repository, output_bytes, set_params
from tests.support.team import passwords, secrets
from tests.support.tools import run, run_queue

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
        aws_access_key_id=secrets()["MINIO_ROOT_USER"],
        aws_secret_access_key=secrets()["MINIO_ROOT_PASSWORD"],
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


S3_KEYS = {
    "AWS_ACCESS_KEY_ID": secrets()["MINIO_ROOT_USER"],
    "AWS_SECRET_ACCESS_KEY": secrets()["MINIO_ROOT_PASSWORD"],
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Accounts made as docs/deploy.md says (`mlpipeline team users ROLE NAME`).
TEAMMATE = ("bob", "bob-pw-" + os.urandom(6).hex())
READER = ("alice", "alice-pw-" + os.urandom(6).hex())


@pytest.fixture(scope="module")
def teammate_clone(team_stack: TeamStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app container `dvc push`es to the S3 remote; a teammate's clone on the host
    `dvc pull`s the committed dvc.lock's outputs through the published port.

    The S3 keys travel in the environment (`-e NAME` takes the value from ours). The remote
    goes to the container's own (global) DVC config: the checkout's .dvc/ is not writable
    there (docs/deploy.md, "Threat model").
    """
    push = (
        "dvc remote add --global --force team s3://dvc-remote/store"
        " && dvc remote modify --global team endpointurl http://minio:9000"
        " && dvc push -r team"
    )
    team_stack.compose(
        "run",
        "--rm",
        "--no-deps",
        *(arg for name in S3_KEYS for arg in ("-e", name)),
        "app",
        "sh",
        "-c",
        push,
        env=S3_KEYS,
        timeout=600,
    )
    clone = copy_repository(tmp_path_factory.mktemp("teammate") / "clone")
    shutil.copyfile(team_stack.project / "dvc.lock", clone / "dvc.lock")
    env = tool_env(S3_KEYS)
    run(["dvc", "remote", "add", "--local", "team", "s3://dvc-remote/store"], cwd=clone, env=env)
    run(
        ["dvc", "remote", "modify", "--local", "team", "endpointurl", team_stack.s3_url],
        cwd=clone,
        env=env,
    )
    run(["dvc", "pull", "-r", "team"], cwd=clone, env=env, timeout=600)
    return clone


def make_account(stack: TeamStack, role: str, account: tuple[str, str]) -> None:
    """As the admin, from the host, in the project whose params.yaml names the experiment."""
    admin = {name: secrets()[name] for name in secrets() if name.startswith("MLFLOW_AUTH_ADMIN")}
    made = run(
        [VENV_BIN / "python", "-m", "mlpipeline", "team", "users", role, account[0]],
        cwd=stack.project,
        env=tool_env(
            {"MLFLOW_TRACKING_URI": stack.mlflow_url, **admin, "TEAM_USER_PASSWORD": account[1]}
        ),
    )
    assert account[1] not in made.stdout + made.stderr


def as_account(
    stack: TeamStack, account: tuple[str, str], through_proxy: bool = False
) -> dict[str, str]:
    """A host process's environment logging in to the team server as `account`: on MLflow's
    loopback port, or through the front door (HTTPS, the test CA) as from another machine."""
    return tool_env({**stack.tracking(through_proxy), **stack.as_account(*account)})


def test_dvc_push_from_the_app_container_and_pull_in_a_teammates_clone(
    team_stack: TeamStack, teammate_clone: Path
) -> None:
    pushed, pulled = output_bytes(team_stack.project), output_bytes(teammate_clone)
    assert "models/pipeline.pkl" in pushed
    assert pulled == pushed


def test_a_teammates_experiment_lands_in_the_same_experiment_and_a_reader_sees_both(
    team_stack: TeamStack, teammate_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_account(team_stack, "pipeline", TEAMMATE)
    make_account(team_stack, "reader", READER)
    ours = json.loads((team_stack.project / "models" / "mlflow_run.json").read_text())
    # The teammate works from another machine: through the proxy, as docs/deploy.md says.
    run(
        ["dvc", "exp", "run", "-S", "train.n_estimators=30"],
        cwd=teammate_clone,
        env=as_account(team_stack, TEAMMATE, through_proxy=True),
        timeout=900,
    )
    theirs = json.loads((teammate_clone / "models" / "mlflow_run.json").read_text())
    assert theirs["run_id"] != ours["run_id"]
    assert theirs["experiment_id"] == ours["experiment_id"]

    reader = client(team_stack, *READER, monkeypatch, through_proxy=True)
    listed = {found.info.run_id for found in reader.search_runs([ours["experiment_id"]])}
    assert {ours["run_id"], theirs["run_id"]} <= listed
    assert reader.get_run(theirs["run_id"]).data.params["n_estimators"] == "30"
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        reader.log_metric(theirs["run_id"], "x", 1.0)
    assert refused.value.error_code == "PERMISSION_DENIED"

    # The reader's own experiment: refused before any stage works, in the project's one line.
    tried = run(
        ["dvc", "exp", "run", "-S", "train.n_estimators=31"],
        cwd=teammate_clone,
        env=as_account(team_stack, READER, through_proxy=True),
        check=False,
        timeout=300,
    )
    output = tried.stdout + tried.stderr
    assert tried.returncode != 0
    expected = (
        f"MLflow server {team_stack.proxy_url}: user {READER[0]!r} may READ experiment "
        "'iris_classification' but not write runs"
    )
    errors = [line for line in output.splitlines() if "] ERROR" in line]
    assert len(errors) == 1 and expected in errors[0], output[-3000:]
    assert "Traceback" not in output and READER[1] not in output
    assert len(reader.search_runs([ours["experiment_id"]])) == len(listed)


def test_no_secret_on_any_command_line_in_any_container(team_stack: TeamStack) -> None:
    script = 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f" 2>/dev/null; echo; done'
    containers = team_stack.running_containers()
    assert len(containers) >= 4, team_stack.compose("ps").stdout  # postgres, s3, mlflow, serve
    for container in containers:
        listed = run(["docker", "exec", container, "sh", "-c", script], cwd=team_stack.project)
        commands = [line for line in listed.stdout.splitlines() if line.strip()]
        assert commands, container
        for command in commands:
            for secret in passwords():
                assert secret not in command, (container, command)
    # The auth config file lives in the MLflow container's shared memory, nowhere else.
    mlflow = team_stack.container("mlflow")
    found = run(["docker", "exec", mlflow, "sh", "-c", "ls /dev/shm /tmp"], cwd=team_stack.project)
    assert "mlflow-auth." in found.stdout.split("/tmp:")[0], found.stdout
    assert "mlflow-auth." not in found.stdout.split("/tmp:")[1], found.stdout


def test_a_killed_database_fails_train_in_seconds_and_repro_heals(
    team_stack: TeamStack, teammate_clone: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`docker kill` of PostgreSQL once train's run is open: one line naming the store within
    30 s, no model version from the run, and a plain `dvc repro` heals once it is back."""
    mlflow = pipeline_client(team_stack, monkeypatch)
    experiment_id = json.loads((team_stack.project / "models" / "mlflow_run.json").read_text())[
        "experiment_id"
    ]
    before = {found.info.run_id for found in mlflow.search_runs([experiment_id])}
    versions = {v.version for v in mlflow.search_model_versions("name='iris_classifier'")}
    set_params(teammate_clone, train__n_estimators=300)
    env = as_account(
        team_stack, (secrets()["MLFLOW_TRACKING_USERNAME"], secrets()["MLFLOW_TRACKING_PASSWORD"])
    )
    log = tmp_path / "repro.log"
    with log.open("w") as output:
        repro = subprocess.Popen(
            ["dvc", "repro"],
            cwd=teammate_clone,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        killed_run = _wait_for_trains_run(mlflow, experiment_id, before, repro, log)
        postgres = team_stack.container("postgres")
        run(["docker", "kill", postgres], cwd=team_stack.project)
        killed_at = time.monotonic()
        status = repro.wait(timeout=120)
        elapsed = time.monotonic() - killed_at
    finally:
        if repro.poll() is None:
            repro.kill()
    output = log.read_text()
    assert status != 0, output[-3000:]
    assert elapsed < 30, (elapsed, output[-3000:])
    errors = [line for line in output.splitlines() if "] ERROR" in line]
    assert len(errors) == 1, output[-3000:]
    assert errors[0].startswith("[train] ERROR"), output[-3000:]
    assert f"MLflow store {team_stack.mlflow_url}" in errors[0], output[-3000:]
    for raw in ("Traceback", "[SQL", "psycopg2", secrets()["POSTGRES_PASSWORD"]):
        assert raw not in output, output[-3000:]

    team_stack.compose("start", "postgres", timeout=300)
    _wait_until_healthy(team_stack, "postgres")
    # Nothing of the killed run was registered.
    after = mlflow.search_model_versions("name='iris_classifier'")
    assert killed_run not in {v.run_id for v in after if v.version not in versions}

    run(["dvc", "repro"], cwd=teammate_clone, env=env, timeout=900)
    healed = json.loads((teammate_clone / "models" / "mlflow_run.json").read_text())["run_id"]
    assert mlflow.get_run(healed).info.status == "FINISHED"
    assert mlflow.get_run(healed).data.params["n_estimators"] == "300"
    assert mlflow.get_run(killed_run).info.status == "FAILED"
    # A model whose upload the kill interrupted was discarded, not left PENDING.
    left = mlflow.search_logged_models([experiment_id], f"source_run_id = '{killed_run}'")
    assert all(model.status != "PENDING" for model in left), left


def _wait_for_trains_run(mlflow, experiment_id: str, before: set[str], process, log: Path) -> str:
    """The id of the RUNNING run train opened, once the server lists it (evaluate not begun)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dvc repro ended before train's run opened\n{log.read_text()[-3000:]}")
        running = [
            found.info.run_id
            for found in mlflow.search_runs([experiment_id], "attributes.status = 'RUNNING'")
            if found.info.run_id not in before
        ]
        if running:
            assert "'evaluate'" not in log.read_text(), log.read_text()[-3000:]
            return running[0]
        time.sleep(0.2)
    pytest.fail(f"train opened no run in 600 s\n{log.read_text()[-3000:]}")


def _wait_until_healthy(stack: TeamStack, service: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while stack.state(service).get("Health", {}).get("Status") != "healthy":
        if time.monotonic() > deadline:
            pytest.fail(f"{service} was not healthy {timeout} s after start\n{stack.logs()}")
        time.sleep(2)


def test_four_pipelines_at_once_all_land_and_load(
    team_stack: TeamStack, teammate_clone: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two clones, two queued experiments each, `dvc queue start -j 2` in both at once: four
    pipelines against the server together. The stages never retry a request
    (mlpipeline.tracking.runs), so one failed request fails its experiment and the queue."""
    import mlflow as mlflow_module

    second = tmp_path / "second"
    # The clone as it is (its pulled cache too), without its DVC temporary state.
    shutil.copytree(teammate_clone, second, symlinks=True, ignore=_dvc_tmp)
    env = as_account(
        team_stack, (secrets()["MLFLOW_TRACKING_USERNAME"], secrets()["MLFLOW_TRACKING_PASSWORD"])
    )
    settings = {teammate_clone: (11, 12), second: (13, 14)}
    for clone, values in settings.items():
        for n_estimators in values:
            queue = ["dvc", "exp", "run", "--queue", "-S", f"train.n_estimators={n_estimators}"]
            run(queue, cwd=clone, env=env)
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(
            pool.map(lambda clone: run_queue(clone, env, jobs=2, timeout=1800), settings)
        )
    for status in statuses:
        assert status.count("Success") == 2, status

    mlflow = pipeline_client(team_stack, monkeypatch)
    experiment_id = json.loads((team_stack.project / "models" / "mlflow_run.json").read_text())[
        "experiment_id"
    ]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_stack.mlflow_url)
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    import pandas as pd

    rows = pd.DataFrame(list(KNOWN_ROWS.values()), columns=columns)
    found = mlflow.search_runs([experiment_id], max_results=1000)
    for n_estimators in (11, 12, 13, 14):
        (landed,) = [r for r in found if r.data.params.get("n_estimators") == str(n_estimators)]
        assert landed.info.status == "FINISHED"
        (model,) = mlflow.search_logged_models(
            [experiment_id], f"source_run_id = '{landed.info.run_id}'"
        )
        loaded = mlflow_module.pyfunc.load_model(f"models:/{model.model_id}")
        assert len(loaded.predict(rows)) == len(KNOWN_ROWS)


def _dvc_tmp(folder: str, names: list[str]) -> list[str]:
    return ["tmp"] if Path(folder).name == ".dvc" else []


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
    # The artifacts survived too: the first champion's model loads from S3 through the server.
    import mlflow as mlflow_module

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_stack.mlflow_url)
    # Through the server, as the stages download (mlpipeline.tracking.runs): the presigned
    # S3 URLs it offers name `minio:9000`, which only the compose network resolves.
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    model = mlflow_module.pyfunc.load_model(f"models:/iris_classifier/{champion.version}")
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    import pandas as pd

    rows = pd.DataFrame(list(KNOWN_ROWS.values()), columns=columns)
    assert list(model.predict(rows)) == list(KNOWN_ROWS)
