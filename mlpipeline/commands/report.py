"""`mlpipeline report report --base REV`: what a change does, as one Markdown file.

The workspace (or `--rev`) against `--base`: `dvc metrics diff` and `dvc params diff` as
tables with the change, the save stage's champion decision, the `dvc plots diff` charts
rendered offline to PNG (mlpipeline report plots) and the PNGs of plots/images/, and links
to the MLflow runs when MLFLOW_TRACKING_URI names a server. Everything is written into one
folder (default report/: report.md and its images), replaced all-or-nothing; nothing in it
loads from the network. CI posts it on pull requests (mlpipeline report comment).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import click

from mlpipeline.commands import plots
from mlpipeline.commands.console import command, out_option
from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.report_markdown import Image, decision_from_log, render_report
from mlpipeline.files.outputs import staged_outputs
from mlpipeline.files.params_yaml import load_params
from mlpipeline.files.paths import PARAMS, ROOT, RUN_INFO

log = logging.getLogger("mlpipeline.report")

DEFAULT_OUT = ROOT / "report"
REPORT_NAME = "report.md"
WORKSPACE = "workspace"


def run_info(rev: str | None, root: Path = ROOT) -> dict[str, str] | None:
    """models/mlflow_run.json in the workspace (rev None) or at a git revision, if there."""
    if rev is None:
        return json.loads(RUN_INFO.read_text()) if RUN_INFO.exists() else None
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return json.loads(dvc.api.read(str(RUN_INFO.relative_to(ROOT)), repo=str(root), rev=rev))
    except (DvcException, OSError) as exc:  # not built at that revision, or not in the cache
        log.info("no MLflow run for %s: %s", rev, exc)
        return None


def run_links(revisions: dict[str, str | None], server: str | None) -> dict[str, str]:
    """Revision name → its MLflow run's page on the tracking server; empty without a server."""
    if not server or not server.startswith(("http://", "https://")):
        return {}
    links = {}
    for name, rev in revisions.items():
        info = run_info(rev)
        if info and info.get("run_id") and info.get("experiment_id"):
            links[name] = (
                f"{server.rstrip('/')}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}"
            )
    return links


def decision_from_store(alias: str, model_name: str) -> str | None:
    """What the registry says of the workspace's training run: the save gate's line for its
    version (with the reason), and which version holds the alias now, which later saves,
    promotes and rollbacks may have moved."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlpipeline.domain.errors import TrackingError
    from mlpipeline.tracking import history, runs, server, store

    info = run_info(None)
    uri = runs.tracking_uri()
    database = store.sqlite_path(uri)
    if info is None or (database is not None and not database.exists()):
        return None
    try:
        server.check_reachable(uri)  # fails in seconds; MLflow's client retries for minutes
        client = MlflowClient(tracking_uri=uri)
        tags = client.get_run(info["run_id"]).data.tags
        version = tags.get("registered_model_version")
        if version is None:
            return None
        holder = history.current_version(client, model_name, alias)
    except (TrackingError, MlflowException) as exc:
        log.info("no decision from %s: %s", uri, exc)
        return None
    verdict = "now" if tags.get(f"{alias}_promoted") == "True" else "not"
    # Runs saved before the line was recorded give the verdict without its reason.
    line = tags.get(f"{alias}_decision") or f"registered version {version}; {verdict} @{alias}"
    now = f"@{alias} is now version {holder}" if holder else f"no version holds @{alias} now"
    return f"{line} (recorded by run {info['run_id']}'s save; {now})"


def write_report(
    base: str, rev: str | None, out: Path, repro_log: Path | None, root: Path = ROOT
) -> Path:
    """Compare `rev` (None: the workspace) with `base`; write out/report.md and its images."""
    revisions = [base] if rev is None else [base, rev]
    rev_name = rev or WORKSPACE
    metrics = plots.dvc_json(["metrics", "diff", *revisions, "--all"], root)
    params = plots.dvc_json(["params", "diff", *revisions], root)
    params_file = load_params(PARAMS)
    alias = params_file.mlflow.champion_alias
    decision = None
    if repro_log is not None:
        if not repro_log.exists():
            raise PipelineError(f"--repro-log {repro_log}: no such file")
        decision = decision_from_log(repro_log.read_text(errors="replace"))
    if decision is None and rev is None:
        decision = decision_from_store(alias, params_file.mlflow.registered_model_name)
    decision = decision or "the save stage did not run (no decision in the log or the store)"

    with tempfile.TemporaryDirectory(prefix="report-plots-") as images_dir:
        found = plots.dvc_plots(root, revisions, Path(images_dir))
        with staged_outputs() as outputs:
            folder = outputs.folder(out)
            charts = plots.render_charts(found, folder)
            text = render_report(
                base=base,
                rev=rev_name,
                metrics=metrics,
                params=params,
                decision=decision,
                charts=[Image(_caption(c), c.png) for c in charts if c.svg],
                images=[Image(_caption(c), c.png) for c in charts if not c.svg],
                runs=run_links({base: base, rev_name: rev}, os.environ.get("MLFLOW_TRACKING_URI")),
            )
            (folder / REPORT_NAME).write_text(text)
    return out / REPORT_NAME


def _caption(chart: plots.Chart) -> str:
    return f"{chart.title} ({', '.join(chart.revisions)})" if chart.revisions else chart.title


@command(
    "report",
    help="Write a Markdown report comparing the workspace (or --rev) with "
    "--base: metrics and params diffs, the champion decision, the charts as offline PNGs.",
)
@click.option("--base", required=True, help="git revision to compare against")
@click.option("--rev", help="git revision to report on (default: the workspace)")
@out_option(DEFAULT_OUT)
@click.option(
    "--repro-log",
    type=click.Path(path_type=Path),
    help="a saved `dvc repro` output to take the save stage's decision line from",
)
def report(base: str, rev: str | None, out: Path, repro_log: Path | None) -> None:
    path = write_report(base, rev, out.resolve(), repro_log)
    log.info("report → %s", path)
