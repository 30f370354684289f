"""The shared edge of every stage script: logging setup, params, and clean failures."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.params import Params
from mlpipeline.files.params_yaml import load_params
from mlpipeline.files.paths import PARAMS

log = logging.getLogger("mlpipeline")


def run_stage(name: str, main: Callable[[Params], None], argv: list[str] | None = None) -> None:
    """Parse `--params`, validate params, run `main`; a PipelineError exits 1 with its message.

    Every stage does all its work before it writes anything, so a failure leaves the
    previous outputs in place (dvc.yaml marks them `persist` so DVC keeps them too).
    """
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=main.__doc__)
    parser.add_argument(
        "--params", type=Path, default=PARAMS, help="params file (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        main(load_params(args.params))
    exit_without_final_collection(0)


def exit_without_final_collection(status: int) -> NoReturn:
    """End a finished stage (or ZenML pipeline) process, skipping the last garbage collections.

    At exit the interpreter's collector walks every object MLflow (with SQLAlchemy's ORM),
    scikit-learn and pandas created, to free cycles nobody will use again: ~0.9 s of CPU per
    MLflow stage (benchmarks/notes.md). Freezing them first (a public `gc` call) skips that
    walk; exit handlers, stream flushing and thread joins still run as on any exit.
    """
    import gc

    gc.freeze()
    sys.exit(status)


@contextlib.contextmanager
def exit_on_user_error(logger: logging.Logger) -> Iterator[None]:
    """Errors the user can act on become one logged message and exit status 1."""
    # MLflow logs a database error with its whole traceback before raising it; the raised
    # error is reported below, in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    try:
        yield
    except PipelineError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    except Exception as exc:
        # A store or disk that fails (corrupt, locked, read-only, full) and MLflow's own
        # errors (a store that refuses a write, a server that died mid-run) are the user's to
        # act on too; anything else is a bug and keeps its traceback.
        mlflow = sys.modules.get("mlflow")
        store = f"MLflow store {mlflow.get_tracking_uri()}" if mlflow else "writing an output"
        message = failure_message(exc, store) or permission_refused(exc, store)
        if message is None:
            if not type(exc).__module__.startswith("mlflow"):
                raise
            message = f"{store}: {exc}"
        logger.error("%s", message)
        sys.exit(1)


# errno → what the user should know, for the OSErrors a store or an output write can hit.
_OS_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (an immutable file?)",
}
# sqlite3's messages → what to do about them.
_SQLITE_HINTS = {
    "file is not a database": "corrupt? Move it away to start a new store, or restore a backup",
    "database disk image is malformed": "restore a backup, or move it away to start anew",
    "database is locked": "another process holds a write lock on it; stop that process or retry",
    "attempt to write a readonly database": "make it and its folder writable, or point "
    "MLFLOW_TRACKING_URI at a writable store",
    "database or disk is full": "free space on its disk and retry",
    "unable to open database file": "check that its folder exists and is writable",
}


def failure_message(exc: BaseException, store: str) -> str | None:
    """One line for a database or disk failure in `exc` or what it wraps; None for others.

    SQLAlchemy's message carries the SQL statement and its parameters over many lines; the
    sqlite3 error it wraps says what happened.
    """
    import sqlite3

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        original = getattr(current, "orig", None)
        error = original if isinstance(original, sqlite3.Error) else current
        if isinstance(error, sqlite3.Error):
            cause = str(error)
            hint = _SQLITE_HINTS.get(cause)
            return f"{store}: {cause}" + (f" ({hint})" if hint else "")
        server = _server_failure(current, store)
        if server is not None:
            return server
        if isinstance(current, OSError) and current.errno in _OS_CAUSES:
            where = f"cannot write {current.filename}: " if current.filename else f"{store}: "
            return where + _OS_CAUSES[current.errno]
        current = current.__cause__ or current.__context__
    return None


def _server_failure(exc: BaseException, store: str) -> str | None:
    """One line for an HTTP call to a tracking server that timed out or lost its connection.

    requests names the call in its error (its request); the message says which API it was
    (`runs/update`, `logged-models/<id>/artifacts/...`) and how it failed, never the retry
    machinery's repr.
    """
    requests = sys.modules.get("requests")
    if requests is None or not isinstance(exc, requests.RequestException):
        return None
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None) or ""
    path = urlparse(url).path
    for prefix in ("/api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow/"):
        path = path.removeprefix(prefix)
    call = f"{getattr(request, 'method', None) or 'a call to'} {path or url}".strip()
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        cause = "stopped answering"
    else:
        cause = "refused or dropped the connection"
    return (
        f"{store}: the server {cause} during {call}; the run is ended FAILED when "
        "the next command opens the store"
    )


def permission_refused(exc: BaseException, store: str) -> str | None:
    """One line for a server's 403 (MLflow's PERMISSION_DENIED): the account and the call it
    was refused, never the raw response; None for other errors.

    Stages check their permissions before any work (mlpipeline.tracking.access); this is for
    a refusal that comes later all the same (a grant revoked while the pipeline runs).
    """
    if getattr(exc, "error_code", None) != "PERMISSION_DENIED":
        return None
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    account = f"user {username!r}" if username else "an anonymous client"
    endpoint = re.search(r"endpoint (\S+)", str(exc))
    call = endpoint.group(1) if endpoint else "a request"
    return (
        f"{store} refused {account} {call} (HTTP 403, permission denied): the admin grants "
        "permissions with make team-users (docs/deploy.md, Users and permissions)"
    )
