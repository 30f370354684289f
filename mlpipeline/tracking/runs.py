"""MLflow: where runs go, lineage tags, and the logging every orchestrator shares.

Nothing here runs at import; mlflow itself is imported only inside the functions, and so are
urllib.request and ssl (~0.05 s), which only a server's URI needs: `make run`'s check reads
`tracking_uri` from here before it knows whether it has anything to check.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import AuthenticationError, TrackingError
from mlpipeline.files.paths import ROOT
from mlpipeline.tracking import store
from mlpipeline.tracking.failures import cause, is_not_found, store_failed

if TYPE_CHECKING:
    import ssl
    import urllib.error

    import pandas as pd
    from mlflow.entities import Run

log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
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
HEALTH_TIMEOUT_S = 5.0
# The credentials MLflow's client sends (HTTP basic auth).
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
# A cheap, read-only API call: a server can answer /health while its API hangs (a stuck
# worker or database), and on MLflow's basic-auth app /health needs no login, the API does.
API_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
# A server's first API call opens its store (seconds on a loaded machine); /health (5 s) plus
# this stays within the 30 s in which an unresponsive server must fail a stage.
API_PROBE_TIMEOUT_S = 20.0
# Models are logged in skops format (safe to load), which loads only the types it is told to
# trust: tree node storage, which skops does not trust by default, and the pipeline's input
# guard (mlpipeline/domain/model_guard.py, shipped with the model). This pipeline made both itself.
GUARD_TYPE = "mlpipeline.domain.model_guard.InputGuard"
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", GUARD_TYPE]


def tracking_uri(root: Path = ROOT) -> str:
    """MLFLOW_TRACKING_URI, or the embedded store; a SQLite path under the user's repository."""
    return store.resolve_uri(os.environ.get(TRACKING_URI_ENV), root)


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer or let us in."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    base = uri.rstrip("/")
    headers = _basic_auth_header()
    try:
        for path, wait in (("/health", timeout), (API_PROBE_PATH, API_PROBE_TIMEOUT_S)):
            request = urllib.request.Request(base + path, headers=headers)
            with urllib.request.urlopen(
                request, timeout=max(wait, timeout), context=_tls_context()
            ) as response:
                response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise AuthenticationError(_authentication_failure(uri, exc.code), exc.code) from None
        if exc.code == 429:
            raise AuthenticationError(_turned_away(uri, exc), exc.code) from None
        raise TrackingError(_unreachable(uri, f"HTTP {exc.code} {exc.reason}")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(_unreachable(uri, getattr(exc, "reason", exc))) from None


def _tls_context() -> ssl.SSLContext | None:
    """What MLflow's client trusts: the CA of MLFLOW_TRACKING_SERVER_CERT_PATH (a private
    CA, docs/deploy.md) or, with MLFLOW_TRACKING_INSECURE_TLS=true, any certificate; else
    the system's CAs (None)."""
    import ssl

    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cert_path = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    return ssl.create_default_context(cafile=cert_path) if cert_path else None


def _unreachable(uri: str, reason: object) -> str:
    return (
        f"MLflow tracking server {uri} is unreachable ({reason}). Start it, or unset "
        f"{TRACKING_URI_ENV} to use the embedded SQLite store."
    )


def _basic_auth_header() -> dict[str, str]:
    """The Authorization header MLflow's client sends for MLFLOW_TRACKING_USERNAME/_PASSWORD."""
    username, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    if not (username and password):
        return {}
    import base64

    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _authentication_failure(uri: str, status: int) -> str:
    """What to do about a 401/403; names the account, never the password."""
    username = os.environ.get(USERNAME_ENV)
    if not (username and os.environ.get(PASSWORD_ENV)):
        return (
            f"MLflow tracking server {uri} requires authentication (HTTP {status}): set "
            f"{USERNAME_ENV} and {PASSWORD_ENV} to your account on it."
        )
    return (
        f"MLflow tracking server {uri} refused the authentication of user {username!r} "
        f"(HTTP {status}): check {USERNAME_ENV} and {PASSWORD_ENV}."
    )


def _turned_away(uri: str, answer: urllib.error.HTTPError) -> str:
    """What to do about a 429: the team stack's front door answers it to an address with
    too many failed logins (or requests), with how long to wait (docs/deploy.md)."""
    said = answer.read(200).decode("utf-8", "replace").strip().splitlines()
    wait = answer.headers.get("Retry-After")
    return (
        f"MLflow tracking server {uri} turned this address away for now (HTTP 429: "
        f"{said[0] if said else answer.reason})"
        + (f"; try again in {wait} s" if wait else "")
        + f". If logins failed before, check {USERNAME_ENV} and {PASSWORD_ENV} first."
    )


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


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, the names params and metrics get in MLflow."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def model_requirements() -> list[str]:
    """What a served model needs: scikit-learn, skops and mlflow, pinned as installed.

    Without this MLflow exports the whole project lock (DVC, ZenML, ...) into the model.
    """
    import mlflow.sklearn

    return mlflow.sklearn.get_default_pip_requirements(include_skops=True)


def _guard_code(folder: Path) -> Path:
    """The `mlpipeline` package holding only the input guard, shipped with the model."""
    source = Path(__file__).resolve().parent.parent
    package = folder / "mlpipeline"
    for name in ("__init__.py", "domain/__init__.py", "domain/model_guard.py"):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, package / name)
    return package


def log_training(
    params: Mapping[str, Any],
    pipeline: Any,
    example: pd.DataFrame,
    tags: Mapping[str, str],
) -> str:
    """Log params, lineage tags and the deployable pipeline to the active run; return its URI.

    This is the run's one logged model (`models:/<model id>`): save registers it as it is.
    `example` holds raw feature rows; its first 5 give the signature and the input example.
    """
    import mlflow
    from mlflow.models import infer_signature

    mlflow.log_params({key: str(value) for key, value in flatten(params).items()})
    mlflow.set_tags(dict(tags))
    # A few rows give the same schema as all of them (dtypes only) without predicting the
    # whole training set, which is seconds at a million rows.
    sample = example.head(5)
    signature = infer_signature(sample, pipeline.predict(sample))
    with tempfile.TemporaryDirectory() as folder:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=sample,
            code_paths=[str(_guard_code(Path(folder)))],
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=model_requirements(),
        )
    return info.model_uri


def log_evaluation(
    metrics: Mapping[str, Any],
    images: Mapping[str, bytes],
    settings: Mapping[str, Any],
) -> None:
    """Log metrics and PNG images (name -> bytes, logged as `plots/<name>.png`) to the run.

    Evaluation settings are tags, not params: evaluate may run again for the same training
    run with other settings, and MLflow params cannot change once logged.
    """
    import mlflow

    mlflow.log_metrics(
        {
            key: float(value)
            for key, value in flatten(metrics).items()
            if isinstance(value, int | float)
        }
    )
    mlflow.set_tags({key: str(value) for key, value in flatten(settings).items()})
    # The bytes the caller rendered once, so the run holds exactly the files plots/ holds.
    with tempfile.TemporaryDirectory() as folder:
        for name, png in images.items():
            (Path(folder) / f"{name}.png").write_bytes(png)
        mlflow.log_artifacts(folder, artifact_path="plots")
