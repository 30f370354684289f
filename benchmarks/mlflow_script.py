"""The anchor: the whole job as one MLflow script, as a user would write it instead of the pipeline.

Same work and the same tracking as `dvc repro` on Iris, in one process: load, stratified
split, scaler fitted on the training split, the same RandomForest, the headline metrics,
four figures (confusion matrix, ROC, precision-recall, feature importance), params and
metrics logged, the scaler + classifier pipeline logged with its signature and an input
example (`pip_requirements` given, so MLflow does not infer them), registered, and the
alias set. No DVC, no versioned outputs, no validation. Prints one JSON line: seconds.

Run with MLFLOW_TRACKING_URI pointing at a fresh SQLite store (bench.py does).
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="{}", help="RandomForest params as JSON")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from matplotlib.figure import Figure
    from mlflow.models import infer_signature
    from sklearn import metrics as skm
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    train_params = json.loads(args.train)
    features, labels = load_iris(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=args.test_size, random_state=args.seed, stratify=labels
    )
    pipeline = Pipeline(
        [("scaler", StandardScaler()), ("classifier", RandomForestClassifier(**train_params))]
    ).fit(x_train, y_train)
    predicted = pipeline.predict(x_test)
    proba = pipeline.predict_proba(x_test)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_test, predicted, average="macro", zero_division=0
    )
    metrics = {
        "accuracy": skm.accuracy_score(y_test, predicted),
        "precision": precision,
        "recall": recall,
        "f1_score": f1,
    }

    figures = {}
    fig = Figure()
    skm.ConfusionMatrixDisplay.from_predictions(y_test, predicted, ax=fig.subplots())
    figures["confusion_matrix"] = fig
    roc, pr = Figure(), Figure()
    roc_ax, pr_ax = roc.subplots(), pr.subplots()
    for i, label in enumerate(pipeline.classes_):
        is_class = np.asarray(y_test == label)
        fpr, tpr, _ = skm.roc_curve(is_class, proba[:, i])
        prec, rec, _ = skm.precision_recall_curve(is_class, proba[:, i])
        roc_ax.step(fpr, tpr, where="post", label=str(label))
        pr_ax.step(rec, prec, where="post", label=str(label))
    figures["roc"], figures["precision_recall"] = roc, pr
    fig = Figure()
    fig.subplots().barh(features.columns, pipeline[-1].feature_importances_)
    figures["feature_importance"] = fig

    mlflow.set_experiment("iris_classification")
    with mlflow.start_run():
        mlflow.log_params(train_params)
        mlflow.log_metrics({name: float(value) for name, value in metrics.items()})
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        example = x_train.head(5)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict(example)),
            input_example=example,
            registered_model_name="iris_classifier",
            skops_trusted_types=["sklearn.tree._tree.Tree"],  # MLflow 3 saves skops by default
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    mlflow.MlflowClient().set_registered_model_alias(
        "iris_classifier", "champion", info.registered_model_version
    )

    seconds = time.perf_counter() - START
    print(json.dumps({"seconds": seconds, "accuracy": float(metrics["accuracy"])}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
