"""A drift report a person reads: a PNG summary and an HTML page around it."""

from __future__ import annotations

import html

from mlpipeline.domain.drift import DriftReport


def render_png(report: DriftReport) -> bytes:
    """Per feature PSI and KS as bars against their thresholds, drifted ones in red."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    names = [item.feature for item in report.features]
    colours = ["#c0392b" if item.drifted else "#2e86c1" for item in report.features]
    height = max(2.5, 0.35 * len(names) + 1.5)
    figure = Figure(figsize=(9, height))
    panels = figure.subplots(1, 2, sharey=True)
    for axes, values, threshold, title in (
        (panels[0], [item.psi for item in report.features], report.thresholds["psi"], "PSI"),
        (
            panels[1],
            [item.ks_statistic for item in report.features],
            report.thresholds["ks"],
            "Kolmogorov-Smirnov statistic",
        ),
    ):
        axes.barh(names, values, color=colours)
        axes.axvline(threshold, color="black", linestyle="--", linewidth=1)
        axes.set_title(title)
        axes.invert_yaxis()
    figure.suptitle(
        f"{report.rows} rows; prediction PSI {report.prediction_psi:.3f}"
        + (" (drifted)" if report.prediction_drifted else "")
    )
    figure.tight_layout()
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
