"""The team stack's storage without Docker: a real PostgreSQL cluster from Debian's binaries
(initdb / pg_ctl) and moto's standalone S3 server, each on a free 127.0.0.1 port, for the
tests (test_team_setup, test_gc_team) and the benchmark's team-stack registry row.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.servers import free_port, serving
from tests.support.tools import run

DB_USER = "mlflow"
DB_NAME = "mlflow"


def s3_credentials() -> dict[str, str]:
    """Test-only credentials for a moto server (it accepts any); a new secret each call."""
    return {
        "AWS_ACCESS_KEY_ID": "team-test-key",
        "AWS_SECRET_ACCESS_KEY": "team-test-secret-" + os.urandom(6).hex(),
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def s3_client(url: str, credentials: Mapping[str, str]):  # type: ignore[no-untyped-def]
    """A boto3 S3 client for the moto server at `url`."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=credentials["AWS_DEFAULT_REGION"],
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
    password: str

    @property
    def uri(self) -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DB_NAME}"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def postgres_cluster(password: str) -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary folder with the database `mlflow`, owned by the
    user `mlflow` (PASSWORD); as root it runs as the `postgres` user. Stopped and removed after."""
    initdb, pg_ctl = postgres_tool("initdb"), postgres_tool("pg_ctl")
    # Not under pytest's tmp dir: that one is private to root, and PostgreSQL refuses root.
    base = Path(tempfile.mkdtemp(prefix="mlops-team-pg-"))
    data, password_file = base / "data", base / "password"
    password_file.write_text(password)
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        entry = pwd.getpwnam(user)
        for path in (base, password_file):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    port = free_port()
    env = tool_env({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    init = [initdb, "-D", data, "-U", DB_USER, "--auth=scram-sha-256"]
    init += [f"--pwfile={password_file}", "--no-sync", "--encoding=UTF8"]
    try:
        run([*as_user, *init], cwd=base, env=env)
        options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off"
        start = [pg_ctl, "-D", data, "-o", options, "-l", base / "server.log", "-w", "start"]
        run([*as_user, *start], cwd=base, env=env, timeout=60)
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user=DB_USER, password=password, dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DB_NAME}")
        connection.close()
        yield Postgres(port, password)
    finally:
        stop = [pg_ctl, "-D", data, "-m", "fast", "-w", "stop"]
        run([*as_user, *stop], cwd=base, env=env, check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def moto_s3(log: Path) -> Iterator[str]:
    """moto's standalone S3 server on a free 127.0.0.1 port, its output in LOG; its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    command = [VENV_BIN / "moto_server", "-H", "127.0.0.1", "-p", url.rsplit(":", 1)[1]]
    with serving(command, f"{url}/moto-api/", log, tool_env(), timeout=60):
        yield url


# The bucket the team stack's MLflow keeps its artifacts in (docker/docker-compose.team.yml).
ARTIFACTS_BUCKET = "mlflow-artifacts"


@dataclass(frozen=True)
class TeamServer:
    """The team stack's MLflow without Docker (see `mlflow_on_postgres_and_s3`)."""

    url: str
    postgres: Postgres
    s3: str  # moto's URL
    credentials: dict[str, str]  # the S3 keys


@contextmanager
def mlflow_on_postgres_and_s3(folder: Path) -> Iterator[TeamServer]:
    """`mlflow server` (one worker) on a local PostgreSQL cluster, its artifacts proxied to
    s3://ARTIFACTS_BUCKET/artifacts on moto; its logs in `folder`. Stopped after the block."""
    credentials = s3_credentials()
    with (
        postgres_cluster(os.urandom(6).hex()) as postgres,
        moto_s3(folder / "moto.log") as s3,
    ):
        s3_client(s3, credentials).create_bucket(Bucket=ARTIFACTS_BUCKET)
        port = free_port()
        command: list[str | Path] = [VENV_BIN / "mlflow", "server", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", "1", "--backend-store-uri", postgres.uri]
        command += ["--artifacts-destination", f"s3://{ARTIFACTS_BUCKET}/artifacts"]
        env = tool_env({**credentials, "MLFLOW_S3_ENDPOINT_URL": s3})
        url = f"http://127.0.0.1:{port}"
        with serving(command, f"{url}/health", folder / "mlflow.log", env, cwd=folder):
            yield TeamServer(url, postgres, s3, credentials)
