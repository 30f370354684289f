"""Compose projects the Docker suites run: a copy of the repository with its compose
environment (ComposeProject), and the team stack on it (TeamStack), with MLflow clients for
its accounts."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import team
from tests.support.team import COMPOSE, FILES
from tests.support.tools import run

# One tag per checkout that builds it at once (DOCKER_TEST_IMAGE): parallel suites on one engine.
IMAGE = os.environ.get("DOCKER_TEST_IMAGE", "dvc-mlops-pipeline:test")
# The image's own non-root user; a checkout may belong to anybody else.
APP_UID = 1000
UP_TIMEOUT_S = 900


def base_image() -> str:
    """python:3.11-slim when the engine has it, else the stand-in that
    tests/standins/offline-base.sh built."""
    try:
        return team.base_image()
    except team.StackError as exc:
        pytest.fail(str(exc))


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
        return team.service_container(self.env["COMPOSE_PROJECT_NAME"], service)

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
            time.sleep(1)
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
        return {
            "MLFLOW_TRACKING_URI": self.proxy_url,
            "MLFLOW_TRACKING_SERVER_CERT_PATH": str(self.ca_file),
        }


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
        stack,
        team.secrets()["MLFLOW_TRACKING_USERNAME"],
        team.secrets()["MLFLOW_TRACKING_PASSWORD"],
        monkeypatch,
    )
