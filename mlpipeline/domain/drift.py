"""Data drift: the training split's reference profile, and a batch compared with it.

At training time each feature of the training split (in the units requests come in) is
summarised by 101 percentiles and the share of rows in each of the 102 bins they bound, and
the labels by their shares: a few kB of JSON logged with the model (numpy only, milliseconds
at a million rows). Scoring counts each batch into the same bins chunk by chunk (memory does
not grow with the batch) and compares, per feature:

- PSI, the population stability index, over the deciles (groups of ten of those bins):
  sum((batch - reference) * ln(batch / reference)); below 0.1 is read as stable, above
  0.2 as a shift;
- the Kolmogorov-Smirnov statistic, the largest gap between the two cumulative
  distributions, here at the 101 percentiles (a resolution of 1% of the reference rows);
  its p-value is scipy's for that statistic and the batch's size.

Prediction drift is the PSI of the predicted classes against the training labels' shares.
Why not Evidently: it would add a dependency tree (and its import time) beside the locked
stack for two statistics numpy computes in a few lines, and it needs the reference rows
themselves at scoring time, where this needs only the profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlpipeline.domain.params import MonitorParams

PERCENTILES = 101  # 0, 1, ..., 100
DECILE_STEP = 10  # PSI bins: groups of this many percentile bins
# Shares of 0 make PSI infinite; an empty bin counts as this share (a common choice).
EMPTY_SHARE = 1e-4
PROFILE_VERSION = 1


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many values fall in each of the len(edges) + 1 bins the edges bound."""
    import numpy as np

    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def reference_profile(features: pd.DataFrame, labels: pd.Series) -> dict[str, Any]:
    """The training split's profile: per feature percentiles and bin shares; label shares."""
    import numpy as np

    rows = len(features)
    profile: dict[str, Any] = {"version": PROFILE_VERSION, "rows": rows, "features": {}}
    for column in features.columns:
        values = features[column].to_numpy(dtype=float)
        edges = np.quantile(values, np.linspace(0, 1, PERCENTILES))
        profile["features"][str(column)] = {
            "percentiles": edges.tolist(),
            "shares": (_bin_counts(values, edges) / rows).tolist(),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    shares = labels.astype(str).value_counts(normalize=True).sort_index()
    profile["labels"] = {str(label): float(share) for label, share in shares.items()}
    return profile


def training_reference(train: pd.DataFrame, scaler: Any) -> dict[str, Any]:
    """The profile of a processed (scaled) training split, in the units requests come in."""
    import pandas as pd

    from mlpipeline.domain.dataset import split_xy

    features, labels = split_xy(train)
    raw = pd.DataFrame(scaler.inverse_transform(features), columns=features.columns)
    return reference_profile(raw, labels)


def psi(batch: Any, reference: Any) -> float:
    """Population stability index of two share vectors over the same bins."""
    import numpy as np

    batch = np.maximum(np.asarray(batch, dtype=float), EMPTY_SHARE)
    reference = np.maximum(np.asarray(reference, dtype=float), EMPTY_SHARE)
    return float(np.sum((batch - reference) * np.log(batch / reference)))


def _deciles(shares: np.ndarray) -> np.ndarray:
    """Percentile-bin shares (102: below p0, 100 between, above p100) summed by decile.

    The two tails join the first and last decile, so a batch beyond the training range
    counts in the decile it extends.
    """

    inner = shares[1:-1].copy()
    inner[0] += shares[0]
    inner[-1] += shares[-1]
    return inner.reshape(-1, DECILE_STEP).sum(axis=1)


# Sums are kept exact, as integers in units of 2**-SUM_SCALE (the smallest float64 is
# 2**-1074; frexp's 53-bit mantissas shift it by 52 more), so a batch's mean does not depend
# on how it was cut into chunks or on the order the chunks are added in: the local engine
# and Spark's executors give the same bits.
SUM_SCALE = 1126
_HALF = 26  # mantissas are summed as two halves of at most 27 bits each: exact in float64
_SLICE = 1 << _HALF  # values per bincount, so a half's sum stays below 2**53


def exact_sum(values: np.ndarray) -> int:
    """The exact sum of finite float64 `values`, in units of 2**-SUM_SCALE."""
    import numpy as np

    total = 0
    for start in range(0, len(values), _SLICE):
        mantissas, exponents = np.frexp(values[start : start + _SLICE])
        integers = (mantissas * 2.0**53).astype(np.int64)  # exact: 53 bits
        if not len(exponents):
            continue
        lowest = int(exponents.min())
        where = exponents - lowest  # at most 2098 bins: float64's exponent range
        high = np.bincount(where, weights=integers >> _HALF)
        low = np.bincount(where, weights=integers & (_SLICE - 1))
        for index in np.flatnonzero(high.astype(bool) | low.astype(bool)).tolist():
            exact = (int(high[index]) << _HALF) + int(low[index])
            total += exact << (lowest + index - 53 + SUM_SCALE)
    return total


@dataclass
class BatchCounts:
    """A batch counted into the reference's bins, chunk by chunk; parts of a batch counted
    apart (by Spark's executors) add up with `merge`."""

    reference: Mapping[str, Any]
    rows: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    sums: dict[str, int] = field(default_factory=dict)  # exact, see SUM_SCALE
    predicted: dict[str, int] = field(default_factory=dict)

    def merge(self, other: BatchCounts) -> None:
        self.rows += other.rows
        for column, counts in other.counts.items():
            self.counts[column] = self.counts.get(column, 0) + counts
        for column, total in other.sums.items():
            self.sums[column] = self.sums.get(column, 0) + total
        for label, count in other.predicted.items():
            self.predicted[label] = self.predicted.get(label, 0) + count

    def mean(self, column: str) -> float:
        """The batch's mean of `column`, correctly rounded (NaN for an empty batch)."""
        if not self.rows:
            return math.nan
        return self.sums.get(column, 0) / (self.rows << SUM_SCALE)

    def add(self, features: pd.DataFrame, predictions: pd.Series) -> None:
        import numpy as np

        self.rows += len(features)
        for column, profile in self.reference["features"].items():
            edges = np.asarray(profile["percentiles"])
            values = features[column].to_numpy(dtype=float)
            self.counts[column] = self.counts.get(column, 0) + _bin_counts(values, edges)
            self.sums[column] = self.sums.get(column, 0) + exact_sum(values)
        for label, count in predictions.astype(str).value_counts().items():
            self.predicted[str(label)] = self.predicted.get(str(label), 0) + int(count)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    mean: float  # the batch's
    reference_mean: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    rows: int
    features: list[FeatureDrift]
    prediction_psi: float
    predicted_shares: dict[str, float]
    reference_label_shares: dict[str, float]
    prediction_drifted: bool
    thresholds: dict[str, float]

    @property
    def drifted_features(self) -> list[str]:
        return [item.feature for item in self.features if item.drifted]

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_features) or self.prediction_drifted

    def gate_line(self) -> str:
        """One line: what drifted and by how much, or that nothing did."""
        psi_max, ks_max = self.thresholds["psi"], self.thresholds["ks"]
        parts = [
            f"{item.feature} (PSI {item.psi:.3f}, KS {item.ks_statistic:.3f})"
            for item in self.features
            if item.drifted
        ]
        if self.prediction_drifted:
            parts.append(f"predictions (PSI {self.prediction_psi:.3f})")
        if not parts:
            return (
                f"no drift over {self.rows} rows: every feature within PSI {psi_max:g} and "
                f"KS {ks_max:g}, predictions within PSI {self.thresholds['prediction_psi']:g}"
            )
        return (
            f"drift over {self.rows} rows beyond PSI {psi_max:g} / KS {ks_max:g} "
            f"(predictions: PSI {self.thresholds['prediction_psi']:g}): {', '.join(parts)}"
        )

    def metrics(self) -> dict[str, float]:
        """The report as run metrics: prediction PSI, drifted features, each one's PSI and KS."""
        metrics = {
            "drift.prediction_psi": self.prediction_psi,
            "drift.drifted_features": float(len(self.drifted_features)),
        }
        for item in self.features:
            metrics[f"drift.psi.{item.feature}"] = item.psi
            metrics[f"drift.ks.{item.feature}"] = item.ks_statistic
        return metrics

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "drifted": self.drifted,
            "drifted_features": self.drifted_features,
            "thresholds": self.thresholds,
            "features": {
                item.feature: {
                    "psi": item.psi,
                    "ks_statistic": item.ks_statistic,
                    "ks_pvalue": item.ks_pvalue,
                    "mean": item.mean,
                    "reference_mean": item.reference_mean,
                    "drifted": item.drifted,
                }
                for item in self.features
            },
            "predictions": {
                "psi": self.prediction_psi,
                "drifted": self.prediction_drifted,
                "shares": self.predicted_shares,
                "reference_label_shares": self.reference_label_shares,
            },
            "summary": self.gate_line(),
        }


def compare(
    batch: BatchCounts, psi_threshold: float, ks_threshold: float, prediction_psi_threshold: float
) -> DriftReport:
    """The batch against its reference: per feature PSI and KS, and prediction drift."""
    import numpy as np
    from scipy.stats import kstwo

    rows = batch.rows
    features: list[FeatureDrift] = []
    for column, profile in batch.reference["features"].items():
        reference_shares = np.asarray(profile["shares"], dtype=float)
        counts = np.asarray(batch.counts.get(column, np.zeros_like(reference_shares)))
        shares = counts / rows if rows else np.zeros_like(reference_shares)
        feature_psi = psi(_deciles(shares), _deciles(reference_shares))
        # Cumulative shares at each percentile edge (the last bin is past every edge).
        gap = np.abs(np.cumsum(shares)[:-1] - np.cumsum(reference_shares)[:-1])
        statistic = float(gap.max())
        pvalue = float(kstwo.sf(statistic, rows)) if rows else 1.0
        features.append(
            FeatureDrift(
                feature=column,
                psi=feature_psi,
                ks_statistic=statistic,
                ks_pvalue=pvalue,
                mean=batch.mean(column),
                reference_mean=float(profile["mean"]),
                drifted=feature_psi > psi_threshold or statistic > ks_threshold,
            )
        )
    labels = sorted(set(batch.reference["labels"]) | set(batch.predicted))
    predicted = {label: batch.predicted.get(label, 0) / max(rows, 1) for label in labels}
    reference = {label: float(batch.reference["labels"].get(label, 0.0)) for label in labels}
    prediction_psi = psi(list(predicted.values()), list(reference.values()))
    return DriftReport(
        rows=rows,
        features=features,
        prediction_psi=prediction_psi,
        predicted_shares=predicted,
        reference_label_shares=reference,
        prediction_drifted=prediction_psi > prediction_psi_threshold,
        thresholds={
            "psi": psi_threshold,
            "ks": ks_threshold,
            "prediction_psi": prediction_psi_threshold,
        },
    )


def gate(batch: BatchCounts, monitor: MonitorParams) -> DriftReport:
    """The batch against its reference, at params.yaml's `monitor` thresholds."""
    return compare(
        batch,
        psi_threshold=monitor.psi_threshold,
        ks_threshold=monitor.ks_threshold,
        prediction_psi_threshold=monitor.prediction_psi_threshold,
    )


def gate_tags(drift: DriftReport | None) -> dict[str, str]:
    """The drift gate's verdict as run tags; None: the model had no reference to compare with."""
    if drift is None:
        return {"drift_gate": "not checked (the model has no drift reference)"}
    verdict = "failed" if drift.drifted else "passed"
    return {"drift_gate": verdict, "drift_summary": drift.gate_line()[:5000]}
