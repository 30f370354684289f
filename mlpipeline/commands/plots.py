"""`mlpipeline report plots [REV ...]`: the `dvc plots` charts as static files, offline.

`dvc plots show` and `dvc plots diff` write an HTML page that loads Vega from a CDN, so
without internet every chart is blank. This command takes the very same Vega-Lite specs
(`dvc plots show/diff --json`: dvc.yaml's `plots:` filled with the templates of .dvc/plots/)
and renders them with vl-convert, a Vega build that needs no browser and no network, to SVG
and PNG, beside the PNGs of plots/images/ and an index.html that shows them all.

    mlpipeline report plots                # the workspace → dvc_plots_static/
    mlpipeline report plots HEAD           # like `dvc plots diff HEAD`
    mlpipeline report plots main HEAD -o out/
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mlpipeline.commands.console import command, out_option
from mlpipeline.domain.errors import PipelineError
from mlpipeline.files.outputs import staged_outputs
from mlpipeline.files.paths import ROOT

log = logging.getLogger("mlpipeline.plots")

DEFAULT_OUT = ROOT / "dvc_plots_static"
PNG_SCALE = 2  # pixels per Vega unit: sharp on high-density screens, ~40 kB a chart


@dataclass(frozen=True)
class Chart:
    """One chart as files in the output folder (names relative to it)."""

    title: str
    revisions: list[str]
    png: str
    svg: str | None = None  # None for the PNGs of plots/images/, which have no spec


def dvc_executable() -> str:
    """The venv's dvc, also when the venv is not on PATH (`.venv/bin/python -m ...`)."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else shutil.which("dvc") or "dvc"


def dvc_json(args: list[str], root: Path) -> Any:
    """Run `dvc ARGS --json` in `root` and parse its output; a PipelineError names the command."""
    command = [dvc_executable(), *args, "--json"]
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise PipelineError(f"`dvc {' '.join(args)}` failed in {root}: {last}")
    return json.loads(proc.stdout or "{}")


def dvc_plots(root: Path, revisions: list[str], images_dir: Path) -> dict[str, list[dict]]:
    """DVC's plots by name: `dvc plots show` (no revisions) or `dvc plots diff REV ...`.

    The Vega-Lite specs come filled with the data; DVC copies the image plots (PNG files)
    into `images_dir` and names them by their `url`.
    """
    command = ["plots", "diff", *revisions] if revisions else ["plots", "show"]
    return dvc_json([*command, "-o", str(images_dir)], root).get("data", {})


def file_stem(title: str) -> str:
    """A file name for a chart title: `plots/roc/setosa.csv` → `plots_roc_setosa_csv`."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", title).strip("_") or "chart"


def render_charts(plots: dict[str, list[dict]], out: Path) -> list[Chart]:
    """Write every chart of `plots` into `out`: Vega-Lite as SVG and PNG, images as PNG."""
    import vl_convert

    charts: list[Chart] = []
    for title, entries in plots.items():
        for index, entry in enumerate(entries):
            stem = file_stem(title) + (f"_{index}" if len(entries) > 1 else "")
            revisions = [str(rev) for rev in entry.get("revisions", [])]
            if entry.get("type") == "vega":
                spec = entry["content"]
                (out / f"{stem}.svg").write_text(vl_convert.vegalite_to_svg(spec))
                (out / f"{stem}.png").write_bytes(vl_convert.vegalite_to_png(spec, scale=PNG_SCALE))
                charts.append(Chart(title, revisions, f"{stem}.png", f"{stem}.svg"))
            elif entry.get("type") == "image":
                rev = "_".join(file_stem(rev) for rev in revisions)
                name = f"{stem}_{rev}.png" if rev else f"{stem}.png"
                shutil.copyfile(entry["url"], out / name)
                charts.append(Chart(title, revisions, name))
            else:
                log.warning("skipping %s: a %s plot, not vega or image", title, entry.get("type"))
    return charts


def index_html(charts: list[Chart], heading: str) -> str:
    """A page that shows every chart from files beside it: nothing loads from elsewhere."""
    figures = "\n".join(
        f'<figure><img src="{html.escape(chart.svg or chart.png)}" '
        f'alt="{html.escape(chart.title)}"><figcaption>{html.escape(chart.title)}'
        f"{' — ' + html.escape(', '.join(chart.revisions)) if chart.revisions else ''}"
        "</figcaption></figure>"
        for chart in charts
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title><style>"
        "body{font-family:sans-serif;margin:1em} figure{display:inline-block;margin:0.5em;"
        "vertical-align:top} img{max-width:600px} figcaption{font-size:small;color:#555}"
        f"</style></head><body><h1>{html.escape(heading)}</h1>\n{figures}\n</body></html>\n"
    )


def write_plots(root: Path, revisions: list[str], out: Path) -> list[Chart]:
    """Render the charts of `root` into the folder `out`, replacing it all-or-nothing."""
    with tempfile.TemporaryDirectory(prefix="dvc-plots-") as images:
        plots = dvc_plots(root, revisions, Path(images))
        if not plots:
            raise PipelineError(
                f"`dvc plots` found nothing to draw in {root}: run the pipeline first (make run)"
            )
        with staged_outputs() as outputs:
            folder = outputs.folder(out)
            charts = render_charts(plots, folder)
            compared = revisions if len(revisions) > 1 else [*revisions, "workspace"]
            heading = "Plots: " + " vs ".join(compared)
            (folder / "index.html").write_text(index_html(charts, heading))
    return charts


@command(
    "plots",
    help="Render the charts of `dvc plots show` (or `dvc plots diff REV ...`) as "
    "SVG and PNG files and an index.html, without a browser or network.",
)
@click.argument("revisions", nargs=-1)
@out_option(DEFAULT_OUT)
def plots(revisions: tuple[str, ...], out: Path) -> None:
    """REVISIONS: git revisions to compare, as for `dvc plots diff`."""
    folder = out.resolve()
    charts = write_plots(ROOT, list(revisions), folder)
    log.info("%d charts → %s", len(charts), folder / "index.html")
