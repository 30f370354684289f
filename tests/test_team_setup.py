"""The team setup without Docker: MLflow on PostgreSQL with artifacts on S3, DVC remote on S3.

The same configuration as docker/docker-compose.team.yml, with the servers started here on
free 127.0.0.1 ports: a real PostgreSQL (initdb / pg_ctl), moto's standalone S3 server in
place of MinIO, and `mlflow server --backend-store-uri postgresql://... --artifacts-destination
s3://...`. The pipeline runs against it, then its outputs go through `dvc push` / `dvc pull`.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, copy_repository, free_port, run, stop, tool_env, wait_for

pytestmark = pytest.mark.integration

ARTIFACT_BUCKET = "mlflow-artifacts"
DVC_BUCKET = "dvc-remote"
# Test-only credentials for servers that live as long as this module; moto accepts any.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "team-test-key",
    "AWS_SECRET_ACCESS_KEY": "team-test-secret-" + os.urandom(6).hex(),
    "AWS_DEFAULT_REGION": "us-east-1",
}
DB_USER = "mlflow"
DB_PASSWORD = "pw-" + os.urandom(6).hex()
DB_NAME = "mlflow"


def s3_client(url: str):
    """A boto3 S3 client for the moto server at `url`."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def postgres_tool(name: str) -> str:
    """A PostgreSQL server binary: from PATH, else where Debian's package puts it."""
    found = shutil.which(name) or next(
        (str(path) for path in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[::-1]),
        None,
    )
    if found is None:
        pytest.fail(f"{name} not found: install PostgreSQL (.ci/run installs Debian's postgresql)")
    return found


@dataclass(frozen=True)
class Postgres:
    port: int

    @property
    def uri(self) -> str:
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary folder; as root it runs as the `postgres` user."""
    initdb, pg_ctl = postgres_tool("initdb"), postgres_tool("pg_ctl")
    # Not under pytest's tmp dir: that one is private to root, and PostgreSQL refuses root.
    base = Path(tempfile.mkdtemp(prefix="mlops-team-pg-"))
    data, password_file = base / "data", base / "password"
    password_file.write_text(DB_PASSWORD)
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        entry = pwd.getpwnam(user)
        for path in (base, password_file):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    port = free_port()
    env = tool_env({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    run(
        [*as_user, initdb, "-D", data, "-U", DB_USER, "--auth=scram-sha-256",
         f"--pwfile={password_file}", "--no-sync", "--encoding=UTF8"],
        cwd=base, env=env,
    )  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off"
    run(
        [*as_user, pg_ctl, "-D", data, "-o", options, "-l", base / "server.log", "-w", "start"],
        cwd=base, env=env, timeout=60,
    )  # fmt: skip
    try:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user=DB_USER, password=DB_PASSWORD, dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DB_NAME}")
        connection.close()
        yield Postgres(port)
    finally:
        run([*as_user, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"], cwd=base, env=env,
            check=False)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1, with the two buckets; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [VENV_BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=tool_env(),
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/moto-api/", process, log, timeout=60)
        client = s3_client(url)
        for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):
            client.create_bucket(Bucket=bucket)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def team_mlflow(
    postgres: Postgres, s3: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`mlflow server` on PostgreSQL with artifacts on S3, proxied (`--serve-artifacts`)."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("mlflow-server")
    log = workdir / "mlflow.log"
    env = tool_env({**S3_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3})
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                VENV_BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                "--backend-store-uri", postgres.uri,
                "--artifacts-destination", f"s3://{ARTIFACT_BUCKET}/artifacts",
                "--serve-artifacts", "--workers", "1",
            ],
            cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health", process, log, timeout=180)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def team_project(team_mlflow: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git copy on which `dvc repro` ran against the team's MLflow server.

    The pipeline gets no S3 credentials: the server proxies every artifact.
    """
    project = copy_repository(tmp_path_factory.mktemp("team") / "project")
    run(["dvc", "repro"], cwd=project, env=tool_env({"MLFLOW_TRACKING_URI": team_mlflow}))
    return project


def test_run_metrics_and_registry_land_in_postgres(team_project: Path, team_mlflow: str, postgres):
    import psycopg2
    from mlflow import MlflowClient

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

    # A client process of its own, configured as a team member's would be: the server's URI
    # and no S3 credentials (the server proxies the artifacts). No global MLflow state leaks.
    script = (
        "import mlflow, pandas as pd; "
        "model = mlflow.pyfunc.load_model('models:/iris_classifier@champion'); "
        "data = pd.read_csv('data/raw/dataset.csv'); "
        "print((model.predict(data.drop(columns=['target'])) == data['target']).mean())"
    )
    client_env = tool_env({"MLFLOW_TRACKING_URI": team_mlflow})
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

    outputs = ["data", "models", "plots"]
    before = _file_bytes(team_project, outputs)
    assert "models/pipeline.pkl" in before
    assert "data/processed/train.parquet" in before
    run(["dvc", "push"], cwd=team_project, env=env)

    shutil.rmtree(team_project / ".dvc" / "cache")
    for path in before:
        (team_project / path).unlink()
    run(["dvc", "pull"], cwd=team_project, env=env)
    after = _file_bytes(team_project, outputs)
    assert after.keys() == before.keys()
    changed = [path for path in before if after[path] != before[path]]
    assert not changed, f"not byte-identical after dvc pull: {changed}"


def _file_bytes(root: Path, folders: list[str]) -> dict[str, bytes]:
    """Every DVC output under `folders`; dot files (.gitignore, .gitkeep) belong to git."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for folder in folders
        for path in sorted((root / folder).rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }
