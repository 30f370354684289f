"""Drift: the reference profile, PSI and KS against it, counted chunk by chunk."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mlpipeline.domain.drift import BatchCounts, compare, gate, gate_tags, psi, reference_profile
from mlpipeline.domain.drift_report import drift_figure, render_html, render_png
from mlpipeline.domain.params import MonitorParams


@pytest.fixture(scope="module")
def reference() -> dict:
    rng = np.random.default_rng(0)
    features = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.uniform(0, 10, 5000)})
    labels = pd.Series(rng.choice(["x", "y"], 5000, p=[0.7, 0.3]))
    return reference_profile(features, labels)


def batch(reference: dict, features: pd.DataFrame, labels: list[str], chunk: int = 700):
    counts = BatchCounts(reference)
    for start in range(0, len(features), chunk):
        part = features.iloc[start : start + chunk]
        counts.add(part, pd.Series(labels[start : start + chunk]))
    return compare(counts, psi_threshold=0.2, ks_threshold=0.2, prediction_psi_threshold=0.2)


def test_the_profile_is_small_json(reference: dict) -> None:
    assert len(json.dumps(reference)) < 20_000
    assert len(reference["features"]["a"]["percentiles"]) == 101
    assert sum(reference["features"]["a"]["shares"]) == pytest.approx(1.0)
    assert reference["labels"]["x"] == pytest.approx(0.7, abs=0.02)


@pytest.mark.parametrize(
    ("batch_shares", "reference_shares", "expected"),
    [
        ([0.5, 0.5], [0.5, 0.5], 0.0),
        ([0.6, 0.4], [0.5, 0.5], 0.1 * math.log(1.2) - 0.1 * math.log(0.8)),
        ([1.0, 0.0], [0.5, 0.5], 0.5 * math.log(2) - (0.5 - 1e-4) * math.log(1e-4 / 0.5)),
    ],
)
def test_psi(batch_shares: list[float], reference_shares: list[float], expected: float) -> None:
    assert psi(batch_shares, reference_shares) == pytest.approx(expected)


def test_a_batch_from_the_same_distribution_does_not_drift(reference: dict) -> None:
    rng = np.random.default_rng(1)
    features = pd.DataFrame({"a": rng.normal(0, 1, 3000), "b": rng.uniform(0, 10, 3000)})
    labels = list(rng.choice(["x", "y"], 3000, p=[0.7, 0.3]))
    report = batch(reference, features, labels)
    assert not report.drifted, report.gate_line()
    assert report.rows == 3000
    assert all(item.psi < 0.05 and item.ks_statistic < 0.05 for item in report.features)
    assert report.gate_line().startswith("no drift over 3000 rows")


def test_a_shifted_feature_and_skewed_predictions_drift(reference: dict) -> None:
    rng = np.random.default_rng(2)
    features = pd.DataFrame({"a": rng.normal(1.0, 1, 3000), "b": rng.uniform(0, 10, 3000)})
    report = batch(reference, features, ["y"] * 3000)
    assert report.drifted_features == ["a"]
    drift_a = report.features[0]
    assert drift_a.ks_statistic == pytest.approx(0.38, abs=0.05)  # Φ(0.5) - Φ(-0.5)
    assert drift_a.ks_pvalue < 1e-6
    assert drift_a.mean == pytest.approx(1.0, abs=0.1)
    assert report.prediction_drifted
    line = report.gate_line()
    assert "a (PSI " in line and "predictions (PSI " in line and "b (PSI" not in line


def test_chunks_count_as_one_batch(reference: dict) -> None:
    rng = np.random.default_rng(3)
    features = pd.DataFrame({"a": rng.normal(0.3, 1, 2000), "b": rng.uniform(1, 10, 2000)})
    labels = list(rng.choice(["x", "y"], 2000))
    whole = batch(reference, features, labels, chunk=2000).as_dict()
    chunked = batch(reference, features, labels, chunk=333).as_dict()
    assert json.dumps(whole, sort_keys=True) == json.dumps(chunked, sort_keys=True)


def test_the_report_renders(reference: dict) -> None:
    features = pd.DataFrame({"a": np.linspace(5, 6, 100), "b": np.linspace(0, 10, 100)})
    report = batch(reference, features, ["x"] * 100)
    assert render_png(report).startswith(b"\x89PNG")
    page = render_html(report, "drift.png", "Drift of <batch>")
    assert "Drift of &lt;batch&gt;" in page and 'src="drift.png"' in page
    assert "<tr class=drift><td>a</td>" in page


def test_a_steady_features_psi_bar_stays_visible_beside_a_drifted_one(reference: dict) -> None:
    rng = np.random.default_rng(1)
    # `a` shifted far (PSI in the units), `b` as in the reference (PSI in the thousandths).
    features = pd.DataFrame({"a": rng.normal(4, 1, 2000), "b": rng.uniform(0, 10, 2000)})
    report = batch(reference, features, ["x"] * 2000)
    by_name = {item.feature: item.psi for item in report.features}
    assert by_name["a"] > 1000 * by_name["b"] > 0
    psi_axes = drift_figure(report).axes[0]
    assert psi_axes.get_xscale() == "log"
    widths = [bar.get_window_extent().width for bar in psi_axes.patches]
    assert min(widths) > 0.05 * max(widths), widths  # a linear axis: under 0.1 %


def test_counts_merged_from_parts_give_the_report_of_the_whole_to_the_bit(
    reference: dict,
) -> None:
    """Spark's executors count parts apart; the driver's merge must not change a bit."""
    rng = np.random.default_rng(3)
    features = pd.DataFrame({"a": rng.normal(0.3, 1.7, 9001), "b": rng.uniform(0, 10, 9001)})
    labels = pd.Series(rng.choice(["x", "y"], 9001))
    whole = BatchCounts(reference)
    for start in range(0, 9001, 1000):
        whole.add(features.iloc[start : start + 1000], labels.iloc[start : start + 1000])
    merged = BatchCounts(reference)
    for start, size in ((6000, 3001), (0, 250), (250, 5750)):  # other cuts, another order
        part = BatchCounts(reference)
        part.add(features.iloc[start : start + size], labels.iloc[start : start + size])
        merged.merge(part)
    report = {"psi_threshold": 0.2, "ks_threshold": 0.2, "prediction_psi_threshold": 0.2}
    assert compare(merged, **report).as_dict() == compare(whole, **report).as_dict()
    assert merged.mean("a") == math.fsum(features["a"]) / 9001  # correctly rounded


@pytest.mark.parametrize(
    "values",
    [[], [0.0, -0.0], [5e-324, -5e-324, 1e308, 1e308, -1e308], [0.1] * 10, [1e-300, 1e300, -1e300]],
)
def test_exact_sum_is_the_exact_sum(values: list[float]) -> None:
    from fractions import Fraction

    from mlpipeline.domain.drift import SUM_SCALE, exact_sum

    total = exact_sum(np.asarray(values, dtype=float))
    assert Fraction(total, 2**SUM_SCALE) == sum((Fraction(v) for v in values), Fraction(0))


def test_the_gate_reads_its_thresholds_and_reports_as_metrics_and_tags(reference: dict) -> None:
    rng = np.random.default_rng(2)
    features = pd.DataFrame({"a": rng.normal(1.0, 1, 3000), "b": rng.uniform(0, 10, 3000)})
    counts = BatchCounts(reference)
    counts.add(features, pd.Series(["y"] * 3000))
    strict = gate(counts, MonitorParams())
    lenient = gate(
        counts, MonitorParams(psi_threshold=50, ks_threshold=1, prediction_psi_threshold=50)
    )
    assert strict.drifted and not lenient.drifted
    metrics = strict.metrics()
    assert metrics["drift.drifted_features"] == 1.0
    assert metrics["drift.psi.a"] == strict.features[0].psi
    assert metrics["drift.ks.b"] == strict.features[1].ks_statistic
    assert metrics["drift.prediction_psi"] == strict.prediction_psi
    assert gate_tags(strict)["drift_gate"] == "failed"
    assert gate_tags(lenient) == {"drift_gate": "passed", "drift_summary": lenient.gate_line()}
    assert gate_tags(None)["drift_gate"].startswith("not checked")
