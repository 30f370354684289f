"""The champion's history on a real `mlflow server` with basic-auth and two accounts: the
pipeline's save stage and a releaser's `registry promote` are recorded with who, when, from,
to, why and commit; a move made through the REST API (as the MLflow UI does) shows as an
unrecorded move, and a rollback then refuses to guess."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO, copy_repository, set_params
from tests.support.servers import team_server_in
from tests.support.tools import run

# Two trainings against a basic-auth server: minutes on a shared machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = ("admin", "admin-pw-" + os.urandom(6).hex())
PIPELINE = ("pipeline", "pipeline-pw-" + os.urandom(6).hex())
RELEASER = ("carol", "releaser-pw-" + os.urandom(6).hex())
MODEL = "iris_classifier"


def credentials(account: tuple[str, str]) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": account[0], "MLFLOW_TRACKING_PASSWORD": account[1]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLflow's basic-auth app as docker/mlflow-team-server.sh starts it, on SQLite; the two
    accounts made by `mlpipeline team users`."""
    folder = tmp_path_factory.mktemp("auth-server")
    settings = {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{folder / 'auth.db'}",
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
    }
    artifacts = ["--serve-artifacts", "--artifacts-destination", str(folder / "artifacts")]
    with team_server_in(folder, settings, *artifacts) as (url, _):
        admin = {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        }
        users = ["python", "-m", "mlpipeline", "team", "users"]
        run([*users, "pipeline"], cwd=REPO, env=tool_env({**admin, **credentials(PIPELINE)}))
        run(
            [*users, "releaser", RELEASER[0]],
            cwd=REPO,
            env=tool_env({**admin, "TEAM_USER_PASSWORD": RELEASER[1]}),
        )
        yield url


def registry(
    project: Path, url: str, account: tuple[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = tool_env({"MLFLOW_TRACKING_URI": url, **credentials(account)})
    return run(["python", "-m", "mlpipeline", "model", *args], cwd=project, env=env, check=check)


def history(project: Path, url: str, account: tuple[str, str]) -> dict:
    return json.loads(registry(project, url, account, "history", "--json").stdout)


def test_every_move_is_recorded_and_a_move_elsewhere_is_reported(
    server: str, tmp_path: Path
) -> None:
    import requests

    project = copy_repository(tmp_path / "project")
    pipeline_env = tool_env({"MLFLOW_TRACKING_URI": server, **credentials(PIPELINE)})
    run(["dvc", "repro"], cwd=project, env=pipeline_env)
    commit = run(["git", "rev-parse", "HEAD"], cwd=project).stdout.strip()

    first = history(project, server, PIPELINE)
    assert first["current_version"] == "1" and first["unrecorded_move"] is None
    [saved] = first["moves"]
    assert (saved["who"], saved["via"], saved["from_version"], saved["to_version"]) == (
        "pipeline",
        "save (dvc)",
        None,
        "1",
    )
    assert saved["why"].startswith(f"registered {MODEL} version 1; now @champion: score ")
    assert saved["commit"] == commit

    # A second version, then the releaser moves the alias to whichever one it is not on.
    set_params(project, train__n_estimators=20)
    run(["dvc", "repro"], cwd=project, env=pipeline_env)
    current = history(project, server, PIPELINE)["current_version"]
    target = "1" if current == "2" else "2"
    registry(project, server, RELEASER, "promote", target, "--reason", "canary looked fine")
    moved = history(project, server, RELEASER)
    last = moved["moves"][-1]
    assert (last["who"], last["via"], last["from_version"], last["to_version"]) == (
        RELEASER[0],
        "promote",
        current,
        target,
    )
    assert last["why"] == "canary looked fine"
    assert moved["current_version"] == target and moved["unrecorded_move"] is None
    table = registry(project, server, RELEASER, "history").stdout
    assert f"{MODEL}@champion: version {target}" in table
    assert "canary looked fine" in table and "pipeline" in table and RELEASER[0] in table

    # The MLflow UI moves the alias through the same REST call: nothing records it.
    response = requests.post(
        f"{server}/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL, "alias": "champion", "version": current},
        auth=ADMIN,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    elsewhere = history(project, server, RELEASER)
    assert elsewhere["current_version"] == current
    assert elsewhere["unrecorded_move"] == (
        f"unrecorded move: the alias is on version {current}, its last recorded move set it to "
        f"version {target} (moved outside the project's commands: the MLflow UI or another "
        "client)"
    )
    assert (
        "unrecorded move: the alias is on version"
        in registry(project, server, RELEASER, "history").stdout
    )
    refused = registry(project, server, RELEASER, "rollback", check=False)
    assert refused.returncode == 1
    assert "cannot be rolled back: unrecorded move" in refused.stderr

    # Put on record again by a promote; a rollback then returns to where that move came from.
    registry(project, server, RELEASER, "promote", target, "--reason", "back to the canary")
    registry(project, server, RELEASER, "rollback", "--reason", "canary errors")
    final = history(project, server, RELEASER)
    assert final["current_version"] == current and final["unrecorded_move"] is None
    assert [m["via"] for m in final["moves"][-2:]] == ["promote", "rollback"]
    assert final["moves"][-1]["why"] == "canary errors"
