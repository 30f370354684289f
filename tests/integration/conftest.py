"""Fixtures of the integration suites: the team stack (docker-compose.yml with
docker/docker-compose.team.yml) and a plain MLflow server.

The team stack is one per session: every module that asks for `team_stack` gets the same
stack, so CI brings it up once.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support import team
from tests.support.compose import (
    APP_UID,
    IMAGE,
    PROXY_LOGIN_BAN_S,
    PROXY_MAX_BODY_SIZE,
    TeamStack,
)
from tests.support.repository import copy_repository
from tests.support.servers import free_port, mlflow_server_in
from tests.support.team import COMPOSE, PORTS, write_env, write_secrets
from tests.support.tools import run


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is not installed; run .ci/ci-setup.sh (make test-docker does)")
    project = copy_repository(tmp_path_factory.mktemp("team-compose") / "project")
    # A checkout of the image's user, as on a workstation (docker/entrypoint.sh refuses root's).
    # The app's writable mounts must exist, as docs/deploy.md has a fresh clone make them.
    for folder in ("cache", "tmp"):
        (project / ".dvc" / folder).mkdir(exist_ok=True)
    run(["chown", "-R", f"{APP_UID}:{APP_UID}", project], cwd=project)
    ports = {name: free_port() for name in PORTS}
    secrets_dir = write_secrets(tmp_path_factory.mktemp("team-secrets") / "secrets")
    try:
        settings = team.settings(
            IMAGE,
            ports,
            secrets_dir,
            PROXY_MAX_BODY_SIZE=PROXY_MAX_BODY_SIZE,
            PROXY_LOGIN_BAN=str(PROXY_LOGIN_BAN_S),
        )
    except team.StackError as exc:
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


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on a free 127.0.0.1 port, with its own SQLite store."""
    with mlflow_server_in(tmp_path) as (port, _):
        yield f"http://127.0.0.1:{port}"
