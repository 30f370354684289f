"""ZenML steps: thin wrappers around the library functions the DVC stages call, named like them.

Each step's cache key includes the code files that dvc.yaml lists as deps of the stage of the
same name, so an edit reruns the steps `dvc repro` would rerun.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from zenml import get_step_context, step
from zenml.config import CachePolicy

from mlpipeline.domain import dataset, drift, evaluation, preprocessing, training
from mlpipeline.domain.params import (
    EvaluateParams,
    LoadParams,
    MlflowParams,
    PreprocessParams,
    SaveParams,
    TrainParams,
)
from mlpipeline.domain.promotion import decision_line
from mlpipeline.files import dvc_yaml, hashes, paths, pickles, tables
from mlpipeline.files.outputs import write_table
from mlpipeline.tracking import lineage, model_log, model_versions
from mlpipeline.tracking import runs as tracking
from zenml_pipeline.materializers import HashedDataFrameMaterializer

logger = logging.getLogger(__name__)


def _as_dvc_stage(stage: str) -> CachePolicy:
    """A cache key over the code files dvc.yaml lists as deps of the DVC stage `stage`."""
    code = [dep for dep in dvc_yaml.source_deps(stage) if dep.endswith(".py")]
    return CachePolicy(file_dependencies=code)


def zenml_tags() -> dict[str, str]:
    """MLflow tags naming the ZenML pipeline and run the current step belongs to."""
    context = get_step_context()
    return {
        "zenml_pipeline": context.pipeline.name,
        "zenml_pipeline_run": context.pipeline_run.name,
        "zenml_pipeline_run_id": str(context.pipeline_run.id),
    }


@contextlib.contextmanager
def written_as_dvc_would(frame: pd.DataFrame, name: str) -> Iterator[Path]:
    """`frame` in a temporary file written as the DVC stage writes `name` (train.parquet,
    dataset.csv), so its md5 is the one dvc.lock records for that file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        write_table(path, frame)
        yield path


# DataFrames carry a content hash (zenml_pipeline/materializers.py), so the steps they feed
# are cached on the data, not on which run stored it.
@step(
    cache_policy=_as_dvc_stage("load"),
    output_materializers={"raw_dataset": HashedDataFrameMaterializer},
)
def load(
    params: LoadParams, source_md5: str | None = None
) -> Annotated[pd.DataFrame, "raw_dataset"]:
    """The validated raw dataset; `source_md5` (of the user's CSV) only keys the cache."""
    table = None
    if params.source == "csv":
        table = tables.read_user_csv(paths.ROOT / str(params.csv_path))
    return dataset.load_dataset(params, table)


@step(
    cache_policy=_as_dvc_stage("preprocess"),
    output_materializers={
        "train_set": HashedDataFrameMaterializer,
        "test_set": HashedDataFrameMaterializer,
    },
)
def preprocess(
    raw_dataset: pd.DataFrame, params: PreprocessParams
) -> tuple[
    Annotated[pd.DataFrame, "train_set"],
    Annotated[pd.DataFrame, "test_set"],
    Annotated[TransformerMixin, "scaler"],
]:
    """Stratified split and a scaler fitted on the training split only."""
    # ZenML reads a multi-output step's arity from a literal tuple in its return statement.
    train_set, test_set, scaler = preprocessing.preprocess(raw_dataset, params)
    return train_set, test_set, scaler


@step(cache_policy=_as_dvc_stage("train"))
def train(
    train_set: pd.DataFrame,
    scaler: TransformerMixin,
    raw_dataset: pd.DataFrame,
    params: TrainParams,
    logged_params: dict[str, Any],
    experiment_name: str,
    tracking_uri: str,
) -> tuple[
    Annotated[BaseEstimator, "classifier"],
    Annotated[BaseEstimator, "pipeline"],
    Annotated[str, "mlflow_run_id"],
    Annotated[str, "model_uri"],
]:
    """Fit the classifier, bundle the pipeline and log it in the run evaluate and save use.

    Args:
        logged_params: what the run records (load, preprocess, train), as under DVC.
        tracking_uri: only keys the cache, so that another MLflow store gets its own run.
    """
    tracking.configure(experiment_name)
    model = training.train_model(train_set, params)
    pipeline = training.bundle_pipeline(scaler, model)
    with written_as_dvc_would(train_set, paths.TRAIN_SET.name) as train_file:
        tags = lineage.lineage_tags(train_file, orchestrator="zenml")
        train_md5 = hashes.file_md5(train_file)
    with written_as_dvc_would(raw_dataset, paths.RAW_DATA.name) as raw_file:
        raw_md5 = hashes.file_md5(raw_file)
    example = dataset.split_xy(raw_dataset)[0].head(5)
    reference = drift.training_reference(train_set, scaler)
    with model_log.training_run(
        get_step_context().pipeline_run.name,
        logged_params,
        pipeline,
        example=example,
        reference=reference,
        tags=tags | zenml_tags(),
        raw=model_log.Table(raw_dataset, raw_md5),
        train=model_log.Table(train_set, train_md5),
    ) as (run, model_uri):
        pass  # ZenML keeps the step's outputs as artifacts: nothing to write inside the run
    return model, pipeline, run.info.run_id, model_uri


@step(cache_policy=_as_dvc_stage("evaluate"))
def evaluate(
    classifier: BaseEstimator,
    test_set: pd.DataFrame,
    mlflow_run_id: str,
    params: EvaluateParams,
    experiment_name: str,
) -> tuple[
    Annotated[dict[str, Any], "metrics"],
    Annotated[pd.DataFrame, "predictions"],
    Annotated[pd.DataFrame, "feature_importance"],
]:
    """Score the classifier on the test split; log metrics and figures to the training run."""
    tracking.configure(experiment_name)
    scored = evaluation.evaluate_model(classifier, test_set, params)
    images = evaluation.png_images(evaluation.render_figures(scored, params.top_features))
    with written_as_dvc_would(test_set, paths.TEST_SET.name) as test_file:
        test_md5 = hashes.file_md5(test_file)
    settings = {"evaluate": params.model_dump()}
    test = model_log.Table(test_set, test_md5)
    with model_log.evaluation_run(mlflow_run_id, scored.metrics, images, settings, test):
        pass  # as in train: ZenML keeps the outputs
    return scored.metrics, scored.predictions, scored.feature_importance


@step(cache_policy=_as_dvc_stage("save"))
def save(
    pipeline: BaseEstimator,
    model_uri: str,
    metrics: dict[str, Any],
    raw_dataset: pd.DataFrame,
    mlflow_run_id: str,
    params: SaveParams,
    names: MlflowParams,
) -> Annotated[str, "model_version"]:
    """Register the pipeline train logged, and move the champion alias if it earns it."""
    with written_as_dvc_would(raw_dataset, paths.RAW_DATA.name) as raw_file:
        dataset_md5 = hashes.file_md5(raw_file)
    registration = model_versions.publish(
        model_uri,
        metrics,
        mlflow_run_id,
        pipeline_md5=hashes.bytes_md5(pickles.pickle_bytes(pipeline)),
        dataset_md5=dataset_md5,
        save=params,
        names=names,
    )
    logger.info("%s", decision_line(registration, names.champion_alias))
    return registration.version
