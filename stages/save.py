"""Stage 5, save: scaler + classifier as one deployable Pipeline, registered in MLflow."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.params import Params

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from stages.registry import Registration

log = logging.getLogger(__name__)


def bundle_pipeline(scaler: Any, classifier: Any) -> Pipeline:
    """One estimator that takes the raw feature columns and predicts labels.

    Its first step refuses requests with missing, infinite or no values
    (stages/model_guard.py) before the scaler, which would pass them on.
    """
    from sklearn.pipeline import Pipeline

    from stages.model_guard import InputGuard

    guard = InputGuard(columns=[str(name) for name in scaler.feature_names_in_]).fit(None)
    return Pipeline([("guard", guard), ("scaler", scaler), ("classifier", classifier)])


def decision_line(registration: Registration, alias: str) -> str:
    """The log line that says where the new version stands: `... now/not @champion: why`."""
    verdict = "now" if registration.promoted else "not"
    again = " (registered earlier from this run)" if registration.reused else ""
    return (
        f"registered {registration.model_name} version {registration.version}{again}; "
        f"{verdict} @{alias}: {registration.reason}"
    )


def main(params: Params) -> None:
    """Bundle models/ into models/pipeline.pkl, register it, and move the champion alias.

    Idempotent per training run: a rerun (after a crash, or for a save-only change) finds
    the version this run already registered for these pipeline bytes instead of adding
    one. The alias moves last, after models/pipeline.pkl is written.
    """
    from stages import io, lineage, paths, registry
    from stages.load import TARGET

    run_id = io.read_json(paths.RUN_INFO)["run_id"]
    pipeline = bundle_pipeline(io.load_object(paths.SCALER), io.load_object(paths.CLASSIFIER))
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / paths.PIPELINE.name
        io.dump_object(staged, pipeline)

        def write_pipeline() -> None:
            with io.atomic_path(paths.PIPELINE) as target:
                shutil.copyfile(staged, target)

        registration = registry.publish(
            pipeline,
            example=io.read_table(paths.RAW_DATA).drop(columns=[TARGET]).head(5),
            metrics=io.read_json(paths.METRICS),
            run_id=run_id,
            pipeline_md5=io.file_md5(staged),
            dataset_md5=io.file_md5(paths.RAW_DATA),
            save=params.save,
            names=params.mlflow,
            write_outputs=write_pipeline,
        )
    lineage.record_stage("save", run_id, registration)
    log.info("%s", decision_line(registration, params.mlflow.champion_alias))


if __name__ == "__main__":
    from stages.cli import run_stage

    run_stage("save", main)
