"""A drift report a person reads: a PNG summary and an HTML page around it."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from mlpipeline.domain.drift import DriftReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# A log axis has no zero: a PSI below this is drawn at it. PSI spans orders of magnitude
# (0.001 for a steady feature, 5 for a drifted one), so a linear axis hides all but the largest.
PSI_AXIS_FLOOR = 1e-4


def drift_figure(report: DriftReport) -> Figure:
    """Per feature PSI (log axis) and KS as bars against their thresholds, drifted ones in red."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    names = [item.feature for item in report.features]
    colours = ["#c0392b" if item.drifted else "#2e86c1" for item in report.features]
    height = max(2.5, 0.35 * len(names) + 1.5)
    figure = Figure(figsize=(9, height))
    psi_axes, ks_axes = figure.subplots(1, 2, sharey=True)
    psi = [max(item.psi, PSI_AXIS_FLOOR) for item in report.features]
    psi_axes.barh(
        names, [value - PSI_AXIS_FLOOR for value in psi], left=PSI_AXIS_FLOOR, color=colours
    )
    psi_axes.set_xscale("log")
    psi_axes.set_xlim(PSI_AXIS_FLOOR, 2 * max([*psi, report.thresholds["psi"]]))
    psi_axes.set_title("PSI (log scale)")
    ks_axes.barh(names, [item.ks_statistic for item in report.features], color=colours)
    ks_axes.set_title("Kolmogorov-Smirnov statistic")
    for axes, threshold in (
        (psi_axes, report.thresholds["psi"]),
        (ks_axes, report.thresholds["ks"]),
    ):
        axes.axvline(threshold, color="black", linestyle="--", linewidth=1)
        axes.invert_yaxis()
    figure.suptitle(
        f"{report.rows} rows; prediction PSI {report.prediction_psi:.3f}"
        + (" (drifted)" if report.prediction_drifted else "")
    )
    figure.tight_layout()
    return figure


def render_png(report: DriftReport) -> bytes:
    """The drift figure as PNG bytes."""
    import io

    figure = drift_figure(report)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def render_html(report: DriftReport, png_name: str, title: str) -> str:
    """A self-contained page: the verdict, the PNG, and the per-feature and class tables."""
    esc = html.escape
    rows = "\n".join(
        f"<tr{' class=drift' if item.drifted else ''}><td>{esc(item.feature)}</td>"
        f"<td>{item.psi:.4f}</td><td>{item.ks_statistic:.4f}</td><td>{item.ks_pvalue:.3g}</td>"
        f"<td>{item.reference_mean:.4g}</td><td>{item.mean:.4g}</td>"
        f"<td>{'yes' if item.drifted else 'no'}</td></tr>"
        for item in report.features
    )
    classes = "\n".join(
        f"<tr><td>{esc(label)}</td><td>{report.reference_label_shares[label]:.3f}</td>"
        f"<td>{share:.3f}</td></tr>"
        for label, share in report.predicted_shares.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.drift td {{ background: #fde2e0; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p><strong>{esc(report.gate_line())}</strong></p>
<img src="{esc(png_name)}" alt="PSI and KS per feature">
<h2>Features</h2>
<table><tr><th>feature</th><th>PSI</th><th>KS statistic</th><th>KS p-value</th>
<th>training mean</th><th>batch mean</th><th>drifted</th></tr>
{rows}
</table>
<h2>Predictions</h2>
<p>PSI {report.prediction_psi:.4f} (threshold {report.thresholds["prediction_psi"]:g})</p>
<table><tr><th>class</th><th>training share</th><th>predicted share</th></tr>
{classes}
</table>
</body></html>
"""
