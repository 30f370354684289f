"""`mlpipeline team zenml-server`: ZenML's server with a login, its files private (docs/zenml.md).

The real server (ZenML's app under uvicorn) on a free 127.0.0.1 port, its data and this
client's config in a temp ZENML_CONFIG_PATH; stopped at the end by the command's `--stop`.
"""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO
from tests.support.servers import free_port
from tests.support.tools import run

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Server:
    url: str
    config: Path  # the client's ZENML_CONFIG_PATH
    env: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.config / "team-server"


def call(url: str, token: str | None = None, form: dict | None = None) -> tuple[int, dict]:
    """Status and JSON body of one request (a form POST when FORM is given)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


def token_for(url: str, username: str, password: str) -> str:
    status, body = call(f"{url}/api/v1/login", form={"username": username, "password": password})
    assert status == 200, status
    return body["access_token"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("zenml-server") / "zenml_config"
    port = free_port()
    env = tool_env(
        {
            "ZENML_CONFIG_PATH": str(config),
            "ZENML_SERVER_PORT": str(port),
            "ZENML_ANALYTICS_OPT_IN": "false",
        }
    )
    command = ["python", "-m", "mlpipeline", "team", "zenml-server"]
    try:
        for _ in range(2):  # the second run reuses the running server
            started = run(command, REPO, env, timeout=400)
        assert "logged in as pipeline" in started.stderr
        yield Server(f"http://127.0.0.1:{port}", config, env)
    finally:
        stopped = run([*command, "--stop"], REPO, env, check=False, timeout=120)
        assert "stopped" in stopped.stderr, stopped.stderr


def test_every_api_call_needs_a_login(server: Server) -> None:
    for path in ("/api/v1/secrets", "/api/v1/users", "/api/v1/stacks"):
        assert call(server.url + path)[0] == 401, path
    assert call(f"{server.url}/api/v1/secrets", token="forged")[0] == 401
    status, info = call(f"{server.url}/api/v1/info")
    assert status == 200 and info["auth_scheme"] == "OAUTH2_PASSWORD_BEARER"
    assert info["analytics_enabled"] is False


def test_files_are_the_owners_only_and_analytics_off(server: Server) -> None:
    client_files = ("config.yaml", "credentials.yaml")
    server_files = ("password", "jwt_secret_key", "server.pid", "server.log")
    database = server.folder / "config" / "local_stores" / "default_zen_store" / "zenml.db"
    paths = [server.config / name for name in client_files]
    paths += [server.folder / name for name in server_files] + [database]
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    folders = [path for path in server.config.rglob("*") if path.is_dir()] + [server.config]
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert yaml.safe_load((server.config / "config.yaml").read_text())["analytics_opt_in"] is False


def test_a_private_secret_is_the_pipeline_accounts_only(server: Server) -> None:
    """What `team zenml-stack` stores: another account of the same server cannot read it."""
    script = (
        "from zenml.client import Client\n"
        "client = Client()\n"
        "client.create_secret(name='probe-s3', values={'key': 'value'}, private=True)\n"
        "client.create_user(name='other', password='other-password-12345')\n"
    )
    run(["python", "-c", script], REPO, server.env, timeout=300)
    password = (server.folder / "password").read_text().strip()
    mine = token_for(server.url, "pipeline", password)
    other = token_for(server.url, "other", "other-password-12345")
    names = {
        who: {secret["name"] for secret in call(f"{server.url}/api/v1/secrets", token)[1]["items"]}
        for who, token in (("pipeline", mine), ("other", other))
    }
    assert names == {"pipeline": {"probe-s3"}, "other": set()}
