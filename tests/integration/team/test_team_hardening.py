"""The team stack's hardening, checked on the running containers (docs/deploy.md, "Threat
model"): secrets only as files, least privilege for every service, nobody as root in the
project's image, MLflow's AI gateway off and nothing granted by default.

Uses the session's one team stack (tests/integration/conftest.py), so it adds no `up`.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.compose import TeamStack, client
from tests.support.http import http
from tests.support.team import passwords, secrets
from tests.support.tools import run

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(2400)]

# The services of the project's image, which must never run as root.
PROJECT_SERVICES = ("mlflow", "users", "app", "serve", "buckets")
READ_ONLY = {"mlflow", "serve"}


def _inspect(stack: TeamStack, service: str) -> dict:
    container = stack.container(service)
    assert container, f"{service} has no container\n{stack.logs()}"
    return json.loads(run(["docker", "inspect", container], cwd=stack.project).stdout)[0]


def test_no_secret_in_any_container_environment(team_stack: TeamStack) -> None:
    containers = team_stack.compose("ps", "-a", "-q").stdout.split()
    assert len(containers) >= 7, team_stack.compose("ps").stdout
    for container in containers:
        inspected = json.loads(run(["docker", "inspect", container], cwd=team_stack.project).stdout)
        environment = "\n".join(inspected[0]["Config"]["Env"] or [])
        for secret in passwords():
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
    container = team_stack.container(service)
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

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", secrets()["MLFLOW_AUTH_ADMIN_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secrets()["MLFLOW_AUTH_ADMIN_PASSWORD"])
    auth = get_app_client("basic-auth", tracking_uri=team_stack.mlflow_url)
    password = "ungranted-" + secrets()["MLFLOW_FLASK_SERVER_SECRET_KEY"][-8:]
    auth.create_user("ungranted", password)
    stranger = client(team_stack, "ungranted", password, monkeypatch)
    with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|Permission denied"):
        stranger.get_experiment_by_name("iris_classification")
    with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|Permission denied"):
        stranger.get_registered_model("iris_classifier")


def _https(
    stack: TeamStack,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """A request through the proxy, trusting only the test CA."""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(stack.ca_file))
    request = urllib.request.Request(
        f"{stack.proxy_url}{path}", data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _basic(username: str, password: str) -> dict[str, str]:
    import base64

    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


def _pipeline_login() -> dict[str, str]:
    return _basic(secrets()["MLFLOW_TRACKING_USERNAME"], secrets()["MLFLOW_TRACKING_PASSWORD"])


def _wait_for_proxy(stack: TeamStack) -> None:
    import time

    deadline = time.monotonic() + 120
    while True:
        try:
            if _https(stack, "/health")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(2)


def test_the_proxy_serves_mlflow_over_https_with_the_test_ca_only(team_stack: TeamStack) -> None:
    import ssl
    import urllib.error
    import urllib.request

    _wait_for_proxy(team_stack)
    status, body = _https(
        team_stack,
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=iris_classification",
        headers=_pipeline_login(),
    )
    assert status == 200, body
    assert json.loads(body)["experiment"]["name"] == "iris_classification"
    # Without the test CA the certificate is not trusted.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(
            f"{team_stack.proxy_url}/health", timeout=30, context=ssl.create_default_context()
        )


def test_plain_http_only_redirects_to_https(team_stack: TeamStack) -> None:
    import http.client
    from urllib.parse import urlsplit

    _wait_for_proxy(team_stack)
    address = urlsplit(team_stack.proxy_http_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("GET", "/api/2.0/mlflow/experiments/search?max_results=1")
    response = connection.getresponse()
    assert response.status == 301
    assert response.getheader("Location", "").startswith("https://")
    assert b"experiments" not in response.read()


def test_the_proxy_refuses_big_bodies_and_foreign_origins(team_stack: TeamStack) -> None:
    from tests.support.compose import PROXY_MAX_BODY_SIZE

    _wait_for_proxy(team_stack)
    limit = int(PROXY_MAX_BODY_SIZE.removesuffix("m")) * 1024 * 1024
    status, _ = _https(
        team_stack,
        "/api/2.0/mlflow/runs/log-batch",
        method="POST",
        body=b"x" * (limit + 1024),
        headers={**_pipeline_login(), "Content-Type": "application/json"},
    )
    assert status == 413
    status, _ = _https(
        team_stack,
        "/api/2.0/mlflow/experiments/search?max_results=1",
        headers={**_pipeline_login(), "Origin": "http://127.0.0.1:8888"},
    )
    assert status == 403
    status, _ = _https(
        team_stack,
        "/api/2.0/mlflow/experiments/search?max_results=1",
        headers={**_pipeline_login(), "Origin": team_stack.proxy_url},
    )
    assert status == 200


def test_error_bodies_through_the_proxy_hold_no_stack_trace(team_stack: TeamStack) -> None:
    _wait_for_proxy(team_stack)
    for path, body in [
        ("/api/2.0/mlflow/runs/create", b"{not json"),
        ("/api/2.0/mlflow/runs/log-metric", json.dumps({"run_id": "0" * 32}).encode()),
    ]:
        status, answer = _https(
            team_stack,
            path,
            method="POST",
            body=body,
            headers={**_pipeline_login(), "Content-Type": "application/json"},
        )
        assert status >= 400, answer
        assert b"Traceback" not in answer and b'File "' not in answer, answer[:500]


# Runs in a container on the stack's network, so it is a client address of its own: the host's
# requests (the other tests') come from another. Reads the account, its password and the ban's
# seconds from stdin; prints one JSON line once barred, another after the ban.
GUESSER = r"""
import base64, json, ssl, sys, time, urllib.error, urllib.request

username, password, ban = sys.stdin.read().split("\n")[:3]
context = ssl._create_unverified_context()


def attempt(secret):
    login = base64.b64encode(f"{username}:{secret}".encode()).decode()
    request = urllib.request.Request(
        "https://proxy:8443/api/2.0/mlflow/experiments/search?max_results=1",
        headers={"Authorization": "Basic " + login},
    )
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return [response.status, ""]
    except urllib.error.HTTPError as exc:
        return [exc.code, exc.headers.get("Retry-After", "")]


wrong = [attempt(f"guess-{i}") for i in range(10)]
print(json.dumps({"wrong": wrong, "right": attempt(password)}), flush=True)
time.sleep(int(ban) + 2)
print(json.dumps({"right": attempt(password)}), flush=True)
"""


def test_wrong_passwords_in_a_row_bar_the_address_for_a_while(team_stack: TeamStack) -> None:
    """Ten wrong passwords one after the other from one address: the first five (PROXY_LOGIN_
    FAILURES) get MLflow's 401, the rest the proxy's 429 before any password is checked, and
    so does the right password; other addresses are not barred; after PROXY_LOGIN_BAN it is
    let in again."""
    import subprocess

    from tests.support.compose import IMAGE, PROXY_LOGIN_BAN_S

    _wait_for_proxy(team_stack)
    network = f"{team_stack.env['COMPOSE_PROJECT_NAME']}_default"
    guesser = subprocess.Popen(
        [
            "docker",
            "run",
            "--rm",
            "-i",
            "--network",
            network,
            "--entrypoint",
            "python",
            IMAGE,
            "-c",
            GUESSER,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert guesser.stdin is not None and guesser.stdout is not None
        guesser.stdin.write(
            f"{secrets()['MLFLOW_TRACKING_USERNAME']}\n{secrets()['MLFLOW_TRACKING_PASSWORD']}\n"
            f"{PROXY_LOGIN_BAN_S}\n"
        )
        guesser.stdin.close()
        barred = json.loads(guesser.stdout.readline() or "{}")
        # The host, another address, is let in meanwhile.
        host = _https(
            team_stack,
            "/api/2.0/mlflow/experiments/search?max_results=1",
            headers=_pipeline_login(),
        )
        after = json.loads(guesser.stdout.readline() or "{}")
        guesser.wait(timeout=120)
    finally:
        guesser.kill()
    detail = (barred, after, guesser.stderr.read() if guesser.stderr else "", team_stack.logs())
    ban = [429, str(PROXY_LOGIN_BAN_S)]
    assert barred.get("wrong") == [[401, ""]] * 5 + [ban] * 5, detail
    assert barred.get("right") == ban, detail
    assert host[0] == 200, host
    assert after.get("right") == [200, ""], detail


def test_many_requests_at_once_from_one_address_are_slowed_or_refused(
    team_stack: TeamStack,
) -> None:
    """80 requests from 16 threads: the proxy's 10 requests/s per client (PROXY_RATE) hold
    them to ~8 s, or refuse some with 429; MLflow alone answers 80 in ~1 s. Without a login
    (401, which does not count as a failed login)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    _wait_for_proxy(team_stack)

    def attempt(_: int) -> int:
        return _https(team_stack, "/api/2.0/mlflow/experiments/search")[0]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(attempt, range(80)))
    elapsed = time.monotonic() - started
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(429) > 0 or elapsed >= 5, (elapsed, statuses)


def test_a_stages_back_to_back_calls_with_a_login_never_wait(team_stack: TeamStack) -> None:
    """80 calls one after the other with the pipeline's login (a save stage makes ~60 in a few
    seconds): the rate limit neither holds one back (nginx logs each request it delays) nor
    refuses one. Without a login, the 21st above PROXY_RATE already waits (the test above)."""
    import base64

    _wait_for_proxy(team_stack)
    proxy = team_stack.container("proxy")

    def delayed() -> int:
        logs = run(["docker", "logs", proxy], cwd=team_stack.project)
        return (logs.stdout + logs.stderr).count("delaying request")

    account = secrets()
    login = f"{account['MLFLOW_TRACKING_USERNAME']}:{account['MLFLOW_TRACKING_PASSWORD']}"
    headers = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
    before = delayed()
    statuses = [
        _https(team_stack, "/api/2.0/mlflow/experiments/search?max_results=1", headers=headers)[0]
        for _ in range(80)
    ]
    assert statuses == [200] * 80, statuses
    assert delayed() == before, team_stack.logs()


def test_serves_account_reads_the_champion_but_cannot_log_a_run(
    team_stack: TeamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    serve = _inspect(team_stack, "serve")
    username = next(
        item.split("=", 1)[1]
        for item in serve["Config"]["Env"]
        if item.startswith("MLFLOW_TRACKING_USERNAME=")
    )
    assert username != secrets()["MLFLOW_TRACKING_USERNAME"]
    reader = client(team_stack, username, secrets()["MLFLOW_READER_PASSWORD"], monkeypatch)
    assert reader.get_model_version_by_alias("iris_classifier", "champion").version
    experiment = reader.get_experiment_by_name("iris_classification")
    with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|Permission denied"):
        reader.create_run(experiment.experiment_id)


def psql(team_stack: TeamStack, *args: str) -> subprocess.CompletedProcess[str]:
    """psql in the stack's PostgreSQL container, as postgres, on MLflow's database."""
    container = ["docker", "exec", "-u", "postgres", team_stack.container("postgres")]
    command = [*container, "psql", "-U", "postgres", "-d", "mlflow", *args]
    return run(command, cwd=team_stack.project)


def test_mlflow_connects_to_postgresql_as_a_role_that_is_not_a_superuser(
    team_stack: TeamStack,
) -> None:
    query = "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles ORDER BY 1"
    listed = psql(team_stack, "-tA", "-F", " ", "-c", query)
    roles = dict(line.split(" ", 1) for line in listed.stdout.splitlines() if line)
    assert roles["mlflow"] == "f f f", roles
    # ... and it is the role the server uses: it owns MLflow's tables.
    owner = psql(
        team_stack, "-tAc", "SELECT tableowner FROM pg_tables WHERE tablename = 'experiments'"
    )
    assert owner.stdout.strip() == "mlflow"
