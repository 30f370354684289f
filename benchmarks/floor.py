"""The floor: load, split, scale, fit, evaluate and save in one plain Python process.

No DVC, MLflow or ZenML, and only scikit-learn, pandas and numpy: the least the pipeline's
work can cost. The same computations as the stages (stratified split, scaler fitted on the
training split, the same RandomForest params, accuracy, per-class P/R/F1, ROC AUC and average
precision), the fitted scaler + classifier pickled to OUT. Figures and curve files are the
pipeline's extra. Prints one JSON line: seconds and peak RSS after each phase.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the pickles")
    parser.add_argument("--rows", type=int, help="synthetic rows (default: Iris)")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--train", default="{}", help="RandomForest params as JSON")
    args = parser.parse_args(argv)
    phases: dict[str, dict[str, float]] = {}
    mark = START

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = {"seconds": now - mark, "peak_rss_mib": peak_rss_mib()}
        mark = now

    import numpy as np
    import pandas as pd
    from sklearn import metrics as skm
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    phase("imports")

    if args.rows is None:
        features, labels = load_iris(return_X_y=True, as_frame=True)
    else:
        informative = min(args.features, max((args.classes - 1).bit_length(), args.features // 2))
        x, y = make_classification(
            n_samples=args.rows,
            n_features=args.features,
            n_informative=informative,
            n_redundant=min(2, args.features - informative),
            n_classes=args.classes,
            n_clusters_per_class=1,
            random_state=args.seed,
        )
        features, labels = pd.DataFrame(x).add_prefix("feature_"), pd.Series(y)
    phase("load")

    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=args.test_size, random_state=42, stratify=labels
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    phase("preprocess")

    model = RandomForestClassifier(**json.loads(args.train)).fit(x_train, y_train)
    phase("train")

    predicted = model.predict(x_test)
    proba = model.predict_proba(x_test)
    scores = {"accuracy": float(skm.accuracy_score(y_test, predicted))}
    scores["per_class"] = skm.precision_recall_fscore_support(y_test, predicted, zero_division=0)
    for i, label in enumerate(model.classes_):
        is_class = np.asarray(y_test == label)
        fpr, tpr, _ = skm.roc_curve(is_class, proba[:, i])
        skm.precision_recall_curve(is_class, proba[:, i])
        scores[f"roc_auc_{label}"] = float(skm.auc(fpr, tpr))
        scores[f"ap_{label}"] = float(skm.average_precision_score(is_class, proba[:, i]))
    skm.precision_recall_fscore_support(y_test, predicted, average="macro", zero_division=0)
    phase("evaluate")

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "pipeline.pkl").open("wb") as handle:
        pickle.dump(Pipeline([("scaler", scaler), ("classifier", model)]), handle, protocol=5)
    phase("save")

    total = time.perf_counter() - START
    print(json.dumps({"phases": phases, "seconds": total, "accuracy": scores["accuracy"]}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
