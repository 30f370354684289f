"""MLflow: where runs go, lineage tags, and the logging every orchestrator shares.

Nothing here runs at import; mlflow itself is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages import lineage
from stages.errors import TrackingError
from stages.paths import ROOT, workspace_root

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow.entities import Run

log = logging.getLogger(__name__)

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# MLflow's HTTP client retries with exponential backoff for minutes by default; a stage
# talking to a dead server should fail within seconds instead.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
HEALTH_TIMEOUT_S = 5.0
# Models are logged in skops format (safe to load). Tree node storage is the one type skops
# does not trust by default; we trust it because this pipeline made the file itself.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def embedded_store(root: Path = ROOT) -> tuple[str, str]:
    """The default SQLite tracking URI and artifact folder, at the user's repository root."""
    base = workspace_root(root)
    return f"sqlite:///{base / 'mlflow.db'}", (base / "mlartifacts").as_uri()


def tracking_uri() -> str:
    return os.environ.get(TRACKING_URI_ENV) or embedded_store()[0]


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}). Start it, or unset "
            f"{TRACKING_URI_ENV} to use the embedded SQLite store."
        ) from None


def configure(experiment_name: str) -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI."""
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    check_reachable(uri)
    # A server chooses its own artifact store; the embedded store keeps them beside mlflow.db.
    artifact_location = None if os.environ.get(TRACKING_URI_ENV) else embedded_store()[1]

    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)  # note: this also exports MLFLOW_TRACKING_URI
    try:
        if mlflow.get_experiment_by_name(experiment_name) is None:
            mlflow.create_experiment(experiment_name, artifact_location=artifact_location)
        mlflow.set_experiment(experiment_name)
    except MlflowException as exc:
        raise TrackingError(f"MLflow store {uri}: {exc.message}") from None
    return uri


@contextlib.contextmanager
def mlflow_run(run_id: str | None = None, **start_kwargs: Any) -> Iterator[Run]:
    """Use the active run if a caller (e.g. ZenML's tracker) started one, else start or resume.

    A run we start here is ended here; a run somebody else started is left to them.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    active = mlflow.active_run()
    if active is not None and run_id in (None, active.info.run_id):
        yield active
        return
    if run_id is not None:
        try:
            mlflow.get_run(run_id)
        except MlflowException:
            raise TrackingError(
                f"MLflow run {run_id} is not in the tracking store {mlflow.get_tracking_uri()}; "
                "the model was trained against another store. Retrain there with "
                "`dvc repro --force train`."
            ) from None
    with mlflow.start_run(run_id=run_id, **start_kwargs) as run:
        yield run


def lineage_tags(train_data: Path, orchestrator: str) -> dict[str, str]:
    """Tags that tie a run to its code, data and experiment (see stages/lineage.py)."""
    return lineage.lineage_tags(train_data, orchestrator)


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


def log_training(
    params: Mapping[str, Any],
    model: Any,
    example: pd.DataFrame,
    tags: Mapping[str, str],
) -> None:
    """Log params, lineage tags and the fitted model (with signature) to the active run."""
    import mlflow
    from mlflow.models import infer_signature

    mlflow.log_params({key: str(value) for key, value in flatten(params).items()})
    mlflow.set_tags(dict(tags))
    # A few rows give the same schema as all of them (dtypes only) without predicting the
    # whole training set, which is seconds at a million rows.
    sample = example.head(5)
    signature = infer_signature(sample, model.predict(sample))
    mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example.head(5),
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=model_requirements(),
    )


def log_evaluation(
    metrics: Mapping[str, Any],
    figures: Mapping[str, Figure],
    settings: Mapping[str, Any],
) -> None:
    """Log metrics and figures to the active run.

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
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}.png")
