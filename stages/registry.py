"""The model registry: register the deployable pipeline and decide who holds the alias.

Shared by the save stage and the ZenML save step; mlflow is imported only inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stages import tracking
from stages.params import MlflowParams, SaveParams
from stages.save import champion_score, promotion_decision
from stages.tracking import SKOPS_TRUSTED_TYPES, model_requirements

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    promoted: bool
    reason: str


def register_and_promote(
    pipeline: Any,
    example: pd.DataFrame,
    model_name: str,
    alias: str,
    metric: str,
    score: float,
    min_score: float,
) -> Registration:
    """Log the deployable pipeline, register a new version, and move `alias` if it earns it.

    The alias moves only when `score` reaches `min_score` and is no worse than the current
    holder's score for the same metric (MLflow 3 has no registry stages; aliases replace them).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    signature = infer_signature(example, pipeline.predict(example))
    info = mlflow.sklearn.log_model(
        pipeline,
        name="pipeline",
        signature=signature,
        input_example=example.head(5),
        registered_model_name=model_name,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=model_requirements(),
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(model_name, version, metric, str(score))

    champion_score: float | None = None
    try:
        champion = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        champion = None
    if champion is not None and champion.version != version:
        held = champion.tags.get(metric)
        if held is None:
            held = client.get_run(champion.run_id).data.metrics.get(metric)
        champion_score = float(held) if held is not None else None

    promoted, reason = promotion_decision(score, min_score, champion_score)
    if promoted:
        client.set_registered_model_alias(model_name, alias, version)
    mlflow.set_tags({"registered_model_version": version, f"{alias}_promoted": str(promoted)})
    return Registration(model_name, version, promoted, reason)


def publish(
    pipeline: Any,
    example: pd.DataFrame,
    metrics: dict[str, Any],
    run_id: str,
    save: SaveParams,
    names: MlflowParams,
) -> Registration:
    """Register the bundled pipeline in its training run and move the alias if it earns it."""
    score = champion_score(metrics, save.champion_metric)
    tracking.configure(names.experiment_name)
    with tracking.mlflow_run(run_id=run_id):
        return register_and_promote(
            pipeline,
            example,
            model_name=names.registered_model_name,
            alias=names.champion_alias,
            metric=save.champion_metric,
            score=score,
            min_score=save.min_score,
        )
