"""The team server's login check (mlpipeline/tracking/team_auth.py, named by
docker/mlflow-team-server.sh): an unknown user's wrong login costs what a known user's does,
so answer times do not tell who has an account; right logins still pass."""

from __future__ import annotations

import base64
import os
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.servers import team_server_in

# One basic-auth server start: tens of seconds on a shared machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = ("admin", "admin-pw-" + os.urandom(6).hex())
KNOWN = ("known-user", "known-pw-" + os.urandom(6).hex())
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def status_and_seconds(url: str, username: str, password: str) -> tuple[int, float]:
    login = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(url + SEARCH, headers={"Authorization": "Basic " + login})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("auth-timing")
    settings = {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{folder / 'auth.db'}",
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        # No remembered logins: every answer below pays its own check.
        "MLFLOW_AUTH_CACHE_TTL_SECONDS": "0",
    }
    with team_server_in(folder, settings) as (url, _):
        from mlflow.server.auth.client import AuthServiceClient

        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
        try:
            AuthServiceClient(url).create_user(*KNOWN)
        finally:
            del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
        yield url


def test_unknown_users_are_answered_in_a_known_users_time(server: str) -> None:
    """Wrong passwords for a known and an unknown account, interleaved: both 401, and the
    unknown account's median answer at least half the known one's (MLflow alone: ~5%)."""
    known, unknown = [], []
    for attempt in range(9):
        status, seconds = status_and_seconds(server, KNOWN[0], f"wrong-{attempt}")
        assert status == 401
        known.append(seconds)
        status, seconds = status_and_seconds(server, f"nobody-{attempt}", f"wrong-{attempt}")
        assert status == 401
        unknown.append(seconds)
    assert statistics.median(unknown) >= 0.5 * statistics.median(known), (known, unknown)


def test_the_right_password_still_passes(server: str) -> None:
    assert status_and_seconds(server, *KNOWN)[0] == 200
    assert status_and_seconds(server, *ADMIN)[0] == 200
    assert status_and_seconds(server, KNOWN[0], "")[0] == 401
