"""Train, evaluate and save stages on Iris with the template's Iris defaults."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from stages.errors import PipelineError
from stages.evaluate import Evaluation, evaluate_model, file_stem, png_images, render_figures
from stages.load import TARGET, load_iris_frame
from stages.params import EvaluateParams, Params, TrainParams, load_params
from stages.preprocess import preprocess, split_dataset
from stages.promotion import Candidate, Champion, champion_score, decide
from stages.tracking import flatten
from stages.train import bundle_pipeline, logged_params, train_model
from tests.repo_copy import IRIS_PARAMS

CLASSES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(IRIS_PARAMS)


@pytest.fixture(scope="module")
def processed(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    return preprocess(load_iris_frame(), params.preprocess)


@pytest.fixture(scope="module")
def model(params: Params, processed: tuple[pd.DataFrame, pd.DataFrame, Any]) -> Any:
    return train_model(processed[0], params.train)


@pytest.fixture(scope="module")
def evaluation(params: Params, processed: tuple[pd.DataFrame, pd.DataFrame, Any], model: Any):
    return evaluate_model(model, processed[1], params.evaluate)


def features_labels(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[TARGET]), frame[TARGET]


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


# --- evaluate


def test_metric_keys(evaluation: Evaluation) -> None:
    metrics = evaluation.metrics
    assert set(metrics) == {"accuracy", "precision", "recall", "f1_score", "average", "per_class"}
    assert set(metrics["per_class"]) == set(CLASSES)
    for scores in metrics["per_class"].values():
        assert set(scores) == {
            "precision",
            "recall",
            "f1",
            "support",
            "roc_auc",
            "average_precision",
        }
        assert all(0.0 <= value <= 1.0 for key, value in scores.items() if key != "support")
    assert [metrics["per_class"][name]["support"] for name in CLASSES] == [10, 10, 10]


def test_weighted_average_keeps_the_names(model: Any, processed) -> None:
    # Fewer setosa rows, so that macro and weighted averages differ.
    test = processed[1]
    test = test.drop(test.index[test[TARGET] == "setosa"][:7])
    features, labels = features_labels(test)
    predicted = model.predict(features)
    macro, weighted = (
        evaluate_model(model, test, EvaluateParams(average=average, top_features=3)).metrics
        for average in ("macro", "weighted")
    )
    assert set(weighted) == {"accuracy", "precision", "recall", "f1_score", "average", "per_class"}
    for name, score in (
        ("precision", precision_score),
        ("recall", recall_score),
        ("f1_score", f1_score),
    ):
        expected = score(labels, predicted, average="weighted", zero_division=0)
        assert weighted[name] == pytest.approx(expected)
    assert weighted["f1_score"] != pytest.approx(macro["f1_score"])
    assert (macro["average"], weighted["average"]) == ("macro", "weighted")


@pytest.mark.parametrize("strength", ["default", "stump"])
def test_metrics_agree_with_sklearn(strength: str, params: Params, processed, model: Any) -> None:
    if strength == "stump":  # a weak model, so the scores are not all 1.0
        weak = params.train.model_dump() | {"n_estimators": 1, "max_depth": 1}
        model = train_model(processed[0], TrainParams(**weak))
    features, labels = features_labels(processed[1])
    predicted = model.predict(features)
    metrics = evaluate_model(model, processed[1], params.evaluate).metrics

    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    for name, headline, score in (
        ("precision", "precision", precision_score),
        ("recall", "recall", recall_score),
        ("f1", "f1_score", f1_score),
    ):
        expected = score(labels, predicted, average="macro", zero_division=0)
        assert metrics[headline] == pytest.approx(expected)
        per_class = score(labels, predicted, average=None, labels=CLASSES, zero_division=0)
        assert [metrics["per_class"][c][name] for c in CLASSES] == pytest.approx(list(per_class))
    if strength == "stump":
        assert metrics["accuracy"] < 0.9


def test_curves_start_and_end_where_they_should(evaluation: Evaluation) -> None:
    assert set(evaluation.roc) == set(CLASSES)
    assert set(evaluation.precision_recall) == set(CLASSES)
    for curve in evaluation.roc.values():
        assert list(curve.columns) == ["fpr", "tpr"]
        assert (curve["fpr"].iloc[0], curve["tpr"].iloc[0]) == (0.0, 0.0)
        assert (curve["fpr"].iloc[-1], curve["tpr"].iloc[-1]) == (1.0, 1.0)
        assert curve["fpr"].is_monotonic_increasing
        assert curve["tpr"].is_monotonic_increasing
    for curve in evaluation.precision_recall.values():
        assert list(curve.columns) == ["recall", "precision"]
        assert curve["recall"].iloc[0] == 1.0
        assert (curve["recall"].iloc[-1], curve["precision"].iloc[-1]) == (0.0, 1.0)
        assert curve["recall"].is_monotonic_decreasing


def test_predictions_and_importances(evaluation: Evaluation, processed, model: Any) -> None:
    features, labels = features_labels(processed[1])
    predictions = evaluation.predictions
    assert list(predictions.columns) == ["actual", "predicted"]
    assert predictions["actual"].tolist() == labels.tolist()
    assert predictions["predicted"].tolist() == list(model.predict(features))

    importance = evaluation.feature_importance
    assert sorted(importance["feature"]) == sorted(features.columns)
    assert importance["importance"].is_monotonic_decreasing
    assert importance["importance"].sum() == pytest.approx(1.0)
    assert importance["feature"].iloc[0].startswith("petal")  # Iris is separated by its petals


def test_figures_are_rendered(evaluation: Evaluation) -> None:
    figures = render_figures(evaluation, top_features=2)
    assert set(figures) == {"confusion_matrix", "roc", "precision_recall", "feature_importance"}
    images = png_images(figures)
    assert set(images) == set(figures)
    for png in images.values():
        assert png.startswith(b"\x89PNG")
    assert len(figures["feature_importance"].axes[0].patches) == 2
    assert len(figures["roc"].axes[0].get_lines()) == len(CLASSES) + 1  # + the diagonal


def test_png_images_are_reproducible(evaluation: Evaluation) -> None:
    first, second = (png_images(render_figures(evaluation, top_features=3)) for _ in range(2))
    assert first == second


@pytest.mark.parametrize("top_features", [1, 20])
def test_figures_keep_their_labels_inside_the_image(
    evaluation: Evaluation, top_features: int
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for name, figure in render_figures(evaluation, top_features).items():
        canvas = FigureCanvasAgg(figure)
        canvas.draw()  # lays the figure out as savefig does
        box = figure.get_tightbbox(canvas.get_renderer())  # inches, like the figure size
        width, height = figure.get_size_inches()
        inside = box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
        assert inside, f"{name}: drawn over {box.bounds}, canvas is {width} x {height} in"


@pytest.mark.parametrize(
    ("label", "stem"),
    [
        ("setosa", "setosa"),
        ("Iris virginica", "Iris_virginica"),
        ("a/b\\c", "a_b_c"),
        ("../../etc", "etc"),
        ("1.5", "1.5"),
        ("...", "class"),
        ("", "class"),
    ],
)
def test_file_stem(label: str, stem: str) -> None:
    assert file_stem(label) == stem


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


def test_champion_score_reads_the_metric() -> None:
    metrics = {"accuracy": 0.95, "f1_score": 1, "per_class": {"a": {"f1": 0.5}}}
    assert champion_score(metrics, "accuracy") == 0.95
    assert champion_score(metrics, "f1_score") == 1.0


@pytest.mark.parametrize("metric", ["auc", "per_class", ""])
def test_champion_score_lists_the_available_metrics(metric: str) -> None:
    metrics = {"accuracy": 0.95, "f1_score": 0.9, "per_class": {"a": {"f1": 0.5}}}
    with pytest.raises(PipelineError) as caught:
        champion_score(metrics, metric)
    message = str(caught.value)
    assert f"save.champion_metric: {metric!r}" in message
    assert message.endswith("choose one of: accuracy, f1_score")


IRIS_INPUTS = [(name, "double") for name in FEATURES]
IRIS_DATA = "dataset_md5=abc;test_size=0.2;split_random_state=42"


@pytest.mark.parametrize(
    ("score", "min_score", "champion", "promoted", "reason"),
    [
        (0.85, 0.9, None, False, "below save.min_score"),
        (0.85, 0.9, 0.80, False, "below save.min_score"),
        (0.92, 0.9, 0.95, False, "worse than the champion's 0.9500"),
        (0.95, 0.9, 0.95, True, "matches or beats 0.9500"),
        (0.97, 0.9, 0.95, True, "matches or beats 0.9500"),
        (0.93, 0.9, None, True, "no champion yet"),
        (0.90, 0.9, None, True, "reaches 0.9000"),
        (0.0, 0.0, None, True, "no champion yet"),
    ],
)
def test_promotion_by_score(
    score: float, min_score: float, champion: float | None, promoted: bool, reason: str
) -> None:
    candidate = Candidate("2", score, IRIS_INPUTS, IRIS_DATA)
    holder = None if champion is None else Champion("1", champion, IRIS_INPUTS, IRIS_DATA)
    decision = decide(candidate, holder, min_score)
    assert decision.promoted is promoted
    assert reason in decision.reason


def test_a_champion_that_cannot_be_loaded_gives_way_but_the_bar_stays() -> None:
    lost = Champion("1", None, (), None, loadable=False)
    decision = decide(Candidate("2", 0.91, IRIS_INPUTS, IRIS_DATA), lost, 0.9)
    assert decision.promoted
    assert "champion version 1's model cannot be loaded" in decision.reason
    below = decide(Candidate("2", 0.85, IRIS_INPUTS, IRIS_DATA), lost, 0.9)
    assert not below.promoted
    assert "below save.min_score" in below.reason


TABLE_INPUTS = [("a", "double"), ("b", "double")]


@pytest.mark.parametrize(
    ("candidate", "champion", "compete", "promoted", "reason"),
    [
        # A 2-column model with a perfect score on its own tiny table never replaces Iris.
        (
            Candidate(
                "2", 1.0, TABLE_INPUTS, "dataset_md5=def;test_size=0.2;split_random_state=42"
            ),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "its input columns (a, b) differ from champion version 1's (sepal_length, "
            "sepal_width, petal_length, petal_width), whose requests it would reject; "
            "register it under its own model name",
        ),
        # The same columns, typed differently, are another signature too.
        (
            Candidate("2", 1.0, [(n, "long") for n in FEATURES], IRIS_DATA),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "input columns",
        ),
        # Same columns, another test split: the scores are not compared.
        (
            Candidate(
                "2", 0.99, IRIS_INPUTS, "dataset_md5=abc;test_size=0.3;split_random_state=42"
            ),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "computed on other data (dataset or test split) than champion version 1's, so the "
            "two are not comparable; to serve it anyway, `python -m stages.registry promote 2`",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, None),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "not comparable",
        ),
        # A champion from before the evaluation_data tag: its training data decides.
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, train_data_md5="f00"),
            Champion("1", 0.93, IRIS_INPUTS, None, train_data_md5="f00"),
            False,
            True,
            "matches or beats 0.9300",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, train_data_md5="f00"),
            Champion("1", 0.93, IRIS_INPUTS, None, train_data_md5="ba5"),
            False,
            False,
            "not comparable",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA),
            Champion("1", 0.93, IRIS_INPUTS, None),
            False,
            False,
            "not comparable",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA),
            Champion("1", None, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "has no score for this metric",
        ),
        # --temp and queued experiments register but do not compete, unless told to.
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, temp_experiment="sappy-tuna"),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "experiment sappy-tuna ran outside the workspace (--temp or queue) and "
            "save.experiments_compete is false; to serve it, `dvc exp apply sappy-tuna` and "
            "`python -m stages.registry promote 2`",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, temp_experiment="sappy-tuna"),
            None,
            False,
            False,
            "save.experiments_compete is false",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, temp_experiment="sappy-tuna"),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            True,
            True,
            "matches or beats 0.9300",
        ),
        # A rerun of save for the version that already holds the alias keeps it.
        (
            Candidate("1", 0.5, IRIS_INPUTS, IRIS_DATA),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            True,
            "version 1 already holds the alias",
        ),
    ],
)
def test_promotion_needs_comparable_versions(
    candidate: Candidate, champion: Champion | None, compete: bool, promoted: bool, reason: str
) -> None:
    decision = decide(candidate, champion, min_score=0.9, experiments_compete=compete)
    assert decision.promoted is promoted
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("value", "column"),
    [(np.nan, "petal_length"), (np.inf, "petal_length"), (None, "petal_length")],
)
def test_pipeline_refuses_missing_and_infinite_values(
    processed, model: Any, value: object, column: str
) -> None:
    from mlflow.exceptions import MlflowException

    pipeline = bundle_pipeline(processed[2], model)
    rows = load_iris_frame().drop(columns=[TARGET]).head(3).astype(object)
    rows.loc[2, column] = value
    with pytest.raises(MlflowException) as caught:
        pipeline.predict(rows)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert f"column {column!r} has 1 missing or infinite value(s), first in row 3" in str(
        caught.value
    )
    with pytest.raises(MlflowException, match="the request has no rows"):
        pipeline.predict(rows.head(0))


def test_save_registers_only_the_model_that_holds_pipeline_pkl() -> None:
    """models/mlflow_run.json must name the logged model whose bytes models/pipeline.pkl has."""
    from stages.save import logged_model

    info = {"run_id": "abc", "model_uri": "models:/m-1", "pipeline_md5": "0" * 32}
    assert logged_model(info, "0" * 32) == "models:/m-1"
    with pytest.raises(PipelineError, match=r"is not the model MLflow run abc logged"):
        logged_model(info, "1" * 32)
    # Written by a training run of an older version of the pipeline: no model URI.
    with pytest.raises(PipelineError, match=r"dvc repro --force train"):
        logged_model({"run_id": "abc"}, "0" * 32)
