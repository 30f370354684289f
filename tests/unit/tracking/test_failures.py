"""Errors by type (mlpipeline/tracking/failures.py): real errors from SQLite, requests and
MLflow's client, each explained in one line by its type and code, never by its text."""

from __future__ import annotations

import errno
import http.server
import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline.runner import exit_on_user_error
from mlpipeline.tracking import drift_reference
from mlpipeline.tracking.failures import (
    cause,
    explain,
    is_not_found,
    no_alias,
    permission_refused,
    store_failed,
)

STORE = "MLflow store S"


@pytest.fixture
def fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client as the pipeline sets it (no retries), with a 1 s timeout."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_RESPECT_RETRY_AFTER_HEADER", "false")


@pytest.fixture
def silent_uri() -> Iterator[str]:
    """A server that takes connections and never answers (the kernel accepts them)."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def closed_uri() -> str:
    """A port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def answering(status: int, body: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def refusing_uri() -> Iterator[str]:
    yield from answering(403, b"Permission denied")


@pytest.fixture
def unauthenticated_uri() -> Iterator[str]:
    yield from answering(401, b"You are not authenticated.")


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def _locked_db(path: Path) -> sqlite3.Connection:
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_sqlite_errors_are_told_by_their_code(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    not_a_db = _raised(lambda: sqlite3.connect(garbage).execute("SELECT 1 FROM t"))
    line = explain(not_a_db, STORE)
    assert line == (
        f"{STORE}: file is not a database (corrupt? Move it away to start a new store, or "
        "restore a backup)"
    )

    holder = _locked_db(tmp_path / "locked.db")
    try:
        busy = _raised(
            lambda: sqlite3.connect(tmp_path / "locked.db", timeout=0).execute("SELECT * FROM t")
        )
    finally:
        holder.close()
    assert getattr(busy, "sqlite_errorname", "") == "SQLITE_BUSY"
    assert explain(busy, STORE).startswith(f"{STORE}: database is locked (another process")
    assert store_failed(busy)


def test_a_locked_mlflow_store_is_one_line_without_sql(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()
    holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        error = _raised(lambda: client.create_experiment("x"))
    finally:
        holder.close()
    assert "\n" in str(error)  # MLflow's own message carries the SQL statement
    line = explain(error, STORE)
    assert line is not None and "\n" not in line and "INSERT" not in line
    assert line.startswith(f"{STORE}: database is locked")
    assert "INSERT" not in cause(error) and "\n" not in cause(error)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (sqlite3.OperationalError("database is locked"), f"{STORE}: database is locked"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/m.db"),
            "cannot write /data/m.db: the disk is full",
        ),
        (OSError(errno.EROFS, "Read-only file system"), f"{STORE}: the file system is read-only"),
    ],
)
def test_store_and_disk_failures_become_one_line(error: Exception, message: str) -> None:
    try:
        try:
            raise error
        except Exception as inner:
            raise RuntimeError("wrapped, as MLflow and SQLAlchemy do") from inner
    except RuntimeError as outer:
        line = explain(outer, STORE)
    assert line is not None and line.startswith(message) and "\n" not in line


@pytest.mark.parametrize(
    "error", [ValueError("a bug"), OSError(errno.ENOENT, "No such file"), KeyError("run_id")]
)
def test_other_errors_keep_their_traceback(error: Exception) -> None:
    assert explain(error, STORE) is None
    assert not store_failed(error)


def test_a_silent_server_is_named_with_the_call_not_taken_for_not_found(
    silent_uri: str, fast_client: None
) -> None:
    from mlflow import MlflowClient

    error = _raised(lambda: MlflowClient(tracking_uri=silent_uri).get_run("0" * 32))
    line = explain(error, f"MLflow store {silent_uri}")
    assert line is not None and "\n" not in line
    assert line.startswith(f"MLflow store {silent_uri}: the server stopped answering during GET ")
    assert "runs/get" in line
    assert store_failed(error) and not is_not_found(error) and not no_alias(error)


def test_a_dead_server_is_one_short_line(closed_uri: str, fast_client: None) -> None:
    from mlflow import MlflowClient

    error = _raised(lambda: MlflowClient(tracking_uri=closed_uri).get_run("0" * 32))
    assert len(str(error)) > 300  # urllib3's whole retry story
    line = explain(error, f"MLflow store {closed_uri}")
    assert line == (
        f"MLflow store {closed_uri}: the server refused or dropped the connection during GET "
        "runs/get; the run is ended FAILED when the next command opens the store"
    )
    assert cause(error).startswith("the server refused or dropped the connection during GET")


def test_a_missing_run_is_not_found(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    error = _raised(lambda: client.get_run("0" * 32))
    assert is_not_found(error) and not store_failed(error)
    assert explain(error, STORE) is None


@pytest.mark.parametrize(
    ("username", "account"), [("alice", "user 'alice'"), (None, "an anonymous client")]
)
def test_a_403_names_the_account_and_the_call(
    refusing_uri: str,
    fast_client: None,
    username: str | None,
    account: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    if username:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    error = _raised(lambda: MlflowClient(tracking_uri=refusing_uri).create_run("1"))
    line = permission_refused(error, STORE)
    assert line == explain(error, STORE)
    assert line is not None and "\n" not in line
    assert line.startswith(f"{STORE} refused {account} MlflowClient.create_run (HTTP 403")
    assert "Response body" not in line


def test_a_401_asks_for_the_credentials(unauthenticated_uri: str, fast_client: None) -> None:
    from mlflow import MlflowClient

    error = _raised(lambda: MlflowClient(tracking_uri=unauthenticated_uri).get_run("0" * 32))
    line = explain(error, STORE)
    assert line is not None and "(HTTP 401)" in line and "MLFLOW_TRACKING_PASSWORD" in line
    assert "MlflowClient.get_run" in line


def test_the_edge_exits_1_with_one_line(
    refusing_uri: str, fast_client: None, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow import MlflowClient

    logger = logging.getLogger("test_failures")
    with (
        pytest.raises(SystemExit) as exited,
        caplog.at_level(logging.ERROR),
        exit_on_user_error(logger),
    ):
        MlflowClient(tracking_uri=refusing_uri).create_run("1")
    assert exited.value.code == 1
    (record,) = caplog.records
    assert "MlflowClient.create_run (HTTP 403" in record.getMessage()


# --- the drift gate fails closed (issue 30, item 14)


def test_a_run_without_a_reference_has_none_and_one_with_it_reads(tmp_path: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("e", artifact_location=str(tmp_path / "art"))
        with mlflow.start_run(experiment_id=experiment) as bare:
            pass
        with mlflow.start_run(experiment_id=experiment) as profiled:
            drift_reference.log_reference({"features": {}})
        assert drift_reference.load_reference(bare.info.run_id) is None
        assert drift_reference.load_reference(profiled.info.run_id) == {"features": {}}
    finally:
        mlflow.set_tracking_uri(None)


def test_a_reference_the_server_does_not_give_fails_the_gate(
    silent_uri: str, fast_client: None
) -> None:
    import mlflow

    from mlpipeline.domain.errors import TrackingError

    mlflow.set_tracking_uri(silent_uri)
    try:
        with pytest.raises(TrackingError) as caught:
            drift_reference.load_reference("0" * 32)
    finally:
        mlflow.set_tracking_uri(None)
    message = str(caught.value)
    assert "\n" not in message
    assert "drift reference" in message and "stopped answering during GET" in message
