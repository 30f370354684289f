"""Tracking's pure helpers: names for MLflow, where the embedded store lives, failing fast."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlpipeline.domain.errors import TrackingError
from mlpipeline.files.paths import ROOT, workspace_root
from mlpipeline.tracking import store
from mlpipeline.tracking.model_log import flatten
from mlpipeline.tracking.runs import tracking_uri
from mlpipeline.tracking.server import HEALTH_TIMEOUT_S, check_reachable


@pytest.mark.parametrize(
    ("mapping", "flat"),
    [
        ({}, {}),
        ({"accuracy": 0.9}, {"accuracy": 0.9}),
        (
            {"train": {"n_estimators": 100, "max_depth": None}},
            {"train.n_estimators": 100, "train.max_depth": None},
        ),
        (
            {"accuracy": 1.0, "per_class": {"setosa": {"f1": 1.0, "support": 10}}},
            {"accuracy": 1.0, "per_class.setosa.f1": 1.0, "per_class.setosa.support": 10},
        ),
        ({"empty": {}, "list": [1, 2]}, {"list": [1, 2]}),
    ],
)
def test_flatten(mapping: dict[str, Any], flat: dict[str, Any]) -> None:
    assert flatten(mapping) == flat


def test_flatten_prefix() -> None:
    assert flatten({"a": {"b": 1}}, prefix="load.") == {"load.a.b": 1}


@pytest.mark.parametrize(
    ("root", "workspace"),
    [
        ("/home/me/iris", "/home/me/iris"),
        ("/home/me/iris/.dvc/tmp/exps/tmpab12cd", "/home/me/iris"),
        ("/home/me/iris/.dvc/tmp/exps/run/tmpab12cd", "/home/me/iris"),
        ("/home/me/iris/.dvc/tmp", "/home/me/iris/.dvc/tmp"),
        ("/home/me/iris/dvc/tmp/exps/x", "/home/me/iris/dvc/tmp/exps/x"),
        ("/exps/.dvc/tmp/x", "/exps/.dvc/tmp/x"),
    ],
)
def test_workspace_root(root: str, workspace: str) -> None:
    assert workspace_root(Path(root)) == Path(workspace)


def test_workspace_root_defaults_to_this_repository() -> None:
    assert workspace_root() == ROOT


@pytest.mark.parametrize(
    "root", [Path("/home/me/iris"), Path("/home/me/iris/.dvc/tmp/exps/tmpab12cd")]
)
def test_embedded_store_lives_at_the_workspace_root(root: Path) -> None:
    uri = store.resolve_uri(None, root)
    assert uri == "sqlite:////home/me/iris/mlflow.db"  # four slashes: an absolute path
    assert store.artifact_location(uri) == "file:///home/me/iris/mlartifacts"


def test_embedded_store_defaults_to_this_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri()
    assert uri == f"sqlite:///{ROOT / 'mlflow.db'}"
    assert store.artifact_location(uri) == (ROOT / "mlartifacts").as_uri()


IN_A_COPY = Path("/home/me/iris/.dvc/tmp/exps/tmpab12cd")


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        (None, "sqlite:////home/me/iris/mlflow.db"),
        ("", "sqlite:////home/me/iris/mlflow.db"),
        ("sqlite:///mlflow.db", "sqlite:////home/me/iris/mlflow.db"),
        ("sqlite:///stores/team.db?timeout=5", "sqlite:////home/me/iris/stores/team.db?timeout=5"),
        ("sqlite:////srv/mlflow/m.db", "sqlite:////srv/mlflow/m.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("postgresql://mlflow@db/mlflow", "postgresql://mlflow@db/mlflow"),
    ],
)
def test_sqlite_stores_resolve_against_the_users_repository(
    given: str | None, resolved: str
) -> None:
    assert store.resolve_uri(given, IN_A_COPY) == resolved


@pytest.mark.parametrize(
    ("uri", "artifacts"),
    [
        ("sqlite:////home/me/iris/mlflow.db", "file:///home/me/iris/mlartifacts"),
        ("sqlite:////srv/mlflow/m.db?timeout=5", "file:///srv/mlflow/mlartifacts"),
        ("http://127.0.0.1:5000", None),
        ("postgresql://mlflow@db/mlflow", None),
    ],
)
def test_artifacts_live_beside_a_sqlite_store(uri: str, artifacts: str | None) -> None:
    assert store.artifact_location(uri) == artifacts


def test_a_process_is_gone_when_its_pid_is_gone_or_reused() -> None:
    me = store.process_tags()
    assert me[store.HOST_TAG].startswith(socket.gethostname())
    assert not store.process_is_gone(me)
    assert not store.process_is_gone({})  # a run we did not tag is not ours to judge
    reused = me | {store.STARTED_TAG: str(float(me[store.STARTED_TAG]) - 3600)}
    assert store.process_is_gone(reused)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert store.process_is_gone(me | {store.PID_TAG: str(child.pid)})


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_unreachable_server_fails_fast_naming_the_uri(closed_port: int, suffix: str) -> None:
    uri = f"http://127.0.0.1:{closed_port}{suffix}"
    started = time.monotonic()
    with pytest.raises(TrackingError) as caught:
        check_reachable(uri)
    assert time.monotonic() - started < HEALTH_TIMEOUT_S + 1
    message = str(caught.value)
    assert uri in message
    assert "unreachable" in message
    assert "MLFLOW_TRACKING_URI" in message


@pytest.mark.parametrize(
    "uri", ["sqlite:////home/me/iris/mlflow.db", "file:///home/me/iris/mlruns", "databricks"]
)
def test_non_http_stores_are_not_probed(uri: str) -> None:
    assert check_reachable(uri) is None


def test_importing_the_stages_is_free_of_side_effects(tmp_path: Path) -> None:
    # Heavy or networked libraries load only inside the functions that use them.
    code = (
        "import sys\n"
        "import stages.load, stages.preprocess, stages.train, stages.evaluate, stages.save\n"
        "import mlpipeline.tracking.runs, mlpipeline.files.outputs, mlpipeline.runner\n"
        "heavy = {'mlflow', 'matplotlib', 'zenml', 'sklearn', 'dvc'} & set(sys.modules)\n"
        "assert not heavy, sorted(heavy)\n"
        "import os\n"
        "assert 'MLFLOW_TRACKING_URI' not in os.environ\n"
    )
    env = {"PATH": "", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 answering 200 to every GET, its certificate self-signed:
    the URL and the certificate (its own CA)."""
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


def refusal(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> tuple[str, str]:
    """check_reachable's one-line TrackingError for a 127.0.0.1 server whose GETs `answer`
    handles, and the server's URI."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer(self)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(TrackingError) as caught:
            check_reachable(uri)
    finally:
        server.shutdown()
        server.server_close()
    assert "\n" not in str(caught.value)
    return str(caught.value), uri


@pytest.mark.parametrize("status", [401, 403])
def test_check_reachable_names_an_authentication_failure(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose /health answers but whose API refuses is neither healthy nor dead."""
    seen: list[str | None] = []

    def answer(request: http.server.BaseHTTPRequestHandler) -> None:
        seen.append(request.headers.get("Authorization"))
        request.send_response(200 if request.path == "/health" else status)
        request.end_headers()

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-in-any-message")
    message, uri = refusal(answer)
    assert f"MLflow tracking server {uri}" in message
    assert "authentication" in message and "unreachable" not in message
    assert "'pipeline'" in message and "not-in-any-message" not in message
    assert len(seen) == 2 and all(header and header.startswith("Basic ") for header in seen)


def test_an_address_the_front_door_bars_is_told_why_and_how_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The team stack's proxy answers 429 with Retry-After to an address after repeated
    failed logins (docker/proxy.conf): one line with its reason and wait, not "unreachable"."""

    def answer(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(429)
        request.send_header("Retry-After", "900")
        request.send_header("Content-Type", "text/plain")
        request.end_headers()
        request.wfile.write(b"too many failed logins from this address; try again later\n")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-in-any-message")
    message, uri = refusal(answer)
    assert message.startswith(f"MLflow tracking server {uri} turned this address away")
    assert "HTTP 429: too many failed logins from this address" in message
    assert "try again in 900 s" in message
    assert "MLFLOW_TRACKING_PASSWORD" in message and "not-in-any-message" not in message
    assert "unreachable" not in message


def test_a_server_behind_a_private_ca_is_reached_with_the_ca_mlflow_is_given(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLFLOW_TRACKING_SERVER_CERT_PATH (docs/deploy.md, the front door) is trusted by the
    stages' first check as by MLflow's client; without it the certificate is refused."""
    uri, ca = https_server
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_INSECURE_TLS", raising=False)
    with pytest.raises(TrackingError, match="CERTIFICATE_VERIFY_FAILED"):
        check_reachable(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(ca))
    assert check_reachable(uri) is None
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    assert check_reachable(uri) is None


def test_logged_models_pin_pip_so_mlflow_does_not_warn() -> None:
    """MLflow pins pip in a logged model's conda.yaml, and warns "Failed to resolve installed
    pip version" on every model it logs when the environment has no pip (a uv venv)."""
    import mlflow.sklearn

    dependencies = mlflow.sklearn.get_default_conda_env()["dependencies"]
    assert any(str(item).startswith("pip<=") for item in dependencies), dependencies
