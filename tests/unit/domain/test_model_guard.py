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
