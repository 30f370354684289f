"""Stage 5, save: register the pipeline train logged, and move the champion alias if it earns it."""

from __future__ import annotations

import logging

from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.params import Params
from mlpipeline.domain.promotion import decision_line
from mlpipeline.files import hashes, paths
from mlpipeline.files.outputs import read_json
from mlpipeline.tracking import lineage, model_versions

log = logging.getLogger(__name__)


def logged_model(run_info: dict[str, str], pipeline_md5: str) -> str:
    """The URI of the model train logged, once sure it holds models/pipeline.pkl's bytes."""
    model_uri = run_info.get("model_uri")
    if not model_uri or run_info.get("pipeline_md5") != pipeline_md5:
        raise PipelineError(
            f"{paths.PIPELINE.relative_to(paths.ROOT)} is not the model MLflow run "
            f"{run_info.get('run_id')} logged ({paths.RUN_INFO.relative_to(paths.ROOT)} was "
            "written by another training); retrain with `dvc repro --force train`"
        )
    return model_uri


def main(params: Params) -> None:
    """Register the model of the training run in models/mlflow_run.json; move the alias.

    Save writes no file: train logged the pipeline (the bytes of models/pipeline.pkl) and
    save only registers it. Idempotent per training run: a rerun (after a crash, or for a
    save-only change) finds the version already registered from that logged model instead
    of adding one. The alias moves last.
    """
    run_info = read_json(paths.RUN_INFO)
    pipeline_md5 = hashes.file_md5(paths.PIPELINE)
    registration = model_versions.publish(
        logged_model(run_info, pipeline_md5),
        metrics=read_json(paths.METRICS),
        run_id=run_info["run_id"],
        pipeline_md5=pipeline_md5,
        dataset_md5=hashes.file_md5(paths.RAW_DATA),
        save=params.save,
        names=params.mlflow,
    )
    lineage.record_stage("save", run_info["run_id"], registration)
    log.info("%s", decision_line(registration, params.mlflow.champion_alias))


if __name__ == "__main__":
    from mlpipeline.runner import run_stage

    run_stage("save", main)
