"""The training split's drift reference, logged with the training run and read by scoring.

mlflow is imported only inside the functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

# Where the profile lives among the training run's artifacts.
REFERENCE_ARTIFACT = "drift/reference.json"


def log_reference(profile: Mapping[str, Any]) -> None:
    """Log the profile (mlpipeline/domain/drift.py) to the active training run."""
    import mlflow

    mlflow.log_dict(dict(profile), REFERENCE_ARTIFACT)


def load_reference(run_id: str) -> dict[str, Any] | None:
    """The profile the training run `run_id` logged; None if it has none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # MLflow draws a progress bar for every download, a few kB here: noise in a log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{REFERENCE_ARTIFACT}")
    except (MlflowException, OSError) as exc:
        log.debug("no drift reference in run %s: %s", run_id, exc)
        return None
