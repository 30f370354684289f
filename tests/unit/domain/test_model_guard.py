"""The served model's input guard refuses missing, infinite and empty input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlpipeline.domain.dataset import TARGET, load_iris_frame
from mlpipeline.domain.training import bundle_pipeline


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


@pytest.mark.parametrize(
    ("value", "column"),
    [
        (1e300, "sepal_length"),
        (-1e300, "petal_width"),
        (3.4e38, "sepal_width"),  # within float32, but not once scaled
        (-1e39, "petal_length"),  # within float64, not float32
    ],
)
def test_pipeline_refuses_values_beyond_float32_after_scaling(
    processed, model: Any, value: float, column: str
) -> None:
    from mlflow.exceptions import MlflowException

    pipeline = bundle_pipeline(processed[2], model)
    rows = load_iris_frame().drop(columns=[TARGET]).head(3)
    rows.loc[1, column] = value
    with pytest.raises(MlflowException) as caught:
        pipeline.predict(rows)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    message = str(caught.value)
    assert f"column {column!r} has 1 value(s) out of the model's range, first in row 2" in message
    assert f"({value:g})" in message
    assert "\n" not in message


def test_the_largest_values_in_range_are_predicted(processed, model: Any) -> None:
    pipeline = bundle_pipeline(processed[2], model)
    guard = pipeline.named_steps["guard"]
    rows = load_iris_frame().drop(columns=[TARGET]).head(2)
    for column in rows.columns:
        rows.loc[0, column], rows.loc[1, column] = guard.limits_of(column)
    assert len(pipeline.predict(rows)) == 2
    assert np.isfinite(pipeline.predict_proba(rows)).all()


def test_a_refusal_serialises_without_the_request(processed, model: Any) -> None:
    """`mlflow models serve` prefixes the message with the request; the body leaves it out."""
    import json

    from mlflow.exceptions import MlflowException

    pipeline = bundle_pipeline(processed[2], model)
    rows = load_iris_frame().drop(columns=[TARGET]).head(3).astype(object)
    rows.loc[0, "sepal_width"] = np.nan
    with pytest.raises(MlflowException) as caught:
        pipeline.predict(rows)
    caught.value.message = f"Failed to predict data '{rows}'. \nError: {caught.value.message}"
    body = json.loads(caught.value.serialize_as_json())
    assert body == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "column 'sepal_width' has 1 missing or infinite value(s), first in row 1 of "
        "the request; every feature needs a finite number",
    }


def test_row_faults_name_the_first_bad_column_of_every_row(processed, model: Any) -> None:
    guard = bundle_pipeline(processed[2], model).named_steps["guard"]
    rows = load_iris_frame().drop(columns=[TARGET]).head(6).astype(object)
    rows.loc[1, "sepal_width"] = None
    rows.loc[2, "petal_length"] = "abc"
    rows.loc[3, "petal_width"] = np.inf
    rows.loc[4, "sepal_length"] = 1e300
    rows.loc[4, "petal_width"] = np.nan  # a later column: the first one is reported
    faults = guard.row_faults(rows)
    assert faults.iloc[0] == ""
    assert faults.iloc[1] == "sepal_width is missing"
    assert faults.iloc[2] == "petal_length is not a number: 'abc'"
    assert faults.iloc[3] == "petal_width is infinite: inf"
    assert faults.iloc[4].startswith("sepal_length is out of the model's range [")
    assert faults.iloc[4].endswith("]: 1e+300")
    assert faults.iloc[5] == ""
