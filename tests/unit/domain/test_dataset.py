"""Load stage: Iris, a user's table, and data checks that name the column, row or class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlpipeline.domain.dataset import (
    TARGET,
    from_table,
    load_dataset,
    load_iris_frame,
    validate_dataset,
)
from mlpipeline.domain.errors import DataError
from mlpipeline.domain.params import LoadParams
from mlpipeline.files import tables as io

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def tiny_frame() -> pd.DataFrame:
    """Six rows, two numeric features, two classes: the smallest valid dataset plus margin."""
    return pd.DataFrame(
        {
            "x1": [0.1, 0.2, 0.3, 1.1, 1.2, 1.3],
            "x2": [5, 4, 6, 1, 2, 3],
            TARGET: ["a", "a", "a", "b", "b", "b"],
        }
    )


def test_iris_frame() -> None:
    frame = load_iris_frame()
    assert list(frame.columns) == [*IRIS_FEATURES, TARGET]
    assert frame.shape == (150, 5)
    assert frame[TARGET].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }
    assert all(pd.api.types.is_float_dtype(frame[column]) for column in IRIS_FEATURES)
    validate_dataset(frame)


def test_iris_frame_is_scikit_learns_iris_with_snake_case_names_and_species() -> None:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    expected = bunch.data.rename(
        columns=lambda name: name.removesuffix(" (cm)").replace(" ", "_")
    ).assign(**{TARGET: bunch.target_names[bunch.target.to_numpy()]})
    pd.testing.assert_frame_equal(load_iris_frame(), expected)
    assert load_iris_frame()[TARGET].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }


def test_from_table_moves_the_label_last_as_target() -> None:
    table = pd.DataFrame({"species": ["x", "y"], "a": [1.0, 2.0], "b": [3, 4]})
    frame = from_table(table, "species")
    assert list(frame.columns) == ["a", "b", TARGET]
    assert frame[TARGET].tolist() == ["x", "y"]
    assert list(table.columns) == ["species", "a", "b"]  # the caller's table is untouched


def test_from_table_accepts_a_label_already_called_target() -> None:
    table = pd.DataFrame({TARGET: ["x", "y"], "a": [1.0, 2.0]})
    assert list(from_table(table, TARGET).columns) == ["a", TARGET]


def test_from_table_missing_target_lists_the_columns() -> None:
    table = pd.DataFrame({"species": ["x"], "width": [1.0]})
    with pytest.raises(DataError, match="target column 'label' not found") as caught:
        from_table(table, "label")
    assert "species, width" in str(caught.value)


def test_from_table_reserved_target_name() -> None:
    table = pd.DataFrame({"species": ["x"], TARGET: [1.0]})
    with pytest.raises(DataError, match=f"column '{TARGET}' is reserved"):
        from_table(table, "species")


def test_tiny_frame_is_valid() -> None:
    validate_dataset(tiny_frame())


def _set(column: str, row: int, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str):  # text in a numeric column: let the column hold it
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(_set("x1", 2, np.nan), ["'x1'", "1 missing", "row 3"], id="missing-feature"),
        pytest.param(_set(TARGET, 1, None), [f"'{TARGET}'", "row 2"], id="missing-label"),
        pytest.param(
            _set("x2", 3, "abc"), ["'x2'", "not numeric", "row 4", "'abc'"], id="text-in-feature"
        ),
        pytest.param(
            lambda f: f.assign(flag=[True, False] * 3), ["'flag'", "not numeric"], id="bool-feature"
        ),
        pytest.param(
            lambda f: f.assign(**{TARGET: "a"}), ["at least two classes", "found 1"], id="one-class"
        ),
        pytest.param(
            lambda f: f.drop(columns=[TARGET]), [f"no '{TARGET}' column", "x1, x2"], id="no-label"
        ),
        pytest.param(lambda f: f[[TARGET]], ["no feature columns"], id="no-features"),
        pytest.param(lambda f: f.iloc[[0, 1, 3]], ["only 3 rows", "at least 4"], id="too-few-rows"),
        pytest.param(lambda f: f.iloc[0:0], ["header but no data rows"], id="no-rows"),
        pytest.param(
            lambda f: f.iloc[0:0].astype(object), ["header but no data rows"], id="no-rows-as-read"
        ),
        pytest.param(
            _set("x1", 4, np.inf), ["'x1'", "1 infinite value(s)", "row 5", "inf"], id="inf"
        ),
        pytest.param(
            lambda f: f.astype({"x2": float}).assign(x2=[1, -np.inf, 2, 3, np.inf, 4]),
            ["'x2'", "2 infinite value(s)", "first at data row 2", "-inf"],
            id="minus-inf",
        ),
        pytest.param(
            lambda f: pd.concat([f, f[["x1"]]], axis=1), ["'x1' appears more than once"], id="dup"
        ),
    ],
)
def test_invalid_data_is_named(
    change: Callable[[pd.DataFrame], pd.DataFrame], expected: list[str]
) -> None:
    with pytest.raises(DataError) as caught:
        validate_dataset(change(tiny_frame()))
    for fragment in expected:
        assert fragment in str(caught.value)


def test_first_missing_row_is_reported() -> None:
    frame = tiny_frame().astype({"x2": float})
    frame.loc[[4, 1], "x2"] = np.nan
    with pytest.raises(DataError, match=r"'x2' has 2 missing value\(s\), first at data row 2"):
        validate_dataset(frame)


def test_load_dataset_iris() -> None:
    frame = load_dataset(LoadParams(source="iris"))
    assert frame.shape == (150, 5)


def test_load_dataset_csv_table() -> None:
    table = tiny_frame().rename(columns={TARGET: "label"})
    params = LoadParams(source="csv", csv_path="data/external/t.csv", target_column="label")
    frame = load_dataset(params, table)
    assert list(frame.columns) == ["x1", "x2", TARGET]
    pd.testing.assert_series_equal(frame[TARGET], table["label"], check_names=False)


def test_load_dataset_csv_validates_the_table() -> None:
    table = tiny_frame().rename(columns={TARGET: "label"}).assign(x1=["1", "2", "?", "4", "5", "6"])
    params = LoadParams(source="csv", csv_path="data/external/t.csv", target_column="label")
    with pytest.raises(DataError, match=r"'x1' is not numeric: data row 3 holds '\?'"):
        load_dataset(params, table)


def test_load_dataset_csv_needs_the_table() -> None:
    params = LoadParams(source="csv", csv_path="data/external/t.csv", target_column="label")
    with pytest.raises(DataError, match="needs the table"):
        load_dataset(params)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["x", None, "y", "x"], "column 'species' has 1 missing value(s), first at data row 2"),
        (["x", "x", "x", "x"], "label column 'species' needs at least two classes, found 1"),
    ],
)
def test_label_errors_use_the_users_column_name(labels: list[str | None], message: str) -> None:
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "species": labels})
    params = LoadParams(source="csv", csv_path="data/external/t.csv", target_column="species")
    with pytest.raises(DataError) as raised:
        load_dataset(params, table)
    assert message in str(raised.value)


def test_non_finite_labels_use_the_users_column_name() -> None:
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "species": [0.0, 1.0, np.inf, 1.0]})
    params = LoadParams(source="csv", csv_path="data/external/t.csv", target_column="species")
    with pytest.raises(DataError, match=r"column 'species' has 1 infinite value\(s\)"):
        load_dataset(params, table)


def test_a_repeated_csv_header_name_is_refused(tmp_path: Path) -> None:
    # pandas reads the second f1 as `f1.1`; the header is checked before that.
    path = tmp_path / "t.csv"
    path.write_text('f1,"f1",label\n1,2,a\n')
    with pytest.raises(ValueError, match="column 'f1' appears more than once in the header"):
        io.read_table(path)
