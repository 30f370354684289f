"""Evaluation: test-split metrics, curves, and the figures DVC and MLflow show."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.dataset import TARGET
from mlpipeline.domain.metric_names import HEADLINE_METRICS
from mlpipeline.domain.params import EvaluateParams

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]  # metrics.json: headline scores, their `average`, `per_class`
    predictions: pd.DataFrame  # actual, predicted: DVC's confusion template
    roc: dict[str, pd.DataFrame]  # class -> fpr, tpr
    precision_recall: dict[str, pd.DataFrame]  # class -> recall, precision
    feature_importance: pd.DataFrame  # feature, importance, most important first


# Points kept per curve in plots/ and the PNGs. Scores are computed on the full curves; a
# precision-recall curve has a point per distinct score (~200k on a 1M-row dataset), which
# neither a plot nor `dvc plots` needs.
MAX_CURVE_POINTS = 1000


def thin_curve(curve: pd.DataFrame, max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """At most `max_points` evenly spaced rows of a curve, first and last included."""
    import numpy as np

    if len(curve) <= max_points:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, max_points).round().astype(int))
    return curve.iloc[keep].reset_index(drop=True)


def evaluate_model(model: Any, test: pd.DataFrame, params: EvaluateParams) -> Evaluation:
    """Score a fitted classifier on the processed test split."""
    import pandas as pd
    from sklearn import metrics as skm

    features, labels = test.drop(columns=[TARGET]), test[TARGET]
    predicted = model.predict(features)
    proba = model.predict_proba(features)
    classes = [str(label) for label in model.classes_]

    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=model.classes_, zero_division=0
    )
    per_class: dict[str, dict[str, float]] = {}
    roc: dict[str, pd.DataFrame] = {}
    pr: dict[str, pd.DataFrame] = {}
    for i, name in enumerate(classes):
        is_class = (labels == model.classes_[i]).to_numpy()
        fpr, tpr, _ = skm.roc_curve(is_class, proba[:, i])
        prec, rec, _ = skm.precision_recall_curve(is_class, proba[:, i])
        roc[name] = thin_curve(pd.DataFrame({"fpr": fpr, "tpr": tpr}))
        pr[name] = thin_curve(pd.DataFrame({"recall": rec, "precision": prec}))
        per_class[name] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "roc_auc": float(skm.auc(fpr, tpr)),
            "average_precision": float(skm.average_precision_score(is_class, proba[:, i])),
        }

    # The headline names are the same for every `average`; metrics.json says which one it
    # was (`dvc metrics diff` shows it change), the MLflow run has it as the tag
    # `evaluate.average` (a metric must be a number).
    avg_p, avg_r, avg_f1, _ = skm.precision_recall_fscore_support(
        labels, predicted, average=params.average, zero_division=0
    )
    headline = (skm.accuracy_score(labels, predicted), avg_p, avg_r, avg_f1)
    metrics = {
        **{name: float(value) for name, value in zip(HEADLINE_METRICS, headline, strict=True)},
        "average": params.average,
        "per_class": per_class,
    }
    importance = (
        pd.DataFrame({"feature": features.columns, "importance": model.feature_importances_})
        .sort_values("importance", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    return Evaluation(
        metrics=metrics,
        predictions=pd.DataFrame(
            {"actual": labels.astype(str), "predicted": predicted.astype(str)}
        ),
        roc=roc,
        precision_recall=pr,
        feature_importance=importance,
    )


def render_figures(evaluation: Evaluation, top_features: int) -> dict[str, Figure]:
    """The evaluation as matplotlib figures: confusion matrix, ROC, PR, feature importance."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    figures: dict[str, Figure] = {}

    # Constrained layout keeps every label inside the canvas (the default clips "True label").
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(
        evaluation.predictions["actual"],
        evaluation.predictions["predicted"],
        ax=fig.subplots(),
        colorbar=False,
    )
    fig.suptitle("Confusion matrix (test split)")
    figures["confusion_matrix"] = fig

    for name, curves, x, y, diagonal in (
        ("roc", evaluation.roc, "fpr", "tpr", True),
        ("precision_recall", evaluation.precision_recall, "recall", "precision", False),
    ):
        fig = Figure(figsize=(5, 4.5), layout="constrained")
        ax = fig.subplots()
        for label, curve in curves.items():
            ax.plot(curve[x], curve[y], label=label, drawstyle="steps-post")
        if diagonal:
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set(xlabel=x, ylabel=y, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.legend(loc="lower right" if diagonal else "lower left")
        fig.suptitle("ROC per class" if diagonal else "Precision-recall per class")
        figures[name] = fig

    top = evaluation.feature_importance.head(top_features).iloc[::-1]
    fig = Figure(figsize=(5, 0.4 * len(top) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.barh(top["feature"], top["importance"])
    ax.set_xlabel("importance (mean decrease in impurity)")
    fig.suptitle("Feature importance")
    figures["feature_importance"] = fig
    return figures


def png_images(figures: Mapping[str, Figure]) -> dict[str, bytes]:
    """Each figure rendered once, as PNG bytes for plots/images and the MLflow run alike."""
    images: dict[str, bytes] = {}
    for name, figure in figures.items():
        buffer = io.BytesIO()
        # No "Software" entry (the matplotlib version), so the bytes depend on the data only.
        figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
        images[name] = buffer.getvalue()
    return images


def file_stem(label: str) -> str:
    """A class label as a safe file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "class"
