"""MLflow runs: which store, the client's settings, and a run's life (opened, ended, ended
FAILED when its block fails, settled by the next opener when its process died).

Nothing here runs at import; mlflow itself is imported only inside the functions: `make
run`'s check reads `tracking_uri` from here before it knows whether it has anything to check.
What a training run logs is in `model_log`; the server probe in `server`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import TrackingError
from mlpipeline.files.paths import ROOT
from mlpipeline.tracking import store
from mlpipeline.tracking.failures import cause, is_not_found, store_failed
from mlpipeline.tracking.server import TRACKING_URI_ENV, check_reachable

if TYPE_CHECKING:
    from mlflow.entities import Run

log = logging.getLogger(__name__)

# MLflow's HTTP client retries with exponential backoff for minutes by default, and a
# retried call that times out again (a server that stops answering mid-run) cost 63 s with
# one retry of 10 s calls. A stage talking to a dead or hung server fails within 30 s
# instead: no retries, each call waits at most 10 s for an answer, and a stage that already
# failed spends at most FAILING_TIMEOUT_S more telling the store. Values the user set win.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER": "false",
}
HTTP_TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
FAILING_TIMEOUT_S = 3
# MLflow's usage telemetry is off in the pipeline's processes, as DVC's analytics are in
# .dvc/config (`MLFLOW_DISABLE_TELEMETRY=false` turns it back on). It also costs each stage
# that starts it up to ~1 s at exit on a machine that cannot reach its server.
_TELEMETRY_DEFAULTS = {"MLFLOW_DISABLE_TELEMETRY": "true"}
# The model's requirements are given (model_requirements): MLflow's uv detection would only
# log "Detected uv project" on every model it logs.
_UV_DEFAULTS = {"MLFLOW_UV_AUTO_DETECT": "false"}
# A progress bar per model download is noise in a stage's or a check's log.
_PROGRESS_DEFAULTS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
# A server that serves artifacts from S3 (the team setup) advertises presigned downloads
# (/server-info), and MLflow's client then fetches every artifact straight from the S3
# endpoint the server knows (`http://minio:9000`, a name only the compose network resolves):
# a clone on the host cannot load a model. Downloads go through the server, which proxies them.
_ARTIFACT_DEFAULTS = {"MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}


def tracking_uri(root: Path = ROOT) -> str:
    """MLFLOW_TRACKING_URI, or the embedded store; a SQLite path under the user's repository."""
    return store.resolve_uri(os.environ.get(TRACKING_URI_ENV), root)


def use_client_defaults() -> None:
    """MLflow's client settings (HTTP limits, telemetry, downloads) unless the user set them."""
    defaults = {
        **_HTTP_DEFAULTS,
        **_TELEMETRY_DEFAULTS,
        **_PROGRESS_DEFAULTS,
        **_ARTIFACT_DEFAULTS,
        **_UV_DEFAULTS,
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


def use_store() -> str:
    """Point MLflow's client at the project's store for reading; its URI.

    Without this MLflow falls back to its own default store, whose path MLflow
    percent-encodes under a checkout path with spaces or non-ASCII letters: it would create
    an empty `mlflow.db` elsewhere and find nothing.
    """
    use_client_defaults()
    uri = tracking_uri()
    check_reachable(uri)
    store.require_existing(uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def configure(experiment_name: str) -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI."""
    use_client_defaults()
    uri = tracking_uri()
    check_reachable(uri)
    # A server chooses its own artifact store; a SQLite store keeps them beside its database.
    artifact_location = store.artifact_location(uri)

    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)  # note: this also exports MLFLOW_TRACKING_URI
    try:
        with store.opening(uri):
            if mlflow.get_experiment_by_name(experiment_name) is None:
                mlflow.create_experiment(experiment_name, artifact_location=artifact_location)
            experiment = mlflow.set_experiment(experiment_name)
        store.reap_dead_runs(experiment.experiment_id)
    except MlflowException as exc:
        if store_failed(exc):
            raise  # a database or server error: the stage's edge reports its cause in one line
        raise TrackingError(f"MLflow store {uri}: {exc.message}") from None
    return uri


@contextlib.contextmanager
def mlflow_run(run_id: str | None = None, **start_kwargs: Any) -> Iterator[Run]:
    """Use the active run if a caller (e.g. ZenML's tracker) started one, else start or resume.

    A run we start or resume here is ended here: FAILED if the block raises, so a stage that
    fails after opening the run (writing its outputs, say) does not leave it FINISHED. It
    carries this process's host, pid and start time (see `store`), also a run a tracker
    started, so the next process that opens the store ends it KILLED if this one dies. When the
    store cannot take the FAILED (locked, full, a server that stopped answering), a marker
    says so and whoever opens the store next ends it FAILED. A run somebody else started is
    left to them.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    active = mlflow.active_run()
    if active is not None and run_id in (None, active.info.run_id):
        # A run an orchestrator's tracker started (ZenML's MLflow experiment tracker) is
        # tagged with this process too, so that it is reaped like ours if the process dies.
        mlflow.set_tags(store.process_tags())
        yield active
        return
    if run_id is not None:
        try:
            mlflow.get_run(run_id)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise  # a store that failed to answer: the edge names the call and the cause
            raise TrackingError(
                f"MLflow run {run_id} is not in the tracking store {mlflow.get_tracking_uri()}; "
                "the model was trained against another store. Retrain there with "
                "`dvc repro --force train`."
            ) from None
    process = store.process_tags()
    tags = {**(start_kwargs.pop("tags", None) or {}), **process}
    try:
        run = mlflow.start_run(run_id=run_id, tags=tags, **start_kwargs)
    except BaseException:
        # The store may have opened the run and lost its answer: mark it by its process.
        store.mark_failed(run_id or store.process_key(process))
        raise
    try:
        yield run
    except BaseException as exc:
        _end_failed(run, exc)
        raise
    try:
        mlflow.end_run()
    except Exception:
        store.mark_failed(run.info.run_id)
        raise


def _end_failed(run: Run, failure: BaseException) -> None:
    """End the run FAILED; when the store cannot take it, leave a marker for the next opener.

    After a store failure (locked, full, a server that does not answer) one short attempt:
    a server answering again takes the FAILED now. MLflow's end_run forgets the active run
    before it writes, so its exit handler does not try again.
    """
    import mlflow
    from mlflow import MlflowClient

    run_id = run.info.run_id
    try:
        with _http_timeout(1 if store_failed(failure) else FAILING_TIMEOUT_S):
            mlflow.end_run("FAILED")
    except Exception as exc:  # the store fails too: the marker tells the next opener
        marker = store.mark_failed(run_id)
        log.info(
            "MLflow run %s stays RUNNING for now (%s); noted in %s", run_id, cause(exc), marker
        )
        return
    try:
        store.discard_pending_models(MlflowClient(), run.info.experiment_id, run_id)
    except Exception as exc:  # the run is ended: not ours to fail over it
        log.info("the models MLflow run %s left unfinished stay PENDING (%s)", run_id, cause(exc))


@contextlib.contextmanager
def _http_timeout(seconds: int) -> Iterator[None]:
    """MLflow reads its HTTP timeout from the environment at each request."""
    before = os.environ.get(HTTP_TIMEOUT_ENV)
    os.environ[HTTP_TIMEOUT_ENV] = str(seconds)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(HTTP_TIMEOUT_ENV, None)
        else:
            os.environ[HTTP_TIMEOUT_ENV] = before
