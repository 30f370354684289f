"""Batch scoring: which rows of a chunk the model takes, their labels and class probabilities.

The model is the registered pipeline (input guard + scaler + classifier). Its guard judges
every row by the rules a served request is judged by (mlpipeline/domain/model_guard.py);
the rows it would refuse go to the rejects with their reason, the rest are scored by the
scaler and classifier behind it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

ROW_COLUMN = "row"  # the row's 1-based number among the input's data rows (header excluded)
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "proba_"
REASON_COLUMN = "reason"
# A column of this name is carried into the predictions and rejects, to join them back.
DEFAULT_ID_COLUMN = "id"


def feature_columns(pipeline: Any) -> list[str]:
    """The raw feature columns the registered pipeline takes, in order."""
    return list(pipeline.named_steps["guard"].columns_)


def check_schema(source: str, columns: list[str], features: list[str]) -> None:
    """A DataError naming the model's feature columns the input lacks, or repeats."""
    repeated = sorted(name for name, count in Counter(columns).items() if count > 1)
    if repeated:
        raise DataError(f"{source}: column(s) appear more than once: {', '.join(repeated)}")
    missing = [name for name in features if name not in columns]
    if missing:
        raise DataError(
            f"{source} lacks the model's feature column(s) {', '.join(missing)} "
            f"(the model takes {', '.join(features)}; the input has {', '.join(columns)})"
        )


def choose_id_column(source: str, columns: list[str], requested: str | None) -> str | None:
    """The id column to carry along: the one asked for (it must exist), else `id` if present."""
    if requested is not None:
        if requested not in columns:
            raise DataError(
                f"{source} has no id column {requested!r} (it has {', '.join(columns)})"
            )
        return requested
    return DEFAULT_ID_COLUMN if DEFAULT_ID_COLUMN in columns else None


@dataclass(frozen=True)
class ScoredChunk:
    predictions: pd.DataFrame  # row, [id], prediction, proba_<class>...
    rejects: pd.DataFrame  # row, [id], reason
    features: pd.DataFrame  # the scored rows' features, as floats


def score_chunk(
    pipeline: Any, chunk: pd.DataFrame, first_row: int, id_column: str | None
) -> ScoredChunk:
    """Score the rows of `chunk` the model's guard takes; the others become rejects.

    Args:
        first_row: the 1-based input row number of the chunk's first row.

    The label is the class of highest probability, which is what a forest's `predict`
    returns, computed from the probabilities already at hand rather than a second pass.
    """
    import numpy as np
    import pandas as pd

    guard = pipeline.named_steps["guard"]
    faults = guard.row_faults(chunk).to_numpy()
    good = faults == ""
    numbers = np.arange(first_row, first_row + len(chunk), dtype=np.int64)
    ids = {} if id_column is None else {id_column: chunk[id_column].to_numpy()}

    features = chunk.loc[good, guard.columns_].astype(float)
    model = pipeline[1:]  # the scaler and classifier behind the guard
    classes = np.asarray(pipeline.classes_)
    if len(features):
        probabilities = model.predict_proba(features)
        labels = classes[probabilities.argmax(axis=1)]
    else:
        probabilities = np.empty((0, len(classes)))
        labels = classes[:0]
    predictions = pd.DataFrame(
        {
            ROW_COLUMN: numbers[good],
            **{name: values[good] for name, values in ids.items()},
            PREDICTION_COLUMN: labels,
            **{
                f"{PROBABILITY_PREFIX}{label}": probabilities[:, i]
                for i, label in enumerate(classes)
            },
        }
    )
    rejects = pd.DataFrame(
        {
            ROW_COLUMN: numbers[~good],
            **{name: values[~good] for name, values in ids.items()},
            REASON_COLUMN: faults[~good].astype(str),
        }
    )
    return ScoredChunk(predictions, rejects, features)


@dataclass
class Tally:
    """What a scoring saw, chunk after chunk: rows, rejects, predicted classes."""

    rows: int = 0
    rejected: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    first_reject_row: int | None = None  # the lowest row number refused, and why
    first_reject_reason: str | None = None

    def add(self, scored: ScoredChunk) -> None:
        self.rows += len(scored.predictions) + len(scored.rejects)
        self.rejected += len(scored.rejects)
        labels = scored.predictions[PREDICTION_COLUMN].astype(str)
        self.classes.update(labels.value_counts().to_dict())
        if len(scored.rejects):
            first = scored.rejects.loc[scored.rejects[ROW_COLUMN].idxmin()]
            self._note_reject(int(first[ROW_COLUMN]), str(first[REASON_COLUMN]))

    def merge(self, other: Tally) -> None:
        """Add what another part of the same input saw (an engine scoring parts apart)."""
        self.rows += other.rows
        self.rejected += other.rejected
        self.classes.update(other.classes)
        if other.first_reject_row is not None:
            self._note_reject(other.first_reject_row, str(other.first_reject_reason))

    def _note_reject(self, row: int, reason: str) -> None:
        if self.first_reject_row is None or row < self.first_reject_row:
            self.first_reject_row, self.first_reject_reason = row, reason

    @property
    def first_reject(self) -> str | None:
        if self.first_reject_row is None:
            return None
        return f"row {self.first_reject_row}: {self.first_reject_reason}"

    @property
    def scored(self) -> int:
        return self.rows - self.rejected

    def class_shares(self) -> dict[str, float]:
        """Each predicted class's share of the scored rows."""
        return {label: count / self.scored for label, count in sorted(self.classes.items())}

    def check_usable(self, source: str) -> None:
        """A DataError when the input had no rows, or the model refused every one."""
        if self.rows == 0:
            raise DataError(f"{source} has no data rows")
        if self.scored == 0:
            raise DataError(
                f"{source}: the model refused all {self.rows} row(s); the first: "
                f"{self.first_reject}"
            )


def scoring_metrics(tally: Tally, seconds: float) -> dict[str, float]:
    """A scoring's run metrics: rows, rejects, speed and each predicted class's share."""
    return {
        "rows": float(tally.rows),
        "rejected_rows": float(tally.rejected),
        "scored_rows": float(tally.scored),
        "seconds": seconds,
        "rows_per_second": tally.rows / seconds if seconds > 0 else 0.0,
        **{f"class_share.{label}": share for label, share in tally.class_shares().items()},
    }
