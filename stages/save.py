"""Stage 5, save: scaler + classifier as one deployable Pipeline, registered in MLflow."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from stages.errors import PipelineError
from stages.params import Params

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)


def bundle_pipeline(scaler: Any, classifier: Any) -> Pipeline:
    """One estimator that takes the raw feature columns and predicts labels."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("scaler", scaler), ("classifier", classifier)])


def champion_score(metrics: dict[str, Any], metric: str) -> float:
    """The score `save.champion_metric` names, from metrics.json."""
    value = metrics.get(metric)
    if not isinstance(value, int | float):
        choices = sorted(key for key, val in metrics.items() if isinstance(val, int | float))
        raise PipelineError(
            f"save.champion_metric: {metric!r} is not a metric in metrics.json; "
            f"choose one of: {', '.join(choices)}"
        )
    return float(value)


def promotion_decision(
    score: float, min_score: float, current_champion: float | None
) -> tuple[bool, str]:
    """Promote when the score reaches the threshold and is no worse than the champion's."""
    if score < min_score:
        return False, f"score {score:.4f} is below save.min_score {min_score:.4f}"
    if current_champion is not None and score < current_champion:
        return False, f"score {score:.4f} is worse than the champion's {current_champion:.4f}"
    if current_champion is None:
        return True, f"score {score:.4f} reaches {min_score:.4f} and there is no champion yet"
    return (
        True,
        f"score {score:.4f} reaches {min_score:.4f} and matches or beats {current_champion:.4f}",
    )


def main(params: Params) -> None:
    """Bundle models/ into models/pipeline.pkl, register it, and move the champion alias."""
    from stages import io, lineage, paths, registry
    from stages.load import TARGET

    pipeline = bundle_pipeline(io.load_object(paths.SCALER), io.load_object(paths.CLASSIFIER))
    registration = registry.publish(
        pipeline,
        example=io.read_table(paths.RAW_DATA).drop(columns=[TARGET]).head(5),
        metrics=io.read_json(paths.METRICS),
        run_id=io.read_json(paths.RUN_INFO)["run_id"],
        save=params.save,
        names=params.mlflow,
    )
    io.dump_object(paths.PIPELINE, pipeline)
    lineage.record_stage("save", io.read_json(paths.RUN_INFO)["run_id"], registration)
    verdict = "now" if registration.promoted else "not"
    log.info(
        "registered %s version %s; %s @%s: %s",
        registration.model_name,
        registration.version,
        verdict,
        params.mlflow.champion_alias,
        registration.reason,
    )


if __name__ == "__main__":
    from stages.cli import run_stage

    run_stage("save", main)
