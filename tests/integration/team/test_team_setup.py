"""The team setup without Docker: MLflow on PostgreSQL with artifacts on S3, DVC remote on S3.

The same configuration as docker/docker-compose.team.yml, with the servers started here on
free 127.0.0.1 ports: a real PostgreSQL (initdb / pg_ctl), moto's standalone S3 server in
place of MinIO, and MLflow's basic-auth server started by docker/mlflow-team-server.sh (the
compose service's command) with the backend store on PostgreSQL and artifacts on S3. The
accounts come from `mlpipeline team users`; the pipeline runs as the
pipeline account, then its outputs go through `dvc push` / `dvc pull`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support import team_parts
from tests.support.repository import REPO, copy_repository, output_bytes, set_params
from tests.support.servers import team_server_in
from tests.support.team_parts import Postgres
from tests.support.tools import run

# PostgreSQL, moto, a basic-auth server and several pipeline runs: minutes, so `make test-slow`.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACT_BUCKET = "mlflow-artifacts"
DVC_BUCKET = "dvc-remote"
# Test-only credentials for servers that live as long as this module; moto accepts any.
S3_CREDENTIALS = team_parts.s3_credentials()
DB_PASSWORD = "pw-" + os.urandom(6).hex()
ADMIN = ("admin", "admin-pw-" + os.urandom(6).hex())
PIPELINE = ("pipeline", "pipeline-pw-" + os.urandom(6).hex())
READER = ("alice", "reader-pw-" + os.urandom(6).hex())
RELEASER = ("carol", "releaser-pw-" + os.urandom(6).hex())


def s3_client(url: str):
    """A boto3 S3 client for the moto server at `url`."""
    return team_parts.s3_client(url, S3_CREDENTIALS)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary folder (tests/support/team_parts.py)."""
    with team_parts.postgres_cluster(DB_PASSWORD) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1, with the two buckets; yields its URL."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with team_parts.moto_s3(log) as url:
        # The compose `buckets` job's command; it runs on every `up`, so twice here.
        for _ in range(2):
            made = run(
                [
                    VENV_BIN / "python",
                    "-m",
                    "mlpipeline",
                    "team",
                    "buckets",
                    ARTIFACT_BUCKET,
                    DVC_BUCKET,
                ],
                cwd=REPO,
                env=tool_env({**S3_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": url}),
            )
        assert "created none; already there: mlflow-artifacts, dvc-remote" in made.stderr
        names = {bucket["Name"] for bucket in s3_client(url).list_buckets()["Buckets"]}
        assert {ARTIFACT_BUCKET, DVC_BUCKET} <= names
        yield url


@dataclass(frozen=True)
class TeamServer:
    url: str
    process: subprocess.Popen
    tmpdir: Path


@pytest.fixture(scope="module")
def team_server(
    postgres: Postgres, s3: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TeamServer]:
    """MLflow's basic-auth server as the compose service starts it, every secret in its env."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    settings = {
        **S3_CREDENTIALS,
        "MLFLOW_S3_ENDPOINT_URL": s3,
        "MLFLOW_BACKEND_STORE_URI": postgres.uri,
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{ARTIFACT_BUCKET}/artifacts",
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
    }
    with team_server_in(workdir, settings, "--serve-artifacts") as (url, process):
        yield TeamServer(url, process, workdir)


USERS = [VENV_BIN / "python", "-m", "mlpipeline", "team", "users"]


def admin_env(url: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
    }


@pytest.fixture(scope="module")
def team_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The git copy the team works in: its params.yaml names the experiment and the model."""
    return copy_repository(tmp_path_factory.mktemp("team") / "project")


@pytest.fixture(scope="module")
def team_mlflow(team_server: TeamServer, team_copy: Path) -> str:
    """The server's URL, once `mlpipeline team users` made the three accounts.

    It runs in the copy, as the compose `users` job runs in the mounted checkout, so the
    grants are on the names the copy's pipeline uses, whatever the user's own params say.
    """
    admin = admin_env(team_server.url)
    run([*USERS, "pipeline"], cwd=team_copy, env=tool_env({**admin, **credentials(PIPELINE)}))
    for role, (name, password) in (("reader", READER), ("releaser", RELEASER)):
        made = run(
            [*USERS, role, name],
            cwd=team_copy,
            env=tool_env({**admin, "TEAM_USER_PASSWORD": password}),
        )
        assert password not in made.stdout + made.stderr
    return team_server.url


def credentials(account: tuple[str, str]) -> dict[str, str]:
    """The environment MLflow's client authenticates with."""
    return {"MLFLOW_TRACKING_USERNAME": account[0], "MLFLOW_TRACKING_PASSWORD": account[1]}


def api(url: str, path: str, account: tuple[str, str] | None, payload: dict | None = None):
    """One REST call (POST when payload is given) as `account`, or anonymous; the response."""
    import requests

    method = "POST" if payload is not None else "GET"
    return requests.request(method, f"{url}{path}", json=payload, auth=account, timeout=30)


@pytest.fixture(scope="module")
def team_project(team_mlflow: str, team_copy: Path) -> Path:
    """The team's copy once `dvc repro` ran against the team's MLflow server, as the pipeline.

    The pipeline gets no S3 credentials: the server proxies every artifact.
    """
    env = tool_env({"MLFLOW_TRACKING_URI": team_mlflow, **credentials(PIPELINE)})
    run(["dvc", "repro"], cwd=team_copy, env=env)
    return team_copy


def mlflow_names(project: Path) -> tuple[str, str]:
    """The experiment and registered model the project's params.yaml names."""
    import yaml

    mlflow_params = yaml.safe_load((project / "params.yaml").read_text())["mlflow"]
    return mlflow_params["experiment_name"], mlflow_params["registered_model_name"]


def test_run_metrics_and_registry_land_in_postgres(
    team_project: Path, team_mlflow: str, postgres, monkeypatch: pytest.MonkeyPatch
):
    import psycopg2
    from mlflow import MlflowClient

    for name, value in credentials(READER).items():
        monkeypatch.setenv(name, value)
    run_id = json.loads((team_project / "models" / "mlflow_run.json").read_text())["run_id"]
    metrics = json.loads((team_project / "metrics" / "metrics.json").read_text())
    client = MlflowClient(tracking_uri=team_mlflow, registry_uri=team_mlflow)
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert logged.data.params["n_estimators"] == "100"
    champion = client.get_model_version_by_alias("iris_classifier", "champion")
    assert champion.run_id == run_id

    # The rows are in PostgreSQL itself, not in some fallback store.
    with psycopg2.connect(postgres.uri) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT value FROM metrics WHERE run_uuid = %s AND key = 'accuracy'", (run_id,)
        )
        assert cursor.fetchone()[0] == pytest.approx(metrics["accuracy"])
        cursor.execute("SELECT version FROM model_versions WHERE name = 'iris_classifier'")
        assert [row[0] for row in cursor.fetchall()] == [int(champion.version)]


def test_artifacts_land_in_s3_and_the_champion_predicts(team_project: Path, team_mlflow: str, s3):

    run_id = json.loads((team_project / "models" / "mlflow_run.json").read_text())["run_id"]
    client = s3_client(s3)
    listing = client.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix="artifacts/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert any(run_id in key and key.endswith(".png") for key in keys), keys[:20]
    assert any(key.endswith("MLmodel") for key in keys), keys[:20]

    # A client process of its own, configured as a team member's would be: the server's URI,
    # a reader's login and no S3 credentials (the server proxies the artifacts). No global
    # MLflow state leaks.
    script = (
        "import mlflow, pandas as pd; "
        "model = mlflow.pyfunc.load_model('models:/iris_classifier@champion'); "
        "data = pd.read_csv('data/raw/dataset.csv'); "
        "print((model.predict(data.drop(columns=['target'])) == data['target']).mean())"
    )
    client_env = tool_env({"MLFLOW_TRACKING_URI": team_mlflow, **credentials(READER)})
    predicted = run([VENV_BIN / "python", "-c", script], cwd=team_project, env=client_env)
    assert float(predicted.stdout.strip().splitlines()[-1]) >= 0.9


def test_dvc_push_and_pull_through_s3_give_back_identical_outputs(team_project: Path, s3: str):
    env = tool_env()
    key_id, secret = S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    for args in (
        ["remote", "add", "--default", "team", f"s3://{DVC_BUCKET}/store"],
        ["remote", "modify", "team", "endpointurl", s3],
        ["remote", "modify", "team", "region", S3_CREDENTIALS["AWS_DEFAULT_REGION"]],
        # Credentials go to .dvc/config.local, which DVC keeps out of git.
        ["remote", "modify", "--local", "team", "access_key_id", key_id],
        ["remote", "modify", "--local", "team", "secret_access_key", secret],
    ):
        run(["dvc", *args], cwd=team_project, env=env)
    committed = (team_project / ".dvc" / "config").read_text()
    assert secret not in committed
    assert secret in (team_project / ".dvc" / "config.local").read_text()
    run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=team_project, env=env)

    before = output_bytes(team_project)
    assert "models/pipeline.pkl" in before
    assert "data/processed/train.parquet" in before
    run(["dvc", "push"], cwd=team_project, env=env)

    shutil.rmtree(team_project / ".dvc" / "cache")
    for path in before:
        (team_project / path).unlink()
    run(["dvc", "pull"], cwd=team_project, env=env)
    after = output_bytes(team_project)
    assert after.keys() == before.keys()
    changed = [path for path in before if after[path] != before[path]]
    assert not changed, f"not byte-identical after dvc pull: {changed}"


def test_without_credentials_the_api_and_the_ui_answer_401(team_mlflow: str):
    search = "/api/2.0/mlflow/experiments/search?max_results=5"
    for path in (search, "/", "/api/2.0/mlflow/registered-models/search"):
        response = api(team_mlflow, path, None)
        assert response.status_code == 401, (path, response.status_code, response.text[:200])
    assert api(team_mlflow, search, ("nobody", "guess")).status_code == 401
    assert api(team_mlflow, search, (READER[0], "not-" + READER[1])).status_code == 401
    # The health check stays open, for compose and load balancers.
    assert api(team_mlflow, "/health", None).status_code == 200


def test_a_reader_searches_runs_but_cannot_delete_one_or_move_the_alias(
    team_project: Path, team_mlflow: str
):
    run_id = json.loads((team_project / "models" / "mlflow_run.json").read_text())["run_id"]
    experiment_name, model_name = mlflow_names(team_project)
    experiment = api(
        team_mlflow,
        f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment_name}",
        READER,
    )
    assert experiment.status_code == 200, experiment.text
    experiment_id = experiment.json()["experiment"]["experiment_id"]
    found = api(
        team_mlflow, "/api/2.0/mlflow/runs/search", READER, {"experiment_ids": [experiment_id]}
    )
    assert found.status_code == 200, found.text
    assert run_id in [item["info"]["run_id"] for item in found.json()["runs"]]

    champion = api(
        team_mlflow,
        f"/api/2.0/mlflow/registered-models/alias?name={model_name}&alias=champion",
        READER,
    )
    assert champion.status_code == 200, champion.text
    version = champion.json()["model_version"]["version"]
    alias = {"name": model_name, "alias": "champion", "version": version}
    for account in (READER, PIPELINE):
        deleted = api(team_mlflow, "/api/2.0/mlflow/runs/delete", account, {"run_id": run_id})
        assert deleted.status_code == 403, (account[0], deleted.text)
    moved = api(team_mlflow, "/api/2.0/mlflow/registered-models/alias", READER, alias)
    assert moved.status_code == 403, moved.text
    # The releaser may move it (here: onto the version it already names).
    moved = api(team_mlflow, "/api/2.0/mlflow/registered-models/alias", RELEASER, alias)
    assert moved.status_code == 200, moved.text
    assert (
        api(team_mlflow, "/api/2.0/mlflow/runs/get?run_id=" + run_id, READER).json()["run"]["info"][
            "lifecycle_stage"
        ]
        == "active"
    )


def test_a_wrong_password_fails_train_at_once_naming_the_server(
    team_project: Path, team_mlflow: str
):
    wrong = "wrong-" + os.urandom(6).hex()
    model = team_project / "models" / "pipeline.pkl"
    before = model.read_bytes()
    env = tool_env({"MLFLOW_TRACKING_URI": team_mlflow, **credentials((PIPELINE[0], wrong))})
    failed = run(
        ["dvc", "repro", "--force", "--single-item", "train"],
        cwd=team_project,
        env=env,
        check=False,
        timeout=30,
    )
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert f"MLflow tracking server {team_mlflow}" in output, output[-2000:]
    assert "authentication" in output
    assert wrong not in output
    assert "Traceback" not in output
    assert model.read_bytes() == before


def test_no_secret_on_the_server_processes_command_lines(team_server: TeamServer, team_mlflow):
    tree = _process_tree(team_server.process.pid)
    assert len(tree) >= 2, tree  # mlflow server and its uvicorn worker(s)
    for pid, command in tree.items():
        for secret in (DB_PASSWORD, ADMIN[1], S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]):
            assert secret not in command, (pid, command)
    # The auth config file, the one place the database URI is written, is the server's alone.
    (config,) = team_server.tmpdir.glob("mlflow-auth.*")
    assert config.stat().st_mode & 0o777 == 0o600


def _process_tree(root: int) -> dict[int, str]:
    """Every process under `root` (itself included) with its command line, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    commands = {}
    for pid in tree:
        try:
            commands[pid] = (
                (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            continue
    return commands


def test_make_team_users_adds_a_reader_from_the_env_file(team_mlflow: str, tmp_path: Path):
    project = copy_repository(tmp_path / "project")
    port = team_mlflow.rsplit(":", 1)[1]
    (project / ".env").write_text(
        "MLFLOW_TRACKING_URI=http://mlflow:5000\n"
        f"MLFLOW_PORT={port}\n"
        f"MLFLOW_AUTH_ADMIN_USERNAME={ADMIN[0]}\n"
        f"MLFLOW_AUTH_ADMIN_PASSWORD={ADMIN[1]}\n"
    )
    password = "bob-pw-" + os.urandom(6).hex()
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert api(team_mlflow, search, ("bob", password)).status_code == 401
    # The venv is this one (RUN= and PATH), not a new one in the copy.
    made = run(
        ["make", "-o", ".venv/.synced", "team-users", "ROLE=reader", "NAME=bob", "RUN="],
        cwd=project,
        env=tool_env({"TEAM_USER_PASSWORD": password}),
    )
    assert password not in made.stdout + made.stderr
    assert api(team_mlflow, search, ("bob", password)).status_code == 200


def permission(url: str, username: str, resource_type: str, resource_id: str, monkeypatch):
    """The account's effective permission on a resource, asked by the admin with MLflow's client."""
    from mlflow.server import get_app_client

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    auth = get_app_client("basic-auth", tracking_uri=url)
    return auth.get_user_permission(username, resource_type, resource_id).permission


def experiment_id(url: str, name: str) -> str | None:
    found = api(url, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}", ADMIN)
    return found.json()["experiment"]["experiment_id"] if found.status_code == 200 else None


def test_accounts_are_idempotent_and_follow_a_role_change(
    team_mlflow: str, team_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    experiment_name, model_name = mlflow_names(team_copy)
    team_experiment = experiment_id(team_mlflow, experiment_name)
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    first, second = ("dave-pw-" + os.urandom(6).hex() for _ in range(2))
    steps = [
        ("reader", first, "READ"),
        ("reader", second, "READ"),
        ("releaser", second, "EDIT"),
        ("reader", second, "READ"),
    ]
    for role, password, model_permission in steps:
        made = run(
            [*USERS, role, "dave"],
            cwd=team_copy,
            env=tool_env({**admin_env(team_mlflow), "TEAM_USER_PASSWORD": password}),
        )
        assert password not in made.stdout + made.stderr
        assert api(team_mlflow, search, ("dave", password)).status_code == 200
        assert permission(team_mlflow, "dave", "registered_model", model_name, monkeypatch) == (
            model_permission
        ), (role, made.stderr)
        assert permission(team_mlflow, "dave", "experiment", team_experiment, monkeypatch) == "READ"
    assert "registered_model iris_classifier: EDIT → READ" in made.stderr
    assert api(team_mlflow, search, ("dave", first)).status_code == 401

    # The compose `users` job runs on every `up`: the pipeline's account, again and again.
    for _ in range(2):
        again = run(
            [*USERS, "pipeline"],
            cwd=team_copy,
            env=tool_env({**admin_env(team_mlflow), **credentials(PIPELINE)}),
        )
        assert "EDIT already" in again.stderr, again.stderr
    assert (
        permission(team_mlflow, PIPELINE[0], "experiment", team_experiment, monkeypatch) == "EDIT"
    )


def test_a_manage_the_pipeline_got_by_creating_an_experiment_goes_back_to_edit(
    team_mlflow: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    project = copy_repository(tmp_path / "project")
    name = "made_by_the_pipeline"
    created = api(team_mlflow, "/api/2.0/mlflow/experiments/create", PIPELINE, {"name": name})
    assert created.status_code == 200, created.text
    made_id = created.json()["experiment_id"]
    assert permission(team_mlflow, PIPELINE[0], "experiment", made_id, monkeypatch) == "MANAGE"
    set_params(project, mlflow__experiment_name=name)
    made = run(
        [*USERS, "pipeline"],
        cwd=project,
        env=tool_env({**admin_env(team_mlflow), **credentials(PIPELINE)}),
    )
    assert f"experiment {made_id}: MANAGE → EDIT" in made.stderr, made.stderr
    assert permission(team_mlflow, PIPELINE[0], "experiment", made_id, monkeypatch) == "EDIT"


def test_a_renamed_experiment_is_granted_not_owned(
    team_mlflow: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """params.yaml names another experiment and model after the users job ran."""
    project = copy_repository(tmp_path / "project")
    experiment_name, model_name = "iris_renamed", "iris_renamed_model"
    set_params(
        project, mlflow__experiment_name=experiment_name, mlflow__registered_model_name=model_name
    )
    env = tool_env({"MLFLOW_TRACKING_URI": team_mlflow, **credentials(PIPELINE)})
    refused = run(["dvc", "repro"], cwd=project, env=env, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert (
        f"MLflow server {team_mlflow}: experiment {experiment_name!r} (params.yaml, mlflow) "
        f"does not exist; user {PIPELINE[0]!r} will not create it"
    ) in output, output[-2000:]
    assert "Traceback" not in output
    assert not (project / "data" / "raw" / "dataset.csv").exists()  # load did no work
    assert experiment_id(team_mlflow, experiment_name) is None  # and created nothing

    # What the message says to do: the admin runs the users job on the new names.
    run(
        [*USERS, "pipeline"],
        cwd=project,
        env=tool_env({**admin_env(team_mlflow), **credentials(PIPELINE)}),
    )
    run(["dvc", "repro"], cwd=project, env=env)
    renamed = experiment_id(team_mlflow, experiment_name)
    assert permission(team_mlflow, PIPELINE[0], "experiment", renamed, monkeypatch) == "EDIT"
    assert permission(team_mlflow, PIPELINE[0], "registered_model", model_name, monkeypatch) == (
        "EDIT"
    )
    run_id = json.loads((project / "models" / "mlflow_run.json").read_text())["run_id"]
    run_info = api(team_mlflow, f"/api/2.0/mlflow/runs/get?run_id={run_id}", READER).json()
    assert run_info["run"]["info"]["experiment_id"] == renamed
    deleted = api(team_mlflow, "/api/2.0/mlflow/runs/delete", PIPELINE, {"run_id": run_id})
    assert deleted.status_code == 403, deleted.text


def test_a_readers_repro_stops_before_load_naming_what_it_lacks(team_mlflow: str, tmp_path: Path):
    project = copy_repository(tmp_path / "project")
    env = tool_env({"MLFLOW_TRACKING_URI": team_mlflow, **credentials(READER)})
    refused = run(["dvc", "repro"], cwd=project, env=env, check=False, timeout=60)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    expected = (
        f"MLflow server {team_mlflow}: user {READER[0]!r} may READ experiment "
        "'iris_classification' but not write runs"
    )
    assert expected in output, output[-2000:]
    # The stage's one line (DVC adds its own "failed to reproduce 'load'").
    stage_errors = [line for line in output.splitlines() if line.startswith("[load] ERROR")]
    assert len(stage_errors) == 1 and expected in stage_errors[0], output[-2000:]
    assert "Traceback" not in output and READER[1] not in output
    assert not (project / "data" / "raw" / "dataset.csv").exists()


def test_the_auth_config_file_is_removed_when_the_server_exits(tmp_path: Path):
    """The one file holding the database URI lives as long as the server (here on SQLite)."""
    workdir = tmp_path / "tmpdir"
    workdir.mkdir()
    log = workdir / "mlflow.log"
    settings = {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
    }
    with team_server_in(workdir, settings) as (url, process):
        (config,) = workdir.glob("mlflow-auth.*")
        assert config.stat().st_mode & 0o777 == 0o600
        assert api(url, "/health", None).status_code == 200
        process.terminate()  # what `docker stop` sends
        status = process.wait(timeout=30)
    assert not list(workdir.glob("mlflow-auth.*")), log.read_text()[-2000:]
    assert status in (0, 143, -15), log.read_text()[-2000:]
    with pytest.raises(OSError):  # the server went with the script
        api(url, "/health", None)


def test_a_teammates_experiment_lands_in_the_same_experiment(
    team_project: Path, team_mlflow: str, tmp_path: Path
):
    """A second clone, another account with the pipeline's role, `dvc exp run -S ...`."""
    teammate = ("erin", "erin-pw-" + os.urandom(6).hex())
    # As `make team-users ROLE=pipeline NAME=erin` runs it: .env's pipeline login is in the
    # environment, and erin's password is TEAM_USER_PASSWORD, not the pipeline's.
    made = run(
        [*USERS, "pipeline", teammate[0]],
        cwd=team_project,
        env=tool_env(
            {**admin_env(team_mlflow), **credentials(PIPELINE), "TEAM_USER_PASSWORD": teammate[1]}
        ),
    )
    assert "created pipeline erin" in made.stderr, made.stderr
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert api(team_mlflow, search, teammate).status_code == 200
    assert api(team_mlflow, search, (teammate[0], PIPELINE[1])).status_code == 401
    assert api(team_mlflow, search, PIPELINE).status_code == 200
    clone = copy_repository(tmp_path / "clone")
    env = tool_env({"MLFLOW_TRACKING_URI": team_mlflow, **credentials(teammate)})
    run(["dvc", "exp", "run", "-S", "train.n_estimators=30"], cwd=clone, env=env)
    theirs = json.loads((clone / "models" / "mlflow_run.json").read_text())
    ours = json.loads((team_project / "models" / "mlflow_run.json").read_text())
    assert theirs["experiment_id"] == ours["experiment_id"]

    # A reader sees both runs, and may not write to the teammate's.
    found = api(
        team_mlflow,
        "/api/2.0/mlflow/runs/search",
        READER,
        {"experiment_ids": [ours["experiment_id"]], "max_results": 1000},
    )
    assert found.status_code == 200, found.text
    listed = {item["info"]["run_id"] for item in found.json()["runs"]}
    assert {ours["run_id"], theirs["run_id"]} <= listed
    logged = api(
        team_mlflow,
        "/api/2.0/mlflow/runs/log-metric",
        READER,
        {"run_id": theirs["run_id"], "key": "x", "value": 1, "timestamp": 0},
    )
    assert logged.status_code == 403, logged.text


def test_a_readers_zenml_run_stops_before_zenml_starts(team_mlflow: str, tmp_path: Path):
    """The ZenML entry point makes the same check as the load stage, before any step."""
    project = copy_repository(tmp_path / "project")
    env = tool_env(
        {
            "MLFLOW_TRACKING_URI": team_mlflow,
            **credentials(READER),
            "ZENML_CONFIG_PATH": str(tmp_path / "zenml-config"),
        }
    )
    refused = run(
        [VENV_BIN / "python", "-m", "zenml_pipeline"],
        cwd=project,
        env=env,
        check=False,
        timeout=120,
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output[-2000:]
    assert f"user {READER[0]!r} may READ experiment 'iris_classification'" in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "zenml-config").exists()  # ZenML never started
