"""Preprocessing: a stratified train/test split and a scaler fitted on the training split only."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mlpipeline.domain.dataset import TARGET, validate_dataset
from mlpipeline.domain.errors import DataError
from mlpipeline.domain.params import PreprocessParams

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.base import TransformerMixin


def check_splittable(frame: pd.DataFrame, test_size: float) -> None:
    """Every class needs a row on each side of a stratified split."""
    counts = frame[TARGET].value_counts()
    rare = counts[counts < 2]
    if not rare.empty:
        label, count = rare.index[0], int(rare.iloc[0])
        raise DataError(f"class {label!r} has {count} row(s); a stratified split needs at least 2")
    n_test = math.ceil(test_size * len(frame))
    n_train = len(frame) - n_test
    if min(n_test, n_train) < len(counts):
        raise DataError(
            f"preprocess.test_size={test_size} leaves {n_train} train / {n_test} test rows for "
            f"{len(counts)} classes; each side needs at least one row per class"
        )


def split_dataset(
    frame: pd.DataFrame, test_size: float, random_state: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split with a fresh 0..n index on each side."""
    from sklearn.model_selection import train_test_split

    validate_dataset(frame)
    check_splittable(frame, test_size)
    train, test = train_test_split(
        frame, test_size=test_size, random_state=random_state, stratify=frame[TARGET]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def make_scaler(kind: str) -> TransformerMixin:
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler}[kind]()
    return scaler.set_output(transform="pandas")


def scale(frame: pd.DataFrame, scaler: TransformerMixin) -> pd.DataFrame:
    """Apply a fitted scaler to the feature columns; the label passes through."""
    features = scaler.transform(frame.drop(columns=[TARGET]))
    return features.assign(**{TARGET: frame[TARGET].to_numpy()})


def preprocess(
    frame: pd.DataFrame, params: PreprocessParams
) -> tuple[pd.DataFrame, pd.DataFrame, TransformerMixin]:
    """Split, fit the scaler on the training split, and scale both splits."""
    train, test = split_dataset(frame, params.test_size, params.random_state)
    scaler = make_scaler(params.scaler).fit(train.drop(columns=[TARGET]))
    return scale(train, scaler), scale(test, scaler), scaler
