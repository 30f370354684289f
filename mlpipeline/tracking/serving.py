"""MLflow's own scoring app for a downloaded model, behind the serving edge.

`mlpipeline model serve` downloads the model once and runs uvicorn on
`app_from_env`, a factory each worker process calls: the model's folder and the edge's
limits travel to the workers in the environment variables below, as `mlflow models serve`
passes its model path to its own workers.

mlflow is imported only inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlpipeline.domain.errors import TrackingError
from mlpipeline.domain.serving_edge import DEFAULT_ALLOWED_HOSTS, EdgeLimits, ServingEdge
from mlpipeline.tracking.failures import cause
from mlpipeline.tracking.scoring_runs import ResolvedModel

MODEL_PATH_ENV = "MLPIPELINE_SERVE_MODEL_PATH"
MAX_BODY_ENV = "SERVE_MAX_BODY_BYTES"
ALLOWED_HOSTS_ENV = "SERVE_ALLOWED_HOSTS"


def download_model(model: ResolvedModel, dest: Path) -> Path:
    """The model's folder, copied from the artifact store into `dest`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=model.load_uri, dst_path=str(dest))
        )
    except (MlflowException, OSError) as exc:
        raise TrackingError(
            f"the model {model.describe()} cannot be downloaded: {cause(exc)}"
        ) from None


def scoring_app(model_path: str, limits: EdgeLimits) -> ServingEdge:
    """MLflow's scoring app (`mlflow models serve`'s) for the model folder, behind the edge."""
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(model_path)
    return ServingEdge(scoring_server.init(model), limits)


def limits_from_env() -> EdgeLimits:
    """The edge's limits from SERVE_MAX_BODY_BYTES and SERVE_ALLOWED_HOSTS (comma-separated);
    a ValueError naming the variable if one is not usable."""
    raw_limit = os.environ.get(MAX_BODY_ENV, "").strip()
    try:
        max_body = int(raw_limit) if raw_limit else EdgeLimits().max_body_bytes
    except ValueError:
        raise ValueError(f"{MAX_BODY_ENV} must be a number of bytes, not {raw_limit!r}") from None
    hosts = os.environ.get(ALLOWED_HOSTS_ENV, "").strip()
    try:
        return EdgeLimits.parse(max_body, hosts.split(",") if hosts else DEFAULT_ALLOWED_HOSTS)
    except ValueError as exc:
        raise ValueError(f"{MAX_BODY_ENV}/{ALLOWED_HOSTS_ENV}: {exc}") from None


def app_from_env() -> ServingEdge:
    """uvicorn's app factory (one call per worker)."""
    return scoring_app(os.environ[MODEL_PATH_ENV], limits_from_env())
