"""The team stack's hardening, checked on the running containers (docs/deploy.md, "Threat
model"): secrets only as files, least privilege for every service, nobody as root in the
project's image, MLflow's AI gateway off and nothing granted by default.

Uses the session's one team stack (tests/integration/conftest.py), so it adds no `up`.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run
from tests.integration.conftest import PASSWORDS, SECRETS, TeamStack, client, http

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(2400)]

# The services of the project's image, which must never run as root.
PROJECT_SERVICES = ("mlflow", "users", "app", "serve", "buckets")
READ_ONLY = {"mlflow", "serve"}


def _inspect(stack: TeamStack, service: str) -> dict:
    container = stack.compose("ps", "-a", "-q", service).stdout.strip()
    assert container, f"{service} has no container\n{stack.logs()}"
    return json.loads(run(["docker", "inspect", container], cwd=stack.project).stdout)[0]


def test_no_secret_in_any_container_environment(team_stack: TeamStack) -> None:
    containers = team_stack.compose("ps", "-a", "-q").stdout.split()
    assert len(containers) >= 7, team_stack.compose("ps").stdout
    for container in containers:
        inspected = json.loads(run(["docker", "inspect", container], cwd=team_stack.project).stdout)
        environment = "\n".join(inspected[0]["Config"]["Env"] or [])
        for secret in PASSWORDS:
            assert secret not in environment, (inspected[0]["Name"], secret[:4])


@pytest.mark.parametrize(
    "service", ["postgres", "minio", "buckets", "mlflow", "users", "app", "serve"]
)
def test_every_service_drops_capabilities_and_is_limited(
    team_stack: TeamStack, service: str
) -> None:
    host = _inspect(team_stack, service)["HostConfig"]
    assert host["CapDrop"] == ["ALL"], host["CapDrop"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0
    assert host["PidsLimit"] > 0
    assert host["ReadonlyRootfs"] is (service in READ_ONLY)
    if service in PROJECT_SERVICES:
        assert sorted(cap.removeprefix("CAP_") for cap in host["CapAdd"]) == ["SETGID", "SETUID"]


@pytest.mark.parametrize("service", ["mlflow", "serve", "postgres"])
def test_long_running_services_are_not_root(team_stack: TeamStack, service: str) -> None:
    container = team_stack.compose("ps", "-q", service).stdout.strip()
    status = run(["docker", "exec", container, "cat", "/proc/1/status"], cwd=team_stack.project)
    uids = next(line for line in status.stdout.splitlines() if line.startswith("Uid:")).split()
    assert "0" not in uids[1:], (service, uids)


def test_finished_jobs_ran_as_the_checkout_owner(team_stack: TeamStack) -> None:
    # The app wrote its outputs as the checkout's owner, not as root.
    owner = team_stack.project.stat().st_uid
    assert owner != 0
    assert (team_stack.project / "models" / "pipeline.pkl").stat().st_uid == owner


def test_the_ai_gateway_is_off_and_what_answers_without_a_login(team_stack: TeamStack) -> None:
    status, body = http(f"{team_stack.mlflow_url}/health")
    assert status == 200, body
    # Capability discovery answers without a login (MLflow's choice); it says the gateway is off.
    status, body = http(f"{team_stack.mlflow_url}/api/3.0/mlflow/server-info")
    assert status == 200, body
    assert json.loads(body)["features_enabled"]["gateway"] is False
    # Everything else needs one.
    status, _ = http(f"{team_stack.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1")
    assert status == 401


def test_an_account_nobody_granted_anything_sees_nothing(
    team_stack: TeamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", SECRETS["MLFLOW_AUTH_ADMIN_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRETS["MLFLOW_AUTH_ADMIN_PASSWORD"])
    auth = get_app_client("basic-auth", tracking_uri=team_stack.mlflow_url)
    password = "ungranted-" + SECRETS["MLFLOW_FLASK_SERVER_SECRET_KEY"][-8:]
    auth.create_user("ungranted", password)
    stranger = client(team_stack, "ungranted", password, monkeypatch)
    with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|Permission denied"):
        stranger.get_experiment_by_name("iris_classification")
    with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|Permission denied"):
        stranger.get_registered_model("iris_classifier")
