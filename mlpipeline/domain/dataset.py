"""The dataset: its label column, where it comes from, and what the pipeline can learn from.

Pure: tables in, tables or a DataError out; pandas and scikit-learn are imported inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlpipeline.domain.errors import DataError
from mlpipeline.domain.params import LoadParams

if TYPE_CHECKING:
    import pandas as pd

TARGET = "target"  # the label column's name in every table after load

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def load_iris_frame() -> pd.DataFrame:
    """Iris from scikit-learn's bundled copy: snake_case features, species names as labels."""
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.data.set_axis(IRIS_FEATURES, axis=1)
    frame[TARGET] = bunch.target_names[bunch.target.to_numpy()].astype(object)
    return frame


def make_synthetic(rows: int, features: int, classes: int, random_state: int) -> pd.DataFrame:
    """A classification table from scikit-learn's make_classification, for scale tests.

    Half the features (at least enough to separate the classes) are informative, up to two
    are linear combinations of those, the rest noise; labels are the integers 0..classes-1.
    """
    import pandas as pd
    from sklearn.datasets import make_classification

    informative = min(features, max((classes - 1).bit_length(), features // 2, 1))
    features_array, labels = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=informative,
        n_redundant=min(2, features - informative),
        n_classes=classes,
        n_clusters_per_class=1,
        random_state=random_state,
    )
    width = len(str(features - 1))
    columns = [f"feature_{i:0{width}d}" for i in range(features)]
    frame = pd.DataFrame(features_array, columns=columns, copy=False)
    frame[TARGET] = labels
    return frame


def from_table(table: pd.DataFrame, target_column: str) -> pd.DataFrame:
    """A user's table with its label column renamed to `target` and moved last."""
    if target_column not in table.columns:
        raise DataError(
            f"target column {target_column!r} not found; the table has: "
            f"{', '.join(map(str, table.columns))}"
        )
    if target_column != TARGET and TARGET in table.columns:
        raise DataError(f"column {TARGET!r} is reserved for the label; rename it in the table")
    features = table.drop(columns=[target_column])
    return features.assign(**{TARGET: table[target_column]})


def validate_dataset(frame: pd.DataFrame, label_name: str = TARGET) -> None:
    """Reject data the pipeline cannot learn from, naming the column, row or class.

    Args:
        label_name: what to call the label column in messages (the user's own name for it).
    """
    import numpy as np
    import pandas as pd

    repeated = frame.columns[frame.columns.duplicated()]
    if len(repeated):
        raise DataError(f"column {repeated[0]!r} appears more than once")
    if TARGET not in frame.columns:
        raise DataError(f"no {TARGET!r} column; columns are: {', '.join(map(str, frame.columns))}")
    features = [column for column in frame.columns if column != TARGET]
    if not features:
        raise DataError("no feature columns besides the label")
    if frame.empty:
        raise DataError("the table has a header but no data rows")
    for column in frame.columns:
        shown = label_name if column == TARGET else column
        missing = frame[column].isna().to_numpy().nonzero()[0]
        if missing.size:
            raise DataError(
                f"column {shown!r} has {missing.size} missing value(s), first at data row "
                f"{missing[0] + 1} (1-based, header not counted)"
            )
        if pd.api.types.is_float_dtype(frame[column]):
            infinite = np.isinf(frame[column].to_numpy()).nonzero()[0]
            if infinite.size:
                raise DataError(
                    f"column {shown!r} has {infinite.size} infinite value(s) (inf, or beyond "
                    f"the float range), first at data row {infinite[0] + 1} (1-based, header "
                    f"not counted): {frame[column].iloc[infinite[0]]!r}"
                )
    for column in features:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
            frame[column]
        ):
            numeric = pd.to_numeric(frame[column], errors="coerce")
            bad = numeric.isna().to_numpy().nonzero()[0]
            row = bad[0] if bad.size else 0
            raise DataError(
                f"feature column {column!r} is not numeric: data row {row + 1} holds "
                f"{frame[column].iloc[row]!r}"
            )
    classes = frame[TARGET].nunique()
    if classes < 2:
        raise DataError(f"label column {label_name!r} needs at least two classes, found {classes}")
    if len(frame) < 4:
        raise DataError(f"only {len(frame)} rows; need at least 4 for a train/test split")


def load_dataset(params: LoadParams, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The validated raw dataset for `params.source`; `table` is the CSV read by the caller."""
    if params.source == "iris":
        frame = load_iris_frame()
    elif params.source == "synthetic":
        shape = params.synthetic_shape()
        frame = make_synthetic(shape.rows, shape.features, shape.classes, shape.random_state)
    else:
        if table is None or params.target_column is None:
            raise DataError("source 'csv' needs the table and load.target_column")
        frame = from_table(table, params.target_column)
    validate_dataset(frame, label_name=params.target_column or TARGET)
    return frame


def split_xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The feature columns and the label column."""
    return frame.drop(columns=[TARGET]), frame[TARGET]
