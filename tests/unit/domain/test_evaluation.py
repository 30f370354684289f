"""Evaluation: metrics agree with scikit-learn, curves and figures are stable."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from mlpipeline.domain.dataset import TARGET
from mlpipeline.domain.evaluation import (
    Evaluation,
    evaluate_model,
    file_stem,
    png_images,
    render_figures,
)
from mlpipeline.domain.params import EvaluateParams, Params, TrainParams
from mlpipeline.domain.training import train_model
from tests.support.iris import CLASSES, features_labels

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
