"""The MLflow edge of batch scoring: resolve the model once, load it, log the scoring run.

mlflow is imported only inside the functions.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlpipeline.domain.errors import TrackingError
from mlpipeline.tracking.failures import cause, no_alias

# models:/<name>@<alias> or models:/<name>/<version>
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
# The scoring runs' experiment: the training experiment's name with this suffix.
EXPERIMENT_SUFFIX = "-scoring"


class NoSuchModelError(TrackingError):
    """The registry has no such version, or no version holds the alias."""


@dataclass(frozen=True)
class ResolvedModel:
    """The model a scoring uses, pinned: an alias is resolved to its version once."""

    requested: str  # as the user gave it
    load_uri: str  # models:/<name>/<version> for a registered model, else `requested`
    name: str | None = None
    version: str | None = None
    run_id: str | None = None

    def describe(self) -> str:
        if self.version is None:
            return self.requested
        return f"{self.requested} (version {self.version}, run {self.run_id})"


def resolve_model(requested: str) -> ResolvedModel:
    """Pin `models:/name@alias` (or `/version`) to a version and its run; a TrackingError
    naming the URI if the registry does not have it. Other URIs are loaded as given."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = _MODELS_URI.match(requested)
    if match is None:
        return ResolvedModel(requested, requested)
    name = match["name"]
    client = MlflowClient()
    try:
        if match["alias"] is not None:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
    except MlflowException as exc:
        if not no_alias(exc):
            raise  # the store did not answer: the edge says so, naming the call
        raise NoSuchModelError(
            f"no model version {requested} in the MLflow registry {mlflow.get_registry_uri()}; "
            "`mlpipeline model list` shows the versions"
        ) from None
    return ResolvedModel(
        requested,
        f"models:/{name}/{version.version}",
        name=name,
        version=str(version.version),
        run_id=version.run_id,
    )


def load_pipeline(model: ResolvedModel) -> Any:
    """The registered scikit-learn pipeline (guard, scaler, classifier) of `model`."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    try:
        # From a temporary copy: MLflow writes into the folder it loads a models:/ URI from,
        # which for a local store is the store itself (read-only on a serving host).
        with tempfile.TemporaryDirectory(prefix="mlpipeline-model-") as folder:
            pipeline = mlflow.sklearn.load_model(model.load_uri, dst_path=folder)
    except (MlflowException, OSError) as exc:
        raise TrackingError(
            f"the model {model.describe()} cannot be loaded: {cause(exc)}"
        ) from None
    if not hasattr(pipeline, "named_steps") or "guard" not in pipeline.named_steps:
        raise TrackingError(
            f"the model {model.describe()} is not this project's pipeline (input guard, "
            "scaler, classifier); score it with `mlflow models predict`"
        )
    return pipeline


def log_scoring(
    model: ResolvedModel,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: Mapping[str, str],
    tags: Mapping[str, str],
) -> None:
    """Log a finished scoring to the active run: what was scored with what, and how it went.

    Args:
        artifacts: file path -> folder in the run's artifacts.
    """
    import mlflow

    pinned = {
        "model_uri": model.requested,
        "model_name": model.name or "-",
        "model_version": model.version or "-",
        "model_run_id": model.run_id or "-",
    }
    mlflow.log_params({key: str(value) for key, value in {**pinned, **params}.items()})
    mlflow.log_metrics(dict(metrics))
    mlflow.set_tags(dict(tags))
    for path, folder in artifacts.items():
        mlflow.log_artifact(path, artifact_path=folder)
