"""What the team stack hands out and lets a container write (docs/deploy.md, "Threat model"):
the front door's TLS, redirect, Origin and body rules, the S3 stand-in's keys, and the app
container's mounts.

Uses the session's one team stack (tests/integration/conftest.py), so it adds no `up`.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.compose import PROXY_MAX_BODY_SIZE, TeamStack
from tests.support.team import secrets
from tests.support.tools import run

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(2400)]

SEARCH = "/api/2.0/mlflow/experiments/search"
# The pipeline's largest API call, measured on `dvc repro` (a log-batch; docs/deploy.md).
LARGEST_API_CALL_BYTES = 4240


def _login(username: str, password: str) -> dict[str, str]:
    import base64

    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


PIPELINE = _login(secrets()["MLFLOW_TRACKING_USERNAME"], secrets()["MLFLOW_TRACKING_PASSWORD"])


def _https(
    stack: TeamStack,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A request through the proxy (the test CA trusted): status, headers, body."""
    address = urlsplit(stack.proxy_url)
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    connection = http.client.HTTPSConnection(
        address.hostname, address.port, timeout=60, context=context
    )
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), answer


def _handshake(stack: TeamStack, ciphers: str) -> str | None:
    """The cipher a TLS 1.2 client offering only CIPHERS agrees on, or None if refused."""
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(stack.ca_file))
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    # Level 0: the client must be able to offer the weak suites the server should refuse.
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    address = urlsplit(stack.proxy_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=address.hostname) as tls:
                return tls.cipher()[0]
        except ssl.SSLError:
            return None


@pytest.mark.parametrize(
    "ciphers",
    [
        "AES128-GCM-SHA256:AES256-GCM-SHA384",  # RSA key exchange: no forward secrecy
        "AES128-SHA:AES256-SHA256",  # RSA key exchange and CBC
        "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384",  # forward secret, but CBC
        "DHE-RSA-AES128-GCM-SHA256",  # finite-field DH: not offered either
    ],
)
def test_tls_1_2_refuses_suites_without_forward_secrecy_or_with_cbc(
    team_stack: TeamStack, ciphers: str
) -> None:
    assert _handshake(team_stack, ciphers) is None


def test_tls_1_2_agrees_on_ecdhe_with_aead(team_stack: TeamStack) -> None:
    assert _handshake(team_stack, "ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"
    assert _handshake(team_stack, "ECDHE-RSA-CHACHA20-POLY1305") == "ECDHE-RSA-CHACHA20-POLY1305"


def test_plain_http_redirects_to_the_configured_name_whatever_the_host_header(
    team_stack: TeamStack,
) -> None:
    address = urlsplit(team_stack.proxy_http_url)
    for host in ("evil.example", "localhost"):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        connection.request("GET", f"{SEARCH}?max_results=1", headers={"Host": host})
        response = connection.getresponse()
        assert response.status == 301
        # PROXY_SERVER_NAME and the published HTTPS port, never the client's Host.
        assert response.getheader("Location") == f"{team_stack.proxy_url}{SEARCH}?max_results=1"


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),
        ("{proxy}", 200),  # the front door's own origin, exactly
        ("https://localhost", 403),  # the right name on another port (443)
        ("https://localhost:1", 403),
        ("http://localhost:8888", 403),  # Jupyter's
        ("{proxy}.evil.example", 403),
        ("null", 403),
    ],
)
def test_only_the_front_doors_own_origin_may_call_mlflow(
    team_stack: TeamStack, origin: str | None, status: int
) -> None:
    headers = dict(PIPELINE)
    if origin is not None:
        headers["Origin"] = origin.format(proxy=team_stack.proxy_url)
    assert _https(team_stack, f"{SEARCH}?max_results=1", headers=headers)[0] == status


def test_api_bodies_are_held_to_the_limit_artifacts_are_not(team_stack: TeamStack) -> None:
    limit = int(PROXY_MAX_BODY_SIZE.removesuffix("m")) * 1024 * 1024
    # The pipeline's largest call fits with room to spare.
    assert limit > LARGEST_API_CALL_BYTES * 100
    json_login = {**PIPELINE, "Content-Type": "application/json"}
    search = json.dumps({"max_results": 1, "filter": " " * (limit - 200)}).encode()
    assert _https(team_stack, SEARCH, method="POST", body=search, headers=json_login)[0] != 413
    status, _, _ = _https(
        team_stack, SEARCH, method="POST", body=b" " * (limit + 1), headers=json_login
    )
    assert status == 413
    # A body of no stated length (http.client sends an iterable chunked) is refused before
    # it is read.
    chunked = (b"x" * 1024 for _ in range(4))
    assert _https(team_stack, SEARCH, method="POST", body=chunked, headers=json_login)[0] == 411
    # An artifact upload over the API limit reaches MLflow (which checks the account).
    upload = "/api/2.0/mlflow-artifacts/artifacts/0/size-check/big.bin"
    status, _, _ = _https(
        team_stack,
        upload,
        method="PUT",
        body=b"\0" * (limit + 1),
        headers=_login("nobody", "wrong"),
    )
    assert status == 401


def test_error_answers_never_echo_the_request(team_stack: TeamStack) -> None:
    """MLflow quotes a bad parameter's value in its 400; through the front door a long one
    keeps only its error code."""
    marker = "echo-me-" + "x" * 8000
    body = json.dumps({"max_results": marker}).encode()
    status, _, answer = _https(
        team_stack,
        SEARCH,
        method="POST",
        body=body,
        headers={**PIPELINE, "Content-Type": "application/json"},
    )
    assert status == 400, answer[:300]
    assert b"echo-me" not in answer
    assert json.loads(answer)["error_code"] == "INVALID_PARAMETER_VALUE"
    # A short MLflow message still comes through whole.
    status, _, answer = _https(
        team_stack,
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=no-such-one",
        headers=PIPELINE,
    )
    assert status in (403, 404) and b"error_code" in answer, answer


def _s3(stack: TeamStack, method: str, path: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(f"{stack.s3_url}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _s3_client(stack: TeamStack, secret: str):
    """boto3's S3 client on the stack's object store, with the root user and `secret`;
    signature v4, as MinIO takes it (presigned URLs included)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        region_name="us-east-1",
        aws_access_key_id=secrets()["MINIO_ROOT_USER"],
        aws_secret_access_key=secret,
        config=Config(signature_version="s3v4"),
    )


def test_the_object_store_refuses_requests_without_its_key(team_stack: TeamStack) -> None:
    from botocore.exceptions import ClientError

    assert _s3(team_stack, "GET", "/mlflow-artifacts?list-type=2") == 403
    assert _s3(team_stack, "PUT", "/mlflow-artifacts/planted.txt", b"planted") == 403
    # The stand-in's own API (reset, recorder, auth switch) is not for other hosts either.
    assert _s3(team_stack, "POST", "/moto-api/reset-auth", b"inf") == 403

    def listing(secret: str) -> int:
        try:
            listed = _s3_client(team_stack, secret).list_objects_v2(Bucket="mlflow-artifacts")
        except ClientError as exc:
            return exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return listed["ResponseMetadata"]["HTTPStatusCode"]

    assert listing(secrets()["MINIO_ROOT_PASSWORD"] + "-wrong") == 403
    assert listing(secrets()["MINIO_ROOT_PASSWORD"]) == 200

    # Presigned URLs (what MLflow hands its clients for downloads) as MinIO takes them: the
    # key's signature passes, a changed one does not.
    s3 = _s3_client(team_stack, secrets()["MINIO_ROOT_PASSWORD"])
    s3.put_object(Bucket="mlflow-artifacts", Key="presign-check.txt", Body=b"signed")
    params = {"Bucket": "mlflow-artifacts", "Key": "presign-check.txt"}
    presigned = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    url = presigned.removeprefix(team_stack.s3_url)
    assert _s3(team_stack, "GET", url) == 200
    assert _s3(team_stack, "GET", url[:-4] + "0000") == 403


def test_the_app_container_writes_only_the_pipelines_outputs(team_stack: TeamStack) -> None:
    """The app's mounts: the checkout read-only, the outputs, dvc.lock and the cache writable;
    .env empty and .dvc/config.local absent, as the checkout's owner sees them."""
    container = team_stack.container("app")
    mounts = json.loads(
        run(
            ["docker", "inspect", "-f", "{{json .Mounts}}", container], cwd=team_stack.project
        ).stdout
    )
    writable = sorted(m["Destination"] for m in mounts if m["RW"])
    assert writable == sorted(
        f"/workspace/{path}"
        for path in ("data", "models", "metrics", "plots", "dvc.lock", ".dvc/cache", ".dvc/tmp")
    ), mounts
    # A clone with DVC keys has one (docs/deploy.md, "DVC remote"); this one only for the probe.
    config_local = team_stack.project / ".dvc" / "config.local"
    config_local.write_text("# keys would be here\n")
    probe = (
        "for path in .git/hooks/post-checkout .git/config dvc.yaml stages/planted.py "
        ".dvc/config .dvc/config.local; do"
        ' (echo planted >> "$path") 2>/dev/null && echo "wrote $path"; done;'
        " test -s .env && echo 'read .env';"
        " test -e .dvc/config.local && echo 'read .dvc/config.local';"
        " echo ok > metrics/probe.txt && rm metrics/probe.txt && echo outputs-writable"
    )
    try:
        proc = team_stack.compose("run", "--rm", "--no-deps", "app", "sh", "-c", probe, check=False)
    finally:
        config_local.unlink()
    assert proc.stdout.split() == ["outputs-writable"], (proc.stdout, proc.stderr)


def test_the_tls_key_is_readable_by_the_proxys_user_only(team_stack: TeamStack) -> None:
    proxy = team_stack.container("proxy")
    listed = run(
        ["docker", "exec", proxy, "stat", "-c", "%a %U", "/run/secrets/tls_private_key"],
        cwd=team_stack.project,
    )
    assert listed.stdout.split() == ["600", "www-data"]


# Run in a container of the jupyter service (its networks, its reader login): what a
# notebook's code can reach. Prints one word per probe.
NETWORK_PROBE = """
import base64, os, urllib.error, urllib.request

def status(url, login):
    auth = base64.b64encode(login.encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": "Basic " + auth})
    try:
        return str(urllib.request.urlopen(request, timeout=10).status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except OSError:
        return "unreachable"

login = os.environ["MLFLOW_TRACKING_USERNAME"] + ":" + os.environ["MLFLOW_TRACKING_PASSWORD"]
search = "/api/2.0/mlflow/experiments/search?max_results=1"
print(status("http://mlflow:5000" + search, login))
print(os.environ["MLFLOW_TRACKING_URI"], status(os.environ["MLFLOW_TRACKING_URI"] + search, login))
wrong = [status("http://proxy:8000" + search, "reader:wrong-password") for _ in range(6)]
print(" ".join(wrong))
"""


def test_mlflows_own_port_is_closed_to_the_users_containers(team_stack: TeamStack) -> None:
    """From jupyter, mlflow:5000 is not on the network; the proxy's inner door answers, with
    the front door's failed-login ban (PROXY_LOGIN_FAILURES=5, then 429)."""
    proc = team_stack.compose(
        "run", "--rm", "--no-deps", "jupyter", "python", "-c", NETWORK_PROBE, check=False
    )
    assert proc.stdout.split() == [
        "unreachable",
        "http://proxy:8000",
        "200",
        *["401"] * 5,
        "429",
    ], (proc.stdout, proc.stderr)


def _loopback(
    stack: TeamStack, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], float]:
    """A request to MLflow's address on the host, 127.0.0.1:MLFLOW_PORT (plain HTTP): status,
    headers and seconds."""
    import time

    address = urlsplit(stack.mlflow_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    started = time.perf_counter()
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    response.read()
    seconds = time.perf_counter() - started
    connection.close()
    return response.status, dict(response.getheaders()), seconds


def _restart_proxy(stack: TeamStack) -> None:
    """A new proxy process (its failed-login counts start empty), once the loopback door
    answers again."""
    import time

    stack.compose("restart", "proxy")
    deadline = time.monotonic() + 120
    while True:
        try:
            if _loopback(stack, "/health")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(1)


def test_the_hosts_mlflow_port_is_the_proxys_door(team_stack: TeamStack) -> None:
    """127.0.0.1:MLFLOW_PORT reaches the proxy's inner door, never MLflow's own port: MLflow's
    UI there may call the API (its Origin), other origins and other Host names may not."""
    mlflow = team_stack.container("mlflow")
    published = run(["docker", "port", mlflow], cwd=team_stack.project).stdout
    assert published.strip() == "", published
    port = urlsplit(team_stack.mlflow_url).port
    for origin, status in [
        (None, 200),
        (f"http://127.0.0.1:{port}", 200),
        (f"http://localhost:{port}", 200),
        ("http://127.0.0.1:1", 403),
        ("http://evil.example", 403),
    ]:
        headers = dict(PIPELINE) if origin is None else {**PIPELINE, "Origin": origin}
        assert _loopback(team_stack, f"{SEARCH}?max_results=1", headers)[0] == status, origin
    # A page under another name rebound to 127.0.0.1 (DNS rebinding) is refused.
    for host, status in [(f"localhost:{port}", 200), (f"evil.example:{port}", 403)]:
        headers = {**PIPELINE, "Host": host}
        assert _loopback(team_stack, f"{SEARCH}?max_results=1", headers)[0] == status, host


def test_wrong_passwords_on_the_hosts_mlflow_port_bar_it(team_stack: TeamStack) -> None:
    """Five wrong passwords on 127.0.0.1:MLFLOW_PORT, for a known and unknown accounts in
    turn: each 401, an unknown account's as slow as a known one's (no telling who has an
    account); then the right password is refused (429) too. The host's processes are one
    address to the proxy, so the proxy is restarted after, to let the other tests in."""
    _restart_proxy(team_stack)
    known = secrets()["MLFLOW_TRACKING_USERNAME"]
    try:
        answers = {"known": [], "unknown": []}
        for attempt in range(5):
            account = "known" if attempt % 2 == 0 else "unknown"
            username = known if account == "known" else f"nobody-{attempt}"
            status, _, seconds = _loopback(
                team_stack, f"{SEARCH}?max_results=1", _login(username, f"guess-{attempt}")
            )
            answers[account].append((status, seconds))
        barred, headers, _ = _loopback(team_stack, f"{SEARCH}?max_results=1", PIPELINE)
    finally:
        _restart_proxy(team_stack)
    assert [status for status, _ in answers["known"] + answers["unknown"]] == [401] * 5, answers
    assert barred == 429 and headers.get("Retry-After"), (barred, headers)
    # The fastest of each: load on the machine only ever adds time. MLflow alone answers an
    # unknown account in ~5% of a known one's time.
    fastest = {account: min(seconds for _, seconds in tried) for account, tried in answers.items()}
    assert fastest["unknown"] >= 0.5 * fastest["known"], answers
    assert _loopback(team_stack, f"{SEARCH}?max_results=1", PIPELINE)[0] == 200


def test_an_account_that_may_not_read_the_model_is_told_it_is_missing_and_writes_nothing(
    team_stack: TeamStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stages' access check (mlpipeline/tracking/access.py) on an account granted the
    experiment but not the model: MLflow's search leaves out what it may not read, so the
    check cannot tell a missing model from a hidden one and says both; load does no work and
    nothing is created. An account granted nothing is told it may not read the experiment."""
    from mlflow.server import get_app_client

    from mlpipeline.tool_env import tool_env
    from tests.support.repository import copy_repository

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", secrets()["MLFLOW_AUTH_ADMIN_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secrets()["MLFLOW_AUTH_ADMIN_PASSWORD"])
    auth = get_app_client("basic-auth", tracking_uri=team_stack.mlflow_url)
    password = "no-model-" + secrets()["MLFLOW_FLASK_SERVER_SECRET_KEY"][-8:]
    auth.create_user("no-model", password)
    auth.create_user("no-grant", password)
    found = _as_admin(team_stack, f"{EXPERIMENT_BY_NAME}?experiment_name=iris_classification")
    auth.grant_user_permission(
        "no-model", "experiment", found["experiment"]["experiment_id"], "EDIT"
    )
    project = copy_repository(tmp_path / "project")
    expected = {
        "no-model": (
            f"MLflow server {team_stack.mlflow_url}: registered model 'iris_classifier' "
            "(params.yaml, mlflow) does not exist or user 'no-model' may not read it; "
            "user 'no-model' will not create it"
        ),
        "no-grant": (
            f"MLflow server {team_stack.mlflow_url}: user 'no-grant' may not read experiment "
            "'iris_classification'; the admin grants it: make team-users ROLE=pipeline "
            "NAME=no-grant"
        ),
    }
    for username, line in expected.items():
        env = tool_env(
            {
                "MLFLOW_TRACKING_URI": team_stack.mlflow_url,
                "MLFLOW_TRACKING_USERNAME": username,
                "MLFLOW_TRACKING_PASSWORD": password,
            }
        )
        refused = run(["dvc", "repro"], cwd=project, env=env, check=False, timeout=300)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, output[-2000:]
        errors = [row for row in output.splitlines() if row.startswith("[load] ERROR")]
        assert len(errors) == 1 and line in errors[0], output[-2000:]
        assert "Traceback" not in output
        assert not (project / "data" / "raw" / "dataset.csv").exists()  # load did no work
    models = _as_admin(team_stack, "/api/2.0/mlflow/registered-models/search")
    assert [model["name"] for model in models["registered_models"]] == ["iris_classifier"]


EXPERIMENT_BY_NAME = "/api/2.0/mlflow/experiments/get-by-name"


def _as_admin(stack: TeamStack, path: str) -> dict:
    admin = _login(secrets()["MLFLOW_AUTH_ADMIN_USERNAME"], secrets()["MLFLOW_AUTH_ADMIN_PASSWORD"])
    request = urllib.request.Request(f"{stack.mlflow_url}{path}", headers=admin)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())
