"""The team stack (docker-compose.yml + docker/docker-compose.team.yml) on this machine, as
the integration tests (tests/integration/conftest.py, `team_stack`) and the benchmark's
`team` figure bring it up: the settings a user writes into .env, the SECRETS_DIR folder with
a test CA, and the images (the pinned upstream ones, or tests/standins/local-images.sh's stand-ins).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.process import captured, failure
from tests.support.repository import REPO

COMPOSE = "docker-compose"  # Debian's v1 tool; `docker compose` (v2) reads the same file
FILES = ["-f", "docker-compose.yml", "-f", "docker/docker-compose.team.yml"]
# Pinned upstream images, and the stand-ins tests/standins/local-images.sh builds.
UPSTREAM = {
    "POSTGRES_IMAGE": "postgres:16.14",
    "MINIO_IMAGE": "minio/minio:RELEASE.2025-09-07T16-13-09Z",
}
LOCAL = {"POSTGRES_IMAGE": "local/postgres:15-bookworm", "MINIO_IMAGE": "local/s3-moto:5.2.5"}
# The ports the stack publishes on 127.0.0.1 (.env names).
PORTS = (
    "MLFLOW_PORT",
    "SERVE_PORT",
    "JUPYTER_PORT",
    "MINIO_PORT",
    "MINIO_CONSOLE_PORT",
    "PROXY_HTTPS_PORT",
    "PROXY_HTTP_PORT",
)
# How long building the local images may take, and bringing the stack up.
BUILD_TIMEOUT_S = 1500
UP_TIMEOUT_S = 900


class StackError(RuntimeError):
    """The stack could not be built or brought up; the message says which part and why."""


def _secret(name: str) -> str:
    return f"{name}-{os.urandom(8).hex()}"


@functools.cache
def secrets() -> dict[str, str]:
    """This process's accounts and passwords (a test session's, a benchmark run's), made on
    first use."""
    return {
        "POSTGRES_PASSWORD": _secret("pg"),
        "MINIO_ROOT_USER": "team-s3",
        "MINIO_ROOT_PASSWORD": _secret("s3"),
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": _secret("admin"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret("flask"),
        "MLFLOW_TRACKING_USERNAME": "pipeline",
        "MLFLOW_TRACKING_PASSWORD": _secret("pipeline"),
        # serve's and jupyter's account (the `users` job makes it a reader).
        "MLFLOW_READER_PASSWORD": _secret("reader"),
        # The role MLflow connects to PostgreSQL as (not the superuser's, POSTGRES_PASSWORD).
        "MLFLOW_DB_PASSWORD": _secret("mlflow-db"),
    }


def passwords() -> list[str]:
    """The values of secrets() that are passwords or keys (the rest are names, for .env)."""
    return [value for key, value in secrets().items() if "PASSWORD" in key or "SECRET" in key]


def secret_files() -> dict[str, str]:
    """The files of SECRETS_DIR (docker/docker-compose.team.yml's `secrets:`) and their text."""
    values = secrets()
    return {
        "postgres_password": values["POSTGRES_PASSWORD"],
        "mlflow_db_password": values["MLFLOW_DB_PASSWORD"],
        "s3_secret_key": values["MINIO_ROOT_PASSWORD"],
        "mlflow_admin_password": values["MLFLOW_AUTH_ADMIN_PASSWORD"],
        "mlflow_flask_secret_key": values["MLFLOW_FLASK_SERVER_SECRET_KEY"],
        "mlflow_pipeline_password": values["MLFLOW_TRACKING_PASSWORD"],
        "mlflow_reader_password": values["MLFLOW_READER_PASSWORD"],
    }


def run(
    args: list[str | Path], cwd: Path, timeout: float = 600, env: Mapping[str, str] | None = None
) -> str:
    """Run a command; its stdout, or StackError with its output when it exits non-zero."""
    proc = captured(args, cwd, env, timeout)
    if proc.returncode != 0:
        raise StackError(failure(args, proc, 4000))
    return proc.stdout


# The proxy's user in its image (Debian's www-data), who alone reads the TLS key.
PROXY_UID = 33


def write_secrets(folder: Path) -> Path:
    """SECRETS_DIR as docs/deploy.md has a user make it: the folder 0700, each file 0644 but
    the TLS key (0600, the proxy's user's); the proxy's certificate for localhost and
    127.0.0.1 signed by a test CA (ca.crt)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, value in secret_files().items():
        (folder / name).write_text(value + "\n")
        (folder / name).chmod(0o644)
    openssl = ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj"]
    run(
        [*openssl, "/CN=test CA", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.crt"],
        cwd=folder,
    )
    run([*openssl, "/CN=localhost", "-keyout", "tls_private_key", "-out", "server.csr"], cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "tls_certificate",
        ],
        cwd=folder,
    )
    (folder / "tls_certificate").chmod(0o644)
    # The key only for the proxy's user (www-data, uid 33), as docs/deploy.md says; a user
    # who may not give files away (not root) keeps it readable as before.
    key = folder / "tls_private_key"
    if os.geteuid() == 0:
        os.chown(key, PROXY_UID, PROXY_UID)
        key.chmod(0o600)
    else:
        key.chmod(0o644)
    return folder


def base_image() -> str:
    """python:3.11-slim when the engine has it, else the stand-in that
    tests/standins/offline-base.sh built."""
    override = os.environ.get("DOCKER_BASE_IMAGE")
    candidates = [override] if override else ["python:3.11-slim", "local/python:3.11-slim"]
    for image in candidates:
        if has_image(image):
            return image
    raise StackError(f"none of {candidates} is built; run .ci/ci-setup.sh (make test-docker does)")


def images() -> dict[str, str]:
    """The pinned images where the engine has them, else the locally built stand-ins."""
    if all(has_image(image) for image in UPSTREAM.values()):
        return UPSTREAM
    run(
        ["bash", REPO / "tests" / "standins" / "local-images.sh", base_image()],
        REPO,
        BUILD_TIMEOUT_S,
    )
    return {name: _pinned(image) for name, image in LOCAL.items()}


def _pinned(image: str) -> str:
    """`image` under a tag naming its content: another checkout on the same engine rebuilds
    the shared tag from its own files, and a `down`/`up` recreates containers from the tag."""
    image_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", image], cwd=REPO).strip()
    pinned = f"{image}-{image_id.removeprefix('sha256:')[:12]}"
    run(["docker", "tag", image_id, pinned], cwd=REPO)
    return pinned


def has_image(image: str) -> bool:
    inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    return inspect.returncode == 0


def settings(
    image: str, ports: Mapping[str, int], secrets_dir: Path, **overrides: str
) -> dict[str, str]:
    """What a user writes into .env for this machine: images, loopback ports, account names
    (no password: those are SECRETS_DIR's files), one MLflow worker."""
    return {
        "IMAGE": image,
        "BASE_IMAGE": base_image(),
        "MLFLOW_WORKERS": "1",
        **images(),
        **{name: str(port) for name, port in ports.items()},
        **{key: value for key, value in secrets().items() if value not in passwords()},
        "SECRETS_DIR": str(secrets_dir),
        "PROXY_IMAGE": f"{image}-proxy",
        "PROXY_BIND_ADDRESS": "127.0.0.1",
        **overrides,
    }


def service_container(project_name: str, service: str) -> str:
    """The id of the compose service's container, a finished job's included (not `compose
    run`'s); "" if it has none. docker's own CLI reads compose's labels (v1 and v2 set them)
    in a few ms where `compose ps` (v1 is a Python program) takes about a second, so that
    waiting for a service can look every second."""
    labels = {"project": project_name, "service": service, "oneoff": "False"}
    filters = [f"--filter=label=com.docker.compose.{k}={v}" for k, v in labels.items()]
    return run(["docker", "ps", "-aq", *filters], REPO).strip()


def write_env(project: Path, values: Mapping[str, str]) -> None:
    """The project's .env, which compose reads from the project folder."""
    (project / ".env").write_text("".join(f"{key}={value}\n" for key, value in values.items()))


@dataclass(frozen=True)
class Stack:
    """A project folder with its .env, and the compose project name it runs under."""

    project: Path
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 900) -> str:
        return run([COMPOSE, *FILES, *args], self.project, timeout, self.env)

    def state(self, service: str) -> dict:
        container = service_container(self.env["COMPOSE_PROJECT_NAME"], service)
        if not container:
            return {}
        return json.loads(run(["docker", "inspect", "-f", "{{json .State}}", container], REPO))

    def logs(self, service: str) -> str:
        """The service's stdout (nginx's access log for `proxy`), from its start."""
        container = service_container(self.env["COMPOSE_PROJECT_NAME"], service)
        return run(["docker", "logs", container], REPO)

    def up_server(self, timeout: float = UP_TIMEOUT_S) -> None:
        """`up -d` of MLflow behind its front door, and the `users` job (the pipeline's
        account); returns once that job has finished and the proxy runs."""
        try:
            self.compose("up", "-d", "proxy", "users", timeout=timeout)
        except StackError as exc:
            raise StackError(f"{exc}\n--- logs\n{self.tail()}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for job in ("buckets", "users"):
                state = self.state(job)
                if state.get("Status") == "exited" and state.get("ExitCode") != 0:
                    raise StackError(f"the {job} job exited {state['ExitCode']}\n{self.tail()}")
            users, proxy = self.state("users"), self.state("proxy")
            if users.get("Status") == "exited" and proxy.get("Running"):
                return
            time.sleep(1)
        raise StackError(f"the team stack's server was not up after {timeout:.0f} s")

    def tail(self) -> str:
        """The last lines of every service's log, for an error message."""
        logs = subprocess.run(
            [COMPOSE, *FILES, "logs", "--no-color", "--tail=20"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return logs.stdout[-6000:]

    def down(self) -> None:
        """Containers, network and volumes gone; a failure here is only logged by compose."""
        subprocess.run(
            [COMPOSE, *FILES, "down", "-v", "--remove-orphans"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            timeout=300,
        )
