"""Errors by type: the one place that says what a store, a server or a disk did wrong.

Every failure the pipeline reports in one line is recognised here by its type (sqlite3's
error code, an OSError's errno, requests' and urllib3's exception classes, MLflow's error
codes), never by its message text; `explain` turns it into that line. The chain of an error
(what it was raised from, what SQLAlchemy or requests wrapped) is walked by `chain` only.

Nothing here imports mlflow, requests or urllib3: an error of theirs is recognised through
the modules its raiser has already loaded.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from collections.abc import Iterator
from types import TracebackType
from urllib.parse import urlparse

# MLflow's error codes (mlflow.protos.databricks_pb2) the pipeline tells apart.
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAUTHENTICATED = "UNAUTHENTICATED"
INVALID_PARAMETER = "INVALID_PARAMETER_VALUE"

# errno → what the user should know, for the OSErrors a store or an output write can hit.
_OS_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (an immutable file?)",
}
# sqlite3's primary result codes → (what happened, what to do).
_SQLITE_CAUSES = {
    sqlite3.SQLITE_NOTADB: (
        "file is not a database",
        "corrupt? Move it away to start a new store, or restore a backup",
    ),
    sqlite3.SQLITE_CORRUPT: (
        "database disk image is malformed",
        "restore a backup, or move it away to start anew",
    ),
    sqlite3.SQLITE_BUSY: (
        "database is locked",
        "another process holds a write lock on it; stop that process or retry",
    ),
    sqlite3.SQLITE_LOCKED: (
        "database table is locked",
        "another process holds a write lock on it; stop that process or retry",
    ),
    sqlite3.SQLITE_READONLY: (
        "attempt to write a readonly database",
        "make it and its folder writable, or point MLFLOW_TRACKING_URI at a writable store",
    ),
    sqlite3.SQLITE_FULL: ("database or disk is full", "free space on its disk and retry"),
    sqlite3.SQLITE_CANTOPEN: (
        "unable to open database file",
        "check that its folder exists and is writable",
    ),
}
# A sqlite3 error raised by hand (no result code) is matched on the text sqlite3 gives each
# code; errors raised by SQLite itself always carry their code (Python 3.11).
_SQLITE_BY_TEXT = {cause: code for code, (cause, _) in _SQLITE_CAUSES.items()}
_API_PREFIXES = ("/api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow/")


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every error it wraps: its cause or context, SQLAlchemy's `orig`, the urllib3
    error requests wraps (as its first argument) and the reason of urllib3's MaxRetryError."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [
            getattr(current, "orig", None),
            getattr(current, "reason", None),
            current.args[0] if current.args else None,
            current.__cause__ or current.__context__,
        ]
        pending += [inner for inner in wrapped if isinstance(inner, BaseException)]


def error_code(exc: BaseException) -> str | None:
    """The MLflow error code of the first MLflow error in `exc`'s chain."""
    for current in chain(exc):
        code = getattr(current, "error_code", None)
        if isinstance(code, str) and type(current).__module__.startswith("mlflow"):
            return code
    return None


def is_not_found(exc: BaseException) -> bool:
    """Whether the store answered that the thing asked for does not exist (and nothing else
    went wrong: a server that did not answer is not a "no")."""
    return not store_failed(exc) and error_code(exc) == NOT_FOUND


def no_alias(exc: BaseException) -> bool:
    """Whether the registry answered that a model has no such alias (MLflow says
    RESOURCE_DOES_NOT_EXIST on a server, INVALID_PARAMETER_VALUE on a SQL store)."""
    return not store_failed(exc) and error_code(exc) in (NOT_FOUND, INVALID_PARAMETER)


def store_failed(exc: BaseException) -> bool:
    """Whether `exc` is the store failing: a database error or a server that did not answer."""
    return any(
        _sqlite_code(e) is not None or _http_failure(e) or _database_error(e) for e in chain(exc)
    )


def explain(exc: BaseException, store: str) -> str | None:
    """One line for a store, server, permission or disk failure in `exc`; None for others
    (a bug keeps its traceback)."""
    for current in chain(exc):
        code = _sqlite_code(current)
        if code is not None:
            cause, hint = _SQLITE_CAUSES.get(code, (str(current), None))
            return f"{store}: {cause}" + (f" ({hint})" if hint else "")
        if _http_failure(current):
            return _server_failure(exc, current, store)
        if isinstance(current, OSError) and current.errno in _OS_CAUSES:
            where = f"cannot write {current.filename}: " if current.filename else f"{store}: "
            return where + _OS_CAUSES[current.errno]
    for current in chain(exc):
        if _database_error(current):  # another database than SQLite (PostgreSQL)
            said = str(getattr(current, "orig", None) or current).strip().split("\n", 1)[0]
            return f"{store}: {said[:300]}"
    mlflow_code = error_code(exc)
    if mlflow_code == PERMISSION_DENIED:
        return permission_refused(exc, store)
    if mlflow_code == UNAUTHENTICATED:
        return (
            f"{store} refused the authentication of {_account()} during {mlflow_call(exc)} "
            "(HTTP 401): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    return None


def permission_refused(exc: BaseException, store: str) -> str | None:
    """One line for a server's 403 (MLflow's PERMISSION_DENIED): the account and the call it
    was refused, never the raw response; None for other errors."""
    if error_code(exc) != PERMISSION_DENIED:
        return None
    return (
        f"{store} refused {_account()} {mlflow_call(exc)} (HTTP 403, permission denied): the "
        "admin grants permissions with make team-users (docs/deploy.md, Users and permissions)"
    )


def cause(exc: BaseException) -> str:
    """What went wrong in `exc`, in one short line: the explained failure, or MLflow's own
    message (its first line) when it is none of those."""
    failure = next((e for e in chain(exc) if _http_failure(e)), None)
    if failure is not None:
        return _server_cause(exc, failure)
    explained = explain(exc, "the store")
    if explained is not None:
        return explained.removeprefix("the store: ")
    text = getattr(exc, "message", None)
    text = text if isinstance(text, str) else str(exc)
    line = " ".join(text.split("\n", 1)[0].split())
    if type(exc).__module__.startswith("mlflow") and line:
        return line[:300]  # MLflow's own message says what went wrong
    return f"{type(exc).__name__}: {line[:300]}" if line else type(exc).__name__


def _account() -> str:
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return f"user {username!r}" if username else "an anonymous client"


def _sqlite_code(exc: BaseException) -> int | None:
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # the primary code of an extended one
    return _SQLITE_BY_TEXT.get(str(exc), sqlite3.SQLITE_ERROR)


def _database_error(exc: BaseException) -> bool:
    """An error of the database under a store (SQLAlchemy's DBAPIError), not of a query."""
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    return sqlalchemy is not None and isinstance(exc, sqlalchemy.DBAPIError)


def _http_failure(exc: BaseException) -> bool:
    """A call to a server that timed out or lost its connection (requests or urllib3)."""
    requests = sys.modules.get("requests")
    urllib3 = sys.modules.get("urllib3")
    return (requests is not None and isinstance(exc, requests.RequestException)) or (
        urllib3 is not None and isinstance(exc, urllib3.exceptions.HTTPError)
    )


def _timed_out(exc: BaseException) -> bool:
    requests = sys.modules.get("requests")
    urllib3 = sys.modules.get("urllib3")
    errors = list(chain(exc))
    # urllib3's NewConnectionError (a refused connection) is a ConnectTimeoutError by class.
    if any(isinstance(current, ConnectionRefusedError) for current in errors) or (
        urllib3 is not None
        and any(isinstance(e, urllib3.exceptions.NewConnectionError) for e in errors)
    ):
        return False
    for current in errors:
        if requests is not None and isinstance(current, requests.Timeout):
            return True
        if urllib3 is not None and isinstance(current, urllib3.exceptions.TimeoutError):
            return True
        if isinstance(current, TimeoutError):
            return True
    return False


def _server_failure(exc: BaseException, failure: BaseException, store: str) -> str:
    return (
        f"{store}: {_server_cause(exc, failure)}; the run is ended FAILED when the next "
        "command opens the store"
    )


def _server_cause(exc: BaseException, failure: BaseException) -> str:
    """The server stopped answering or dropped the connection, during which call."""
    how = "stopped answering" if _timed_out(failure) else "refused or dropped the connection"
    return f"the server {how} during {http_call(exc)}"


def http_call(exc: BaseException) -> str:
    """The HTTP call `exc` failed in (`POST runs/log-batch`), from the request requests kept
    or the URL urllib3 kept; else the MLflow function that made it."""
    for current in chain(exc):
        request = getattr(current, "request", None)
        url = getattr(request, "url", None)
        if isinstance(url, str) and url:
            return f"{getattr(request, 'method', None) or 'GET'} {_api_path(url)}".strip()
    for current in chain(exc):
        url = getattr(current, "url", None)  # urllib3's RequestError (a streamed download)
        if isinstance(url, str) and url:
            return f"a download of {_api_path(url)}"
    return mlflow_call(exc)


def mlflow_call(exc: BaseException) -> str:
    """The MLflow function the pipeline called when `exc` was raised (`MlflowClient.get_run`):
    the first frame of `mlflow` in the traceback below the pipeline's own."""
    for current in chain(exc):
        frame = _first_mlflow_frame(current.__traceback__)
        if frame is not None:
            return frame
    return "a call to the store"


def _first_mlflow_frame(tb: TracebackType | None) -> str | None:
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == "mlflow" or module.startswith("mlflow."):
            name = tb.tb_frame.f_code.co_qualname
            if "." in name:  # a method: MlflowClient.get_run
                return name
            # mlflow's fluent API is what users call as `mlflow.start_run`
            return f"mlflow.{name}" if module == "mlflow.tracking.fluent" else f"{module}.{name}"
        tb = tb.tb_next
    return None


def _api_path(url: str) -> str:
    path = urlparse(url).path or url
    for prefix in _API_PREFIXES:
        path = path.removeprefix(prefix)
    return path
