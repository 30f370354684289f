"""Stage 3, train: a RandomForestClassifier on the scaled training split, and the deployable
pipeline (input guard + scaler + classifier) logged to MLflow once, for save to register."""

from __future__ import annotations

import logging

from mlpipeline.domain.dataset import split_xy
from mlpipeline.domain.drift import training_reference
from mlpipeline.domain.params import Params
from mlpipeline.domain.training import bundle_pipeline, logged_params, train_model
from mlpipeline.files import hashes, paths, pickles, tables
from mlpipeline.files.outputs import staged_outputs
from mlpipeline.tracking import access, lineage, model_log, runs

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    """Train on data/processed/train.parquet → models/classifier.pkl, models/pipeline.pkl and
    an MLflow run holding the pipeline as its model (models/mlflow_run.json names both)."""
    # Before configure, which would create a missing experiment (and its creator owns it).
    access.check_can_write(
        runs.tracking_uri(), params.mlflow.experiment_name, params.mlflow.registered_model_name
    )
    runs.configure(params.mlflow.experiment_name)
    train = tables.read_table(paths.TRAIN_SET)
    model = train_model(train, params.train)
    scaler = pickles.load_object(paths.SCALER)
    pipeline = bundle_pipeline(scaler, model)
    reference = training_reference(train, scaler)  # what scoring compares batches with
    pipeline_bytes = pickles.pickle_bytes(pipeline)
    # Raw rows (not the scaled split): what the served model takes, with the raw dtypes.
    raw = tables.read_table(paths.RAW_DATA)
    example = split_xy(raw)[0].head(5)
    tags = lineage.lineage_tags(paths.TRAIN_SET, orchestrator="dvc")
    with model_log.training_run(
        tags.get("dvc_experiment"),
        logged_params(params),
        pipeline,
        example=example,
        reference=reference,
        tags=tags,
        raw=model_log.Table(raw, hashes.file_md5(paths.RAW_DATA)),
        train=model_log.Table(train, hashes.file_md5(paths.TRAIN_SET)),
    ) as (run, model_uri):
        run_info = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "model_uri": model_uri,
            "pipeline_md5": hashes.bytes_md5(pipeline_bytes),
        }
        with staged_outputs() as outputs:
            outputs.pickle(paths.CLASSIFIER, model)
            outputs.bytes(paths.PIPELINE, pipeline_bytes)
            outputs.json(paths.RUN_INFO, run_info)
        lineage.record_stage("train", run_info["run_id"])
    log.info("trained on %d rows; MLflow run %s, model %s", len(train), run.info.run_id, model_uri)


if __name__ == "__main__":
    from mlpipeline.runner import run_stage

    run_stage("train", main)
