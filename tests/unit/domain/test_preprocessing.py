"""Preprocess stage: a stratified, seeded split and a scaler fitted on the training split only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from mlpipeline.domain.dataset import TARGET, load_iris_frame
from mlpipeline.domain.errors import DataError
from mlpipeline.domain.params import PreprocessParams
from mlpipeline.domain.preprocessing import (
    check_splittable,
    make_scaler,
    preprocess,
    scale,
    split_dataset,
)


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return load_iris_frame()


def labelled(counts: dict[str, int]) -> pd.DataFrame:
    """A frame with `counts[label]` rows per label and one numeric feature."""
    labels = [label for label, count in counts.items() for _ in range(count)]
    return pd.DataFrame({"x": np.arange(len(labels), dtype=float), TARGET: labels})


def as_rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    return sorted(frame.itertuples(index=False, name=None))


def test_check_splittable_accepts_enough_rows() -> None:
    check_splittable(labelled({"a": 5, "b": 5}), test_size=0.2)


@pytest.mark.parametrize(
    ("counts", "test_size", "expected"),
    [
        ({"a": 5, "lonely": 1}, 0.2, "class 'lonely' has 1 row(s)"),
        ({"a": 3, "b": 3, "c": 3}, 0.1, "preprocess.test_size=0.1 leaves 8 train / 1 test rows"),
        ({"a": 3, "b": 3, "c": 3}, 0.9, "preprocess.test_size=0.9 leaves 0 train / 9 test rows"),
    ],
)
def test_check_splittable_names_the_problem(
    counts: dict[str, int], test_size: float, expected: str
) -> None:
    with pytest.raises(DataError) as caught:
        check_splittable(labelled(counts), test_size)
    assert expected in str(caught.value)


def test_split_is_stratified_and_complete(iris: pd.DataFrame) -> None:
    train, test = split_dataset(iris, test_size=0.2, random_state=42)
    assert (len(train), len(test)) == (120, 30)
    assert test[TARGET].value_counts().to_dict() == {
        "setosa": 10,
        "versicolor": 10,
        "virginica": 10,
    }
    assert set(train[TARGET].value_counts()) == {40}
    assert as_rows(pd.concat([train, test])) == as_rows(iris)
    assert list(train.index) == list(range(120))
    assert list(test.index) == list(range(30))


def test_split_is_stratified_on_unbalanced_classes() -> None:
    frame = labelled({"common": 80, "rare": 20})
    _, test = split_dataset(frame, test_size=0.25, random_state=0)
    assert test[TARGET].value_counts().to_dict() == {"common": 20, "rare": 5}


def test_split_is_deterministic_for_a_seed(iris: pd.DataFrame) -> None:
    first = split_dataset(iris, 0.2, random_state=7)
    again = split_dataset(iris, 0.2, random_state=7)
    other = split_dataset(iris, 0.2, random_state=8)
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_frame_equal(first[1], again[1])
    assert as_rows(first[1]) != as_rows(other[1])


def test_split_validates_the_data(iris: pd.DataFrame) -> None:
    broken = iris.copy()
    broken.loc[11, "petal_width"] = np.nan
    with pytest.raises(DataError, match=r"'petal_width'.*row 12"):
        split_dataset(broken, 0.2, 42)


@pytest.mark.parametrize(("kind", "cls"), [("standard", StandardScaler), ("minmax", MinMaxScaler)])
def test_make_scaler(kind: str, cls: type) -> None:
    scaler = make_scaler(kind)
    assert type(scaler) is cls
    assert not hasattr(scaler, "n_features_in_")  # unfitted


def test_scale_keeps_the_label_and_column_order() -> None:
    frame = pd.DataFrame({"b": [1.0, 3.0], "a": [10.0, 30.0], TARGET: ["x", "y"]})
    scaler = make_scaler("minmax").fit(frame.drop(columns=[TARGET]))
    scaled = scale(frame, scaler)
    assert list(scaled.columns) == ["b", "a", TARGET]
    assert scaled[TARGET].tolist() == ["x", "y"]
    assert scaled["a"].tolist() == [0.0, 1.0]


def test_standard_scaler_is_fitted_on_train_only(iris: pd.DataFrame) -> None:
    params = PreprocessParams(test_size=0.2, random_state=42, scaler="standard")
    train, test, scaler = preprocess(iris, params)
    raw_train, raw_test = split_dataset(iris, 0.2, 42)
    features = [column for column in iris.columns if column != TARGET]

    assert scaler.n_samples_seen_ == len(raw_train)
    np.testing.assert_allclose(scaler.mean_, raw_train[features].mean().to_numpy())
    np.testing.assert_allclose(train[features].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(train[features].std(ddof=0), 1.0)
    # Fitted on the training split, the scaler does not centre the test split exactly.
    assert np.abs(test[features].mean().to_numpy()).max() > 1e-3
    expected_test = (raw_test[features] - raw_train[features].mean()) / raw_train[features].std(
        ddof=0
    )
    np.testing.assert_allclose(test[features], expected_test)
    assert test[TARGET].tolist() == raw_test[TARGET].tolist()


def test_minmax_scaler_is_fitted_on_train_only(iris: pd.DataFrame) -> None:
    params = PreprocessParams(test_size=0.2, random_state=42, scaler="minmax")
    train, test, _ = preprocess(iris, params)
    features = [column for column in iris.columns if column != TARGET]
    np.testing.assert_allclose(train[features].min(), 0.0)
    np.testing.assert_allclose(train[features].max(), 1.0)
    assert list(test.columns) == [*features, TARGET]


def test_preprocess_is_deterministic(iris: pd.DataFrame) -> None:
    params = PreprocessParams(test_size=0.3, random_state=3, scaler="standard")
    first, again = preprocess(iris, params), preprocess(iris, params)
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_frame_equal(first[1], again[1])
