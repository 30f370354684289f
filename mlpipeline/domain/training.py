"""Training: the RandomForest, and the deployable pipeline (input guard + scaler + classifier)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlpipeline.domain.dataset import split_xy
from mlpipeline.domain.params import Params, TrainParams

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline


def train_model(train: pd.DataFrame, params: TrainParams) -> RandomForestClassifier:
    """Fit the classifier on a processed training split."""
    from sklearn.ensemble import RandomForestClassifier

    features, labels = split_xy(train)
    model = RandomForestClassifier(**params.model_dump())
    return model.fit(features, labels)


def bundle_pipeline(scaler: Any, classifier: Any) -> Pipeline:
    """One estimator that takes the raw feature columns and predicts labels.

    Its first step refuses requests with missing, infinite, out-of-range or no values
    (mlpipeline/domain/model_guard.py) before the scaler, which would pass them on.
    """
    from sklearn.pipeline import Pipeline

    from mlpipeline.domain.model_guard import InputGuard

    columns = [str(name) for name in scaler.feature_names_in_]
    guard = InputGuard(columns=columns, limits=float32_limits(scaler, columns)).fit(None)
    return Pipeline([("guard", guard), ("scaler", scaler), ("classifier", classifier)])


def float32_limits(scaler: Any, columns: list[str]) -> dict[str, tuple[float, float]]:
    """Per column, the raw values a per-column affine scaler maps within float32's range.

    The forest converts the scaled features to float32, where anything beyond ±3.4e38 is
    infinite and refused with a stack trace. Both scalers (standard, minmax) are affine
    per column, x -> offset + slope * x; the slope and offset are read off the scaler's
    output for 0 and 1. The bound keeps a relative margin of 1e-6 below float32's largest
    value, so float64 rounding in the scaler cannot carry a value over it.
    """
    import numpy as np
    import pandas as pd

    from mlpipeline.domain.model_guard import FLOAT32_MAX

    probe = pd.DataFrame([[0.0] * len(columns), [1.0] * len(columns)], columns=columns)
    scaled = np.asarray(scaler.transform(probe), dtype=float)
    offsets, slopes = scaled[0], scaled[1] - scaled[0]
    bound = FLOAT32_MAX * (1 - 1e-6)
    largest = float(np.finfo(float).max)
    limits: dict[str, tuple[float, float]] = {}
    for column, offset, slope in zip(columns, offsets, slopes, strict=True):
        if slope == 0:
            limits[column] = (-largest, largest)
            continue
        with np.errstate(over="ignore"):
            ends = sorted(((-bound - offset) / slope, (bound - offset) / slope))
        low, high = (float(np.clip(end, -largest, largest)) for end in ends)
        limits[column] = (low, high)
    return limits


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
