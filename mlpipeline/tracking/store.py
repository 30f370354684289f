"""The MLflow tracking store: where a SQLite store lives, opening it safely, and runs left behind.

Three facts shape this module:
- MLflow resolves a relative `sqlite:///mlflow.db` against the working directory, and its
  default artifact root is `./mlruns` of that directory. Under `dvc exp run --temp` or the
  queue that directory is a copy under `.dvc/tmp/exps/` that DVC deletes afterwards, and an
  experiment's artifact location is fixed when the experiment is created. So every SQLite
  path is resolved against the user's repository, and its artifacts go beside the database.
- The first process to open a SQLite store creates its schema (alembic). Two queue workers
  doing it at once fail ("duplicate column name"); one file lock beside the database makes
  them take turns, and a busy timeout makes concurrent writers wait instead of failing.
- A process killed mid-run (`kill -9`, OOM) leaves its MLflow run RUNNING forever. A run we
  open carries the host, pid and start time of its process, so a later stage can tell that
  the process is gone and mark the run KILLED.

Nothing here runs at import; filelock, psutil, sqlalchemy and mlflow are imported inside.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

from mlpipeline.domain.errors import TrackingError
from mlpipeline.files.paths import ROOT, workspace_root

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
DEFAULT_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
# How long a writer waits for another process's write lock, and a process for another one
# creating the store, before giving up with a message (seconds).
BUSY_TIMEOUT_S = 30
CREATE_LOCK_TIMEOUT_S = 300
# Tags on every run a stage opens: enough to know later whether its process still exists.
HOST_TAG = "process.host"
PID_TAG = "process.pid"
STARTED_TAG = "process.start_time"
# psutil's start times are derived from clock ticks; the same process reads the same value,
# another process with a recycled pid started at least this much later (seconds).
START_TIME_TOLERANCE_S = 1.0


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (as written, maybe relative); None otherwise."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri.removeprefix(SQLITE_PREFIX).split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def require_existing(uri: str) -> None:
    """Reading an absent SQLite store would create an empty one: say there is nothing to read."""
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise TrackingError(
            f"no MLflow store at {path}: nothing has been trained here yet (run the pipeline: "
            "`dvc repro`), or set MLFLOW_TRACKING_URI to the store that holds your runs"
        )


def check_integrity(uri: str) -> None:
    """For a SQLite store: a TrackingError naming it when SQLite finds it damaged.

    Run before trusting a "no such run" from it: a damaged page can hide rows. Opens the
    file read-only; a file SQLite cannot read at all raises its sqlite3 error.
    """
    path = sqlite_path(uri)
    if path is None or not path.is_file():
        return
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        found = [row[0] for row in connection.execute("PRAGMA integrity_check(5)")]
    finally:
        connection.close()
    if found != ["ok"]:
        raise TrackingError(
            f"MLflow store {uri}: database disk image is malformed "
            f"({' '.join(found[0].split())}); restore a backup, or move it away to start anew"
        )


def resolve_uri(uri: str | None, root: Path = ROOT) -> str:
    """The tracking URI to use: unset or a relative SQLite path → under the user's repository.

    A server's URI (http, postgresql, ...) and an absolute SQLite path are kept as given.
    """
    base = workspace_root(root)
    if not uri:
        return f"{SQLITE_PREFIX}{base / DEFAULT_DB}"
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    query = uri.partition("?")[2]
    return f"{SQLITE_PREFIX}{base / path}" + (f"?{query}" if query else "")


def artifact_location(uri: str) -> str | None:
    """Where an experiment we create keeps its artifacts: beside a SQLite database.

    None for a server, which chooses its own artifact store.
    """
    path = sqlite_path(uri)
    if path is None:
        return None
    return (path.parent / ARTIFACTS_DIR).as_uri()


@contextlib.contextmanager
def opening(uri: str) -> Iterator[None]:
    """Open a SQLite store one process at a time, with writers that wait for each other.

    Hold it around the first call that touches the store (MLflow creates the schema there)
    and the creation of the experiment; other stores need neither.
    """
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    _wait_for_other_writers(uri)
    from filelock import FileLock, Timeout

    lock = FileLock(f"{path}.lock", timeout=CREATE_LOCK_TIMEOUT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise TrackingError(
            f"MLflow store {uri}: another process has been opening it for "
            f"{CREATE_LOCK_TIMEOUT_S} s (lock {lock.lock_file}); is it stuck?"
        ) from None
    except OSError as exc:
        raise TrackingError(f"MLflow store {uri}: cannot lock it: {exc}") from None
    try:
        yield
    finally:
        lock.release()


def _wait_for_other_writers(uri: str) -> None:
    """Make every SQLite connection of this process wait BUSY_TIMEOUT_S for a write lock.

    Python's sqlite3 gives up after 5 s ("database is locked"); a queue worker logging a
    model can hold the lock longer. A `?timeout=` the user put in the URI wins.
    """
    if "timeout" in parse_qs(uri.partition("?")[2]):
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _set_busy_timeout):
        event.listen(Engine, "connect", _set_busy_timeout)


def _set_busy_timeout(dbapi_connection: object, _record: object) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")


def this_host() -> str:
    """The host name, and on Linux the pid namespace: a container's pids are its own."""
    try:
        namespace = Path("/proc/self/ns/pid").readlink()
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()} {namespace}"


def process_tags() -> dict[str, str]:
    """Tags naming this process, set on a run when a stage opens it."""
    import psutil

    me = psutil.Process()
    return {
        HOST_TAG: this_host(),
        PID_TAG: str(me.pid),
        STARTED_TAG: f"{me.create_time():.3f}",
    }


def process_key(tags: dict[str, str]) -> str:
    """A file name for the process the tags name (pid and start time: pids are recycled)."""
    return f"process-{tags.get(PID_TAG)}-{tags.get(STARTED_TAG)}"


def process_is_gone(tags: dict[str, str]) -> bool:
    """Whether the process the tags name (on this host) no longer exists."""
    import psutil

    try:
        pid, started = int(tags[PID_TAG]), float(tags[STARTED_TAG])
        process = psutil.Process(pid)
        return abs(process.create_time() - started) > START_TIME_TOLERANCE_S
    except (KeyError, ValueError):
        return False  # not tagged by us: not ours to judge
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


# Runs whose stage failed but could not tell the store (it was locked, full or unreachable):
# one empty file per run id, so whoever settles the run next ends it FAILED, not KILLED.
FAILED_MARKERS = Path(".dvc") / "tmp" / "failed-runs"


def failed_marker(run_id: str, root: Path = ROOT) -> Path:
    return workspace_root(root) / FAILED_MARKERS / run_id


def mark_failed(run_id: str, root: Path = ROOT) -> Path | None:
    """Note that the stage of `run_id` failed; None if even that cannot be written."""
    marker = failed_marker(run_id, root)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError as exc:
        log.info("could not note run %s as failed in %s (%s)", run_id, marker, exc)
        return None
    return marker


def reap_dead_runs(
    experiment_ids: str | list[str], client: MlflowClient | None = None
) -> list[str]:
    """End the RUNNING runs of this host whose process is gone; return their ids.

    A run whose stage failed (a marker says so) ends FAILED, any other KILLED; the logged
    models those runs left PENDING are discarded.
    """
    from mlflow import MlflowClient

    client = client or MlflowClient()
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
    if not ids:
        return []
    reaped = []
    for run in running_here(ids, client):
        if not process_is_gone(run.data.tags):
            continue
        run_id = run.info.run_id
        markers = [failed_marker(run_id), failed_marker(process_key(run.data.tags))]
        status = "FAILED" if any(marker.exists() for marker in markers) else "KILLED"
        client.set_terminated(run_id, status=status)
        why = "failed" if status == "FAILED" else "is gone (killed?)"
        log.warning(
            "MLflow run %s was left RUNNING by process %s on %s, which %s; marked it %s",
            run_id,
            run.data.tags[PID_TAG],
            run.data.tags[HOST_TAG],
            why,
            status,
        )
        discard_pending_models(client, run.info.experiment_id, run_id)
        for marker in markers:
            marker.unlink(missing_ok=True)
        reaped.append(run_id)
    return reaped


def running_here(experiment_ids: str | list[str], client: MlflowClient) -> list[Run]:
    """The RUNNING runs of these experiments that a process of this host opened."""
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
    if not ids:
        return []
    host = this_host().replace("'", "")
    return client.search_runs(
        ids,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
    )


def settle(client: MlflowClient) -> list[str]:
    """`reap_dead_runs` over every experiment of the store: what a command does on opening it."""
    return reap_dead_runs([e.experiment_id for e in client.search_experiments()], client)


def discard_pending_models(client: MlflowClient, experiment_id: str, run_id: str) -> list[str]:
    """Mark FAILED and delete the logged models `run_id` left PENDING; delete their local files.

    A model is PENDING from the moment its upload starts until it is complete; a run that
    ended while one was PENDING never finished it, and nothing else would remove its
    artifacts. A server's artifacts are left to `mlflow gc`, which deletes deleted models.
    """
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException

    discarded = []
    for model in client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{run_id}'"
    ):
        if model.status != LoggedModelStatus.PENDING:
            continue
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        try:
            client.delete_logged_model(model.model_id)
        except MlflowException as exc:
            # A team server lets the pipeline account (EDIT) fail a model, not delete one.
            if exc.error_code != "PERMISSION_DENIED":
                raise
            log.info(
                "model %s of run %s marked FAILED; deleting it needs MANAGE", model.model_id, run_id
            )
        location = model.artifact_location or ""
        if location.startswith("file://"):
            folder = Path(urlparse(location).path).parent  # .../models/<id>, holding artifacts/
            shutil.rmtree(folder, ignore_errors=True)
        log.info(
            "discarded model %s that run %s left unfinished (%s)", model.model_id, run_id, location
        )
        discarded.append(model.model_id)
    return discarded
