"""The ZenML pipeline: load → preprocess → train → evaluate → save, as in dvc.yaml."""

from __future__ import annotations

from zenml import pipeline
from zenml.enums import ExecutionMode

from mlpipeline.domain.params import Params
from mlpipeline.domain.training import logged_params
from zenml_pipeline import steps

PIPELINE_NAME = "training_pipeline"


# Fail fast, as `dvc repro` does: the first failing step stops the run, and on the local
# orchestrator its own error (a DataError naming the column, ...) reaches the entry point.
@pipeline(name=PIPELINE_NAME, execution_mode=ExecutionMode.FAIL_FAST)
def training_pipeline(params: Params, tracking_uri: str, source_md5: str | None = None) -> None:
    """Each step gets only its own params section, so a change reruns what DVC would rerun.

    The MLflow run id is an output of train: when train is cached, evaluate and save (cached
    or not) keep logging into the run that trained the cached classifier.
    """
    raw_dataset = steps.load(params.load, source_md5)
    train_set, test_set, scaler = steps.preprocess(raw_dataset, params.preprocess)
    classifier, pipeline, mlflow_run_id, model_uri = steps.train(
        train_set,
        scaler,
        raw_dataset,
        params.train,
        logged_params=logged_params(params),
        experiment_name=params.mlflow.experiment_name,
        tracking_uri=tracking_uri,
    )
    metrics, _, _ = steps.evaluate(
        classifier, test_set, mlflow_run_id, params.evaluate, params.mlflow.experiment_name
    )
    steps.save(pipeline, model_uri, metrics, raw_dataset, mlflow_run_id, params.save, params.mlflow)
