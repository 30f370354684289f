"""Training: the model follows its params, is deterministic, and the pipeline serves raw rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score

from mlpipeline.domain.dataset import load_iris_frame
from mlpipeline.domain.params import Params, TrainParams
from mlpipeline.domain.preprocessing import split_dataset
from mlpipeline.domain.training import bundle_pipeline, logged_params, train_model
from mlpipeline.files.params_yaml import load_params
from mlpipeline.tracking.model_log import flatten
from tests.support.iris import CLASSES, features_labels
from tests.support.repository import IRIS_PARAMS

# --- train


def test_model_follows_params(model: RandomForestClassifier, params: Params) -> None:
    assert isinstance(model, RandomForestClassifier)
    assert (model.n_estimators, model.max_depth, model.random_state) == (100, 5, 42)
    assert len(model.estimators_) == params.train.n_estimators
    assert list(model.classes_) == CLASSES
    assert list(model.feature_names_in_) == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]


def test_default_model_is_accurate_on_the_test_split(model: Any, processed) -> None:
    features, labels = features_labels(processed[1])
    assert accuracy_score(labels, model.predict(features)) >= 0.9


def test_training_is_deterministic(params: Params, processed, model: Any) -> None:
    again = train_model(processed[0], params.train)
    features, _ = features_labels(processed[1])
    np.testing.assert_array_equal(again.predict_proba(features), model.predict_proba(features))


def test_training_uses_the_params(processed) -> None:
    stump = TrainParams(
        **{**load_params(IRIS_PARAMS).train.model_dump(), "n_estimators": 3, "max_depth": 1}
    )
    model = train_model(processed[0], stump)
    assert len(model.estimators_) == 3
    assert all(tree.get_depth() == 1 for tree in model.estimators_)


def test_logged_params_cover_data_and_model(params: Params) -> None:
    logged = flatten(logged_params(params))
    # The model's hyperparameters under their own names, as MLflow's sklearn autolog has them.
    assert {key: logged[key] for key in params.train.model_dump()} == params.train.model_dump()
    assert (logged["n_estimators"], logged["max_depth"], logged["random_state"]) == (100, 5, 42)
    # The data's settings prefixed by their section, so `random_state` means the model's.
    assert logged["preprocess.random_state"] == params.preprocess.random_state
    assert logged["load.source"] == params.load.source
    sections = {"load": params.load, "preprocess": params.preprocess}
    expected = {
        f"{name}.{key}" for name, section in sections.items() for key in section.model_dump()
    }
    assert set(logged) == set(params.train.model_dump()) | expected


# --- the deployable pipeline (bundled by train) and promotion (save)


def test_pipeline_predicts_from_raw_features(params: Params, processed, model: Any) -> None:
    scaler = processed[2]
    pipeline = bundle_pipeline(scaler, model)
    _, raw_test = split_dataset(
        load_iris_frame(), params.preprocess.test_size, params.preprocess.random_state
    )
    raw_features, labels = features_labels(raw_test)
    scaled = scaler.transform(raw_features)
    np.testing.assert_array_equal(pipeline.predict(raw_features), model.predict(scaled))
    np.testing.assert_array_equal(pipeline.predict_proba(raw_features), model.predict_proba(scaled))
    assert accuracy_score(labels, pipeline.predict(raw_features)) >= 0.9
