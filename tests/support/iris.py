"""Iris as the tests know it: its classes, its features, known rows of each class."""

from __future__ import annotations

import pandas as pd

from mlpipeline.domain.dataset import TARGET

CLASSES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# The first row of each class in the Iris data set.
KNOWN_ROWS = {
    "setosa": [5.1, 3.5, 1.4, 0.2],
    "versicolor": [7.0, 3.2, 4.7, 1.4],
    "virginica": [6.3, 3.3, 6.0, 2.5],
}


def features_labels(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[TARGET]), frame[TARGET]
