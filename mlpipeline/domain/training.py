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

    Its first step refuses requests with missing, infinite or no values
    (mlpipeline/domain/model_guard.py) before the scaler, which would pass them on.
    """
    from sklearn.pipeline import Pipeline

    from mlpipeline.domain.model_guard import InputGuard

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
