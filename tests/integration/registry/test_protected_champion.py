"""A protected champion on a real `mlflow server` with basic auth, as
docker/mlflow-team-server.sh starts it with MLFLOW_ALIAS_MOVERS: the pipeline account and a
releaser move @champion; a reader, and an editor granted EDIT on the model, are refused by the
server with one line, while the editor still sets other aliases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO
from tests.support.servers import team_server_in
from tests.support.tools import run

# A basic-auth server and four accounts on a shared machine: a minute.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = ("admin", "admin-pw-" + os.urandom(6).hex())
PIPELINE = ("pipeline", "pipeline-pw-" + os.urandom(6).hex())
RELEASER = ("carol", "releaser-pw-" + os.urandom(6).hex())
READER = ("dave", "reader-pw-" + os.urandom(6).hex())
EDITOR = ("eve", "editor-pw-" + os.urandom(6).hex())
MODEL = "iris_classifier"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import requests

    folder = tmp_path_factory.mktemp("guarded-server")
    settings = {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{folder / 'auth.db'}",
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_ALIAS_MOVERS": f"{PIPELINE[0]},{RELEASER[0]}",
    }
    with team_server_in(folder, settings) as (url, _):
        api = f"{url}/api/2.0/mlflow"
        for path, body in [
            ("registered-models/create", {"name": MODEL}),
            ("model-versions/create", {"name": MODEL, "source": "s3://models/m/1"}),
            ("model-versions/create", {"name": MODEL, "source": "s3://models/m/2"}),
        ]:
            answer = requests.post(f"{api}/{path}", json=body, auth=ADMIN, timeout=30)
            assert answer.status_code == 200, answer.text
        editor = (
            "from mlflow.server import get_app_client\n"
            f"auth = get_app_client('basic-auth', tracking_uri={url!r})\n"
            f"auth.create_user({EDITOR[0]!r}, {EDITOR[1]!r})\n"
            f"auth.grant_user_permission({EDITOR[0]!r}, 'registered_model', {MODEL!r}, 'EDIT')\n"
        )
        as_admin = {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_TRACKING_USERNAME": ADMIN[0],
            "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
        }
        run(["python", "-c", editor], cwd=folder, env=tool_env(as_admin))
        admin = {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        }
        users = ["python", "-m", "mlpipeline", "team", "users"]
        for role, (name, password) in [
            ("pipeline", PIPELINE),
            ("releaser", RELEASER),
            ("reader", READER),
        ]:
            env = {
                **admin,
                "MLFLOW_TRACKING_USERNAME": name,
                "MLFLOW_TRACKING_PASSWORD": password,
                "TEAM_USER_PASSWORD": password,
            }
            run([*users, role, name], cwd=REPO, env=tool_env(env))
        yield url


def set_alias(url: str, account: tuple[str, str], alias: str, version: str) -> tuple[int, str]:
    import requests

    answer = requests.post(
        f"{url}/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL, "alias": alias, "version": version},
        auth=account,
        timeout=30,
    )
    return answer.status_code, answer.text


def champion(url: str) -> str:
    import requests

    answer = requests.get(
        f"{url}/api/2.0/mlflow/registered-models/get",
        params={"name": MODEL},
        auth=ADMIN,
        timeout=30,
    )
    aliases = {a["alias"]: a["version"] for a in answer.json()["registered_model"]["aliases"]}
    return aliases.get("champion", "-")


def test_only_the_pipeline_and_releasers_move_the_champion(server: str, tmp_path: Path) -> None:
    import requests

    assert set_alias(server, PIPELINE, "champion", "1") == (200, "{}")
    assert set_alias(server, RELEASER, "champion", "2")[0] == 200
    assert champion(server) == "2"

    for account in (EDITOR, READER):
        status, text = set_alias(server, account, "champion", "1")
        assert status == 403, text
        assert text.strip() == (
            f"{MODEL}@champion is protected: only the pipeline's save gate and releasers "
            f"(`mlpipeline model promote VERSION --reason ...`) move it, not {account[0]}"
        )
        assert champion(server) == "2"
    deleted = requests.delete(
        f"{server}/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL, "alias": "champion"},
        auth=EDITOR,
        timeout=30,
    )
    assert deleted.status_code == 403 and champion(server) == "2"

    # EDIT still means EDIT elsewhere: the editor sets @challenger, which is not protected
    # (docs/champion.md); the reader does not.
    assert set_alias(server, EDITOR, "challenger", "1")[0] == 200
    assert set_alias(server, READER, "challenger", "2")[0] == 403

    # A client sees the server's one line as its error.
    env = tool_env(
        {
            "MLFLOW_TRACKING_URI": server,
            "MLFLOW_TRACKING_USERNAME": EDITOR[0],
            "MLFLOW_TRACKING_PASSWORD": EDITOR[1],
        }
    )
    script = (
        "from mlflow import MlflowClient\n"
        f"MlflowClient().set_registered_model_alias({MODEL!r}, 'champion', '1')\n"
    )
    refused = run(["python", "-c", script], cwd=tmp_path, env=env, check=False)
    assert refused.returncode != 0
    assert f"{MODEL}@champion is protected" in refused.stderr
    assert champion(server) == "2"
