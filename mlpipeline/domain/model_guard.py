"""The deployable pipeline's first step: refuse requests a prediction would be meaningless for.

scikit-learn's scalers pass NaN through and its forests accept it, so without this step the
served model answers a row with a missing or infinite value with a confident label, and an
empty request with a stack trace. Training rejects such data (stages/load.py); this step
rejects it at prediction time, naming the column, as an MlflowException with
INVALID_PARAMETER_VALUE, which `mlflow models serve` answers with a 400 and the message.

The registered model ships this file (`code_paths`), so it imports only numpy, pandas and
scikit-learn (needed by the class itself, and loaded with the model anyway) and, on the
error path only, mlflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


def first_nonfinite(values: Any) -> tuple[int, int] | None:
    """(how many, first 0-based position) of the missing or infinite values, or None."""
    bad = ~np.isfinite(np.asarray(values, dtype=float))
    if not bad.any():
        return None
    return int(bad.sum()), int(bad.argmax())


def invalid_input(message: str) -> Exception:
    """The error a request gets: an MlflowException (HTTP 400 when served), else ValueError."""
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
    except ImportError:
        return ValueError(message)
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class InputGuard(TransformerMixin, BaseEstimator):
    """Passes the feature columns on unchanged if every value is a finite number.

    Args:
        columns: the feature columns the model was trained on, in order.
    """

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = columns

    def fit(self, features: pd.DataFrame, labels: Any = None) -> InputGuard:
        self.columns_ = list(self.columns if self.columns is not None else features.columns)
        return self

    def transform(self, features: Any) -> pd.DataFrame:
        columns = self.columns_
        if not isinstance(features, pd.DataFrame):
            features = pd.DataFrame(np.asarray(features), columns=columns)
        if len(features) == 0:
            raise invalid_input(f"the request has no rows; send rows of: {', '.join(columns)}")
        missing = [column for column in columns if column not in features.columns]
        if missing:
            raise invalid_input(f"missing column(s): {', '.join(missing)}")
        for column in columns:
            try:
                found = first_nonfinite(features[column])
            except (TypeError, ValueError):
                raise invalid_input(f"column {column!r} is not numeric") from None
            if found:
                count, row = found
                raise invalid_input(
                    f"column {column!r} has {count} missing or infinite value(s), first in "
                    f"row {row + 1} of the request; every feature needs a finite number"
                )
        return features[columns]
