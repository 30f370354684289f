"""Stage 3, train: a RandomForestClassifier on the scaled training split, and the deployable
pipeline (input guard + scaler + classifier) logged to MLflow once, for save to register."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from stages.load import TARGET
from stages.params import Params, TrainParams

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)


def split_xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[TARGET]), frame[TARGET]


def train_model(train: pd.DataFrame, params: TrainParams) -> RandomForestClassifier:
    """Fit the classifier on a processed training split."""
    from sklearn.ensemble import RandomForestClassifier

    features, labels = split_xy(train)
    model = RandomForestClassifier(**params.model_dump())
    return model.fit(features, labels)


def bundle_pipeline(scaler: Any, classifier: Any) -> Pipeline:
    """One estimator that takes the raw feature columns and predicts labels.

    Its first step refuses requests with missing, infinite or no values
    (stages/model_guard.py) before the scaler, which would pass them on.
    """
    from sklearn.pipeline import Pipeline

    from stages.model_guard import InputGuard

    guard = InputGuard(columns=[str(name) for name in scaler.feature_names_in_]).fit(None)
    return Pipeline([("guard", guard), ("scaler", scaler), ("classifier", classifier)])


def logged_params(params: Params) -> dict[str, object]:
    """What a training run records: every setting that shaped the data and the model.

    The model's hyperparameters keep their own names (`n_estimators`), as MLflow's
    scikit-learn autologging logs them; the data sections stay nested, so they are logged
    as `load.source`, `preprocess.random_state` and never collide with them.
    """
    return {
        **params.train.model_dump(),
        "load": params.load.model_dump(),
        "preprocess": params.preprocess.model_dump(),
    }


def main(params: Params) -> None:
    """Train on data/processed/train.parquet → models/classifier.pkl, models/pipeline.pkl and
    an MLflow run holding the pipeline as its model (models/mlflow_run.json names both)."""
    from stages import io, lineage, paths, tracking

    tracking.configure(params.mlflow.experiment_name)
    train = io.read_table(paths.TRAIN_SET)
    model = train_model(train, params.train)
    pipeline = bundle_pipeline(io.load_object(paths.SCALER), model)
    pipeline_bytes = io.pickle_bytes(pipeline)
    # Raw rows (not the scaled split): what the served model takes, with the raw dtypes.
    example = split_xy(io.read_table(paths.RAW_DATA))[0].head(5)
    tags = tracking.lineage_tags(paths.TRAIN_SET, orchestrator="dvc")
    # Outputs are written inside the run, so a failure writing them ends the run FAILED.
    with tracking.mlflow_run(run_name=tags.get("dvc_experiment")) as run:
        model_uri = tracking.log_training(logged_params(params), pipeline, example, tags)
        run_info = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "model_uri": model_uri,
            "pipeline_md5": io.bytes_md5(pipeline_bytes),
        }
        with io.staged_outputs() as outputs:
            outputs.pickle(paths.CLASSIFIER, model)
            outputs.bytes(paths.PIPELINE, pipeline_bytes)
            outputs.json(paths.RUN_INFO, run_info)
        lineage.record_stage("train", run_info["run_id"])
    log.info("trained on %d rows; MLflow run %s, model %s", len(train), run.info.run_id, model_uri)


if __name__ == "__main__":
    from stages.cli import run_stage

    run_stage("train", main)
