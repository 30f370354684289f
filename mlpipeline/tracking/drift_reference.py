"""The training split's drift reference, logged with the training run and read by scoring.

mlflow is imported only inside the functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from mlpipeline.domain.errors import TrackingError
from mlpipeline.tracking.failures import cause, is_not_found

log = logging.getLogger(__name__)

# Where the profile lives among the training run's artifacts.
REFERENCE_ARTIFACT = "drift/reference.json"


def log_reference(profile: Mapping[str, Any]) -> None:
    """Log the profile (mlpipeline/domain/drift.py) to the active training run."""
    import mlflow

    mlflow.log_dict(dict(profile), REFERENCE_ARTIFACT)


def load_reference(run_id: str) -> dict[str, Any] | None:
    """The profile the training run `run_id` logged; None only when the run has none.

    Anything else (a store or server that does not answer, a file that does not read) is a
    TrackingError: a drift gate that cannot read its reference must not pass the batch.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    # MLflow draws a progress bar for every download, a few kB here: noise in a log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    folder = REFERENCE_ARTIFACT.rsplit("/", 1)[0]
    try:
        listed = mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=folder)
    except (MlflowException, OSError) as exc:
        if is_not_found(exc):  # the run itself is gone
            log.debug("no drift reference: MLflow run %s is not in the store", run_id)
            return None
        raise _unreadable(run_id, exc) from None
    if not any(entry.path == REFERENCE_ARTIFACT for entry in listed):
        log.debug("no drift reference in MLflow run %s", run_id)
        return None
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{REFERENCE_ARTIFACT}")
    except (MlflowException, OSError, ValueError) as exc:
        raise _unreadable(run_id, exc) from None


def _unreadable(run_id: str, exc: BaseException) -> TrackingError:
    return TrackingError(
        f"the drift reference of MLflow run {run_id} ({REFERENCE_ARTIFACT}) cannot be read: "
        f"{cause(exc)}; the batch is not scored without its drift check"
    )
