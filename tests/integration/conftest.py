"""Shared by the integration suites: the compose stacks (docker-compose.yml alone, and with
docker/docker-compose.team.yml) and the helpers the tests of both use.

The team stack is one per session: every module that asks for `team_stack` gets the same
stack, so CI brings it up once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# PASSWORDS, SECRET_FILES and SECRETS are the test modules' too.
from benchmarks import team_stack as team_stack_setup
from benchmarks.team_stack import COMPOSE, FILES, PORTS, write_env, write_secrets
from benchmarks.team_stack import PASSWORDS as PASSWORDS
from benchmarks.team_stack import SECRET_FILES as SECRET_FILES
from benchmarks.team_stack import SECRETS as SECRETS
from tests.conftest import (
    REPO,
    copy_repository,
    free_port,
    mlflow_server_in,
    run,
    serving,
    tool_env,
)

# One tag per checkout that builds it at once (DOCKER_TEST_IMAGE): parallel suites on one engine.
IMAGE = os.environ.get("DOCKER_TEST_IMAGE", "dvc-mlops-pipeline:test")
# The image's own non-root user; a checkout may belong to anybody else.
APP_UID = 1000
UP_TIMEOUT_S = 900
# The first row of each class in the Iris data set.
KNOWN_ROWS = {
    "setosa": [5.1, 3.5, 1.4, 0.2],
    "versicolor": [7.0, 3.2, 4.7, 1.4],
    "virginica": [6.3, 3.3, 6.0, 2.5],
}


def base_image() -> str:
    """python:3.11-slim when the engine has it, else the stand-in docker/offline-base.sh built."""
    try:
        return team_stack_setup.base_image()
    except team_stack_setup.StackError as exc:
        pytest.fail(str(exc))


def http(url: str, payload: object | None = None, timeout: float = 10) -> tuple[int, bytes]:
    """GET (or POST JSON when payload is given); the status and body, also for 4xx/5xx."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# The team stack's proxy limit on API request bodies (PROXY_MAX_BODY_SIZE), its default.
PROXY_MAX_BODY_SIZE = "1m"
# How long the proxy bars an address after its failed logins (PROXY_LOGIN_BAN), short for the
# test that waits it out.
PROXY_LOGIN_BAN_S = 15


@dataclass(frozen=True, kw_only=True)
class ComposeProject:
    """A copy of the repository where compose runs, with its environment (the project name,
    .env's values) and the compose files beyond docker-compose.yml."""

    project: Path
    env: dict[str, str]
    files: tuple[str, ...] = ()

    def compose(
        self, *args: str, check: bool = True, timeout: float = 900, env: dict | None = None
    ):
        return run(
            [COMPOSE, *self.files, *args],
            cwd=self.project,
            env={**self.env, **(env or {})},
            check=check,
            timeout=timeout,
        )

    def container(self, service: str) -> str:
        """The service's container, a finished job's included (not `compose run`'s); "" if
        it has none."""
        return self.compose("ps", "-q", service).stdout.strip()

    def state(self, service: str) -> dict:
        container = self.container(service)
        if not container:
            return {}
        inspect = run(["docker", "inspect", "-f", "{{json .State}}", container], cwd=self.project)
        return json.loads(inspect.stdout)

    def logs(self, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", check=False).stdout

    def wait_until_healthy(
        self, service: str, jobs: tuple[str, ...], servers: tuple[str, ...] = ()
    ) -> None:
        """Until SERVICE is healthy; fails early when one of JOBS exited non-zero or one of
        SERVERS exited at all, and after UP_TIMEOUT_S."""
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline:
            for job in jobs:
                state = self.state(job)
                if state.get("Status") == "exited" and state.get("ExitCode") != 0:
                    pytest.fail(f"the {job} job exited {state['ExitCode']}\n{self.logs()}")
            for server in servers:
                if self.state(server).get("Status") == "exited":
                    pytest.fail(f"the {server} service exited\n{self.logs()}")
            if self.state(service).get("Health", {}).get("Status") == "healthy":
                return
            time.sleep(5)
        pytest.fail(f"{service} was not healthy after {UP_TIMEOUT_S} s\n{self.logs()}")


@dataclass(frozen=True, kw_only=True)
class TeamStack(ComposeProject):
    files: tuple[str, ...] = tuple(FILES)
    mlflow_url: str
    serve_url: str
    s3_url: str
    # The front door (docker/proxy.conf): HTTPS with the test CA, and plain HTTP.
    proxy_url: str = ""
    proxy_http_url: str = ""
    ca_file: Path | None = None

    def running_containers(self) -> list[str]:
        """The containers running now (the finished jobs' are listed too, but exited)."""
        listed = self.compose("ps", "-q").stdout.split()
        states = run(["docker", "inspect", "-f", "{{.State.Running}}", *listed], cwd=self.project)
        return [c for c, up in zip(listed, states.stdout.split(), strict=True) if up == "true"]

    def up(self) -> None:
        """`up -d` of the pipeline and serving (their dependencies come along), until serve
        is healthy; fails early when a job exits non-zero."""
        self.compose("up", "-d", "app", "serve", "proxy", timeout=UP_TIMEOUT_S)
        self.wait_until_healthy("serve", jobs=("buckets", "users", "app"))

    def as_account(self, username: str, password: str) -> dict[str, str]:
        return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}

    def tracking(self, through_proxy: bool = False) -> dict[str, str]:
        """The MLflow settings of a host process: MLflow's loopback port, or the front door
        (HTTPS, trusting the test CA) as a teammate on another machine uses it."""
        if not through_proxy:
            return {"MLFLOW_TRACKING_URI": self.mlflow_url}
        return {"MLFLOW_TRACKING_URI": self.proxy_url,
                "MLFLOW_TRACKING_SERVER_CERT_PATH": str(self.ca_file)}  # fmt: skip


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is not installed; run docker/ci-setup.sh (make test-docker does)")
    project = copy_repository(tmp_path_factory.mktemp("team-compose") / "project")
    # A checkout of the image's user, as on a workstation (docker/entrypoint.sh refuses root's).
    # The app's writable mounts must exist, as docs/deploy.md has a fresh clone make them.
    for folder in ("cache", "tmp"):
        (project / ".dvc" / folder).mkdir(exist_ok=True)
    run(["chown", "-R", f"{APP_UID}:{APP_UID}", project], cwd=project)
    ports = {name: free_port() for name in PORTS}
    secrets_dir = write_secrets(tmp_path_factory.mktemp("team-secrets") / "secrets")
    try:
        settings = team_stack_setup.settings(
            IMAGE,
            ports,
            secrets_dir,
            PROXY_MAX_BODY_SIZE=PROXY_MAX_BODY_SIZE,
            PROXY_LOGIN_BAN=str(PROXY_LOGIN_BAN_S),
        )
    except team_stack_setup.StackError as exc:
        pytest.fail(str(exc))
    write_env(project, settings)
    env = tool_env({"COMPOSE_PROJECT_NAME": f"mlopsteam{os.getpid()}"})
    stack = TeamStack(
        project=project,
        env=env,
        mlflow_url=f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
        serve_url=f"http://127.0.0.1:{ports['SERVE_PORT']}",
        s3_url=f"http://127.0.0.1:{ports['MINIO_PORT']}",
        proxy_url=f"https://localhost:{ports['PROXY_HTTPS_PORT']}",
        proxy_http_url=f"http://127.0.0.1:{ports['PROXY_HTTP_PORT']}",
        ca_file=secrets_dir / "ca.crt",
    )
    try:
        stack.compose("build", "app", "proxy", timeout=1500)
        stack.up()
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)


def client(
    stack: TeamStack,
    username: str,
    password: str,
    monkeypatch: pytest.MonkeyPatch,
    through_proxy: bool = False,
):
    from mlflow import MlflowClient

    settings = {**stack.tracking(through_proxy), **stack.as_account(username, password)}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    uri = settings["MLFLOW_TRACKING_URI"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def pipeline_client(stack: TeamStack, monkeypatch: pytest.MonkeyPatch):
    return client(
        stack, SECRETS["MLFLOW_TRACKING_USERNAME"], SECRETS["MLFLOW_TRACKING_PASSWORD"], monkeypatch
    )


def output_bytes(root: Path) -> dict[str, bytes]:
    """Every file of every cached output dvc.lock records (git's files, such as the user's
    data/external/, are not DVC's to push)."""
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    outputs = [
        root / out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])
    ]
    files = [
        path
        for output in outputs
        for path in (sorted(output.rglob("*")) if output.is_dir() else [output])
        if path.is_file()
    ]
    # metrics.json is `cache: false`: git's, like the rest of metrics/.
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in files
        if not path.relative_to(root).as_posix().startswith("metrics/")
    }


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on a free 127.0.0.1 port, with its own SQLite store."""
    with mlflow_server_in(tmp_path) as (port, _):
        yield f"http://127.0.0.1:{port}"


TEAM_SERVER_SCRIPT = REPO / "docker" / "mlflow-team-server.sh"


@contextmanager
def team_server_in(
    folder: Path, settings: Mapping[str, str], *args: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """docker/mlflow-team-server.sh (MLflow's basic-auth app as the compose service starts
    it) on a free 127.0.0.1 port with one worker: SETTINGS (store, admin, S3) over the tools'
    environment and a new Flask secret; TMPDIR, working folder and log (mlflow.log) in FOLDER;
    ARGS go to `mlflow server`. Yields its URL and the script's process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = tool_env({"MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
                    "TMPDIR": str(folder), **settings})  # fmt: skip
    command = ["sh", TEAM_SERVER_SCRIPT, "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", *args]  # fmt: skip
    with serving(command, f"{url}/health", folder / "mlflow.log", env, cwd=folder) as process:
        yield url, process
