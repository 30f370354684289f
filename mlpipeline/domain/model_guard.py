"""The deployable pipeline's first step: refuse requests a prediction would be meaningless for.

scikit-learn's scalers pass NaN through and its forests accept it, so without this step the
served model answers a row with a missing or infinite value with a confident label, and an
empty request with a stack trace. Its trees compute in float32: a value the scaler maps
beyond float32's range (±3.4e38; `1e300`, or `3.4e38` once scaled) makes scikit-learn
raise, which `mlflow models serve` answers with a generic message and a stack trace.
Training rejects such data (stages/load.py); this step rejects it at prediction time,
naming the column, as an MlflowException with INVALID_PARAMETER_VALUE, which `mlflow models
serve` answers with a 400 and the message, and only the message: MLflow prefixes the
message of a model's MlflowException with the whole request, which the error this module
raises leaves out of its response body.

The batch scorer (mlpipeline/batch/) asks the same guard which rows it would
refuse and why (`row_faults`), so a file is judged by the rules a request is.

The registered model ships this file (`code_paths`), so it imports only numpy, pandas and
scikit-learn (needed by the class itself, and loaded with the model anyway) and, on the
error path only, mlflow.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException

# The largest magnitude scikit-learn's trees can hold (they convert their input to float32).
FLOAT32_MAX = float(np.finfo(np.float32).max)


def first_nonfinite(values: Any) -> tuple[int, int] | None:
    """(how many, first 0-based position) of the missing or infinite values, or None."""
    bad = ~np.isfinite(np.asarray(values, dtype=float))
    if not bad.any():
        return None
    return int(bad.sum()), int(bad.argmax())


@functools.cache
def _refusal_class() -> type[MlflowException]:
    from mlflow.exceptions import MlflowException

    class RequestRefused(MlflowException):
        """An MlflowException whose response body holds the refusal and nothing else.

        `mlflow models serve` rewrites a model's MlflowException message to
        "Failed to predict data '<the whole request>'. Error: <message>"; the body this class
        serialises keeps the refusal it was raised with.
        """

        def __init__(self, message: str, error_code: int) -> None:
            super().__init__(message, error_code=error_code)
            self.refusal = message

        def serialize_as_json(self) -> str:
            return json.dumps({"error_code": self.error_code, "message": self.refusal})

    return RequestRefused


def invalid_input(message: str) -> Exception:
    """The error a request gets: an MlflowException (HTTP 400 when served), else ValueError."""
    try:
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        refused = _refusal_class()
    except ImportError:
        return ValueError(message)
    return refused(message, error_code=INVALID_PARAMETER_VALUE)


def _short(value: object) -> str:
    """A value as an error shows it: numbers in %g, anything else cut to 40 characters."""
    if isinstance(value, int | float | np.number):
        return f"{float(value):g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class InputGuard(TransformerMixin, BaseEstimator):
    """Passes the feature columns on unchanged if every value is a finite number in range.

    Args:
        columns: the feature columns the model was trained on, in order.
        limits: per column, the (lowest, highest) raw value the model can compute with
            (the values the scaler maps within float32's range); None: ±FLOAT32_MAX.
    """

    def __init__(
        self,
        columns: list[str] | None = None,
        limits: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.columns = columns
        self.limits = limits

    def fit(self, features: pd.DataFrame, labels: Any = None) -> InputGuard:
        self.columns_ = list(self.columns if self.columns is not None else features.columns)
        return self

    def limits_of(self, column: str) -> tuple[float, float]:
        """The range of raw values of `column` the model computes with."""
        limits = getattr(self, "limits", None) or {}
        low, high = limits.get(column, (-FLOAT32_MAX, FLOAT32_MAX))
        return float(low), float(high)

    def missing_columns(self, features: pd.DataFrame) -> list[str]:
        return [column for column in self.columns_ if column not in features.columns]

    def row_faults(self, features: pd.DataFrame) -> pd.Series:
        """Per row, why the model refuses it ("" for a row it takes): the first bad column."""
        faults = pd.Series("", index=features.index, dtype=object)
        for column in self.columns_:
            raw = features[column]
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            low, high = self.limits_of(column)
            missing = raw.isna().to_numpy()
            not_number = np.isnan(values) & ~missing
            infinite = np.isinf(values)
            with np.errstate(invalid="ignore"):
                out_of_range = np.isfinite(values) & ((values < low) | (values > high))
            open_rows = (faults == "").to_numpy().copy()
            for mask, what, show in (
                (missing, "is missing", False),
                (not_number, "is not a number", True),
                (infinite, "is infinite", True),
                (out_of_range, f"is out of the model's range [{low:g}, {high:g}]", True),
            ):
                rows = np.flatnonzero(mask & open_rows)
                if rows.size:
                    faults.iloc[rows] = [
                        f"{column} {what}: {_short(raw.iloc[row])}" if show else f"{column} {what}"
                        for row in rows
                    ]
                    open_rows[rows] = False
        return faults

    def transform(self, features: Any) -> pd.DataFrame:
        columns = self.columns_
        if not isinstance(features, pd.DataFrame):
            features = pd.DataFrame(np.asarray(features), columns=columns)
        if len(features) == 0:
            raise invalid_input(f"the request has no rows; send rows of: {', '.join(columns)}")
        missing = self.missing_columns(features)
        if missing:
            raise invalid_input(f"missing column(s): {', '.join(missing)}")
        for column in columns:
            try:
                values = np.asarray(features[column], dtype=float)
            except (TypeError, ValueError):
                raise invalid_input(f"column {column!r} is not numeric") from None
            found = first_nonfinite(values)
            if found:
                count, row = found
                raise invalid_input(
                    f"column {column!r} has {count} missing or infinite value(s), first in "
                    f"row {row + 1} of the request; every feature needs a finite number"
                )
            low, high = self.limits_of(column)
            outside = (values < low) | (values > high)
            if outside.any():
                row = int(outside.argmax())
                raise invalid_input(
                    f"column {column!r} has {int(outside.sum())} value(s) out of the model's "
                    f"range, first in row {row + 1} of the request ({values[row]:g}); every "
                    f"feature needs a finite number in [{low:g}, {high:g}] (the model computes "
                    "in float32)"
                )
        return features[columns]
