"""Write and log: a scoring's drift report and summary.json in its folder, and its run."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipeline.batch.inputs import SUMMARY_FILE, Prepared
from mlpipeline.domain.chunk_scoring import Tally, scoring_metrics
from mlpipeline.domain.drift import BatchCounts, DriftReport, gate, gate_tags
from mlpipeline.domain.drift_report import render_html, render_png
from mlpipeline.domain.params import MonitorParams
from mlpipeline.files import hashes
from mlpipeline.tracking import datasets, runs, scoring_runs

DRIFT_FILES = ("drift.json", "drift.html", "drift.png")


@dataclass
class Scored:
    """What an engine hands back: the tally, the drift counts, and what it records."""

    tally: Tally
    counts: BatchCounts | None
    sample: Any  # the input's first rows, for MLflow's dataset schema
    params: dict[str, object]
    metrics: dict[str, float]


@dataclass(frozen=True)
class Extra:
    """What a champion's scoring beside its challenger adds to its run and summary."""

    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)


def finish(
    prepared: Prepared,
    scored: Scored,
    folder: Path,
    started: float,
    monitor: MonitorParams,
    extra: Extra | None = None,
) -> tuple[dict[str, object], DriftReport | None]:
    """Every engine's end: metrics, the drift report, summary.json and the scoring run."""
    source, model, tally = prepared.source, prepared.model, scored.tally
    extra = extra or Extra()
    tally.check_usable(str(source))
    metrics = {
        **scoring_metrics(tally, time.perf_counter() - started),
        **scored.metrics,
        **extra.metrics,
    }
    drift = None
    artifacts = {}
    if scored.counts is not None:
        comparing = time.perf_counter()
        drift = gate(scored.counts, monitor)
        metrics["drift_seconds"] = metrics.get("drift_seconds", 0.0) + (
            time.perf_counter() - comparing
        )
        metrics.update(drift.metrics())
        artifacts = write_drift(drift, folder, f"Drift of {source.name} against {model.describe()}")
    with runs.mlflow_run(run_name=f"score {source.name}") as run:
        summary: dict[str, object] = {
            "input": str(source),
            "model_uri": model.requested,
            "model_version": model.version,
            "model_run_id": model.run_id,
            "scoring_run_id": run.info.run_id,
            "class_counts": dict(sorted(tally.classes.items())),
            "metrics": metrics,
            "drift": None if drift is None else drift.as_dict()["summary"],
            **extra.summary,
        }
        summary_path = folder / SUMMARY_FILE
        summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        # The digest DVC would record for the file (or folder): one more read, at disk speed.
        datasets.log_file(source, "scoring", hashes.dvc_md5(source), scored.sample)
        scoring_runs.log_scoring(
            model,
            params={"input": source, "id_column": prepared.id_column or "-", **scored.params},
            metrics=metrics,
            artifacts={str(summary_path): "scoring", **artifacts, **extra.artifacts},
            tags=gate_tags(drift),
        )
    return summary, drift


def write_drift(drift: DriftReport, folder: Path, title: str) -> dict[str, str]:
    """drift.json, drift.html and drift.png in `folder`; file -> its folder in the run."""
    json_file, html_file, png_file = (folder / name for name in DRIFT_FILES)
    json_file.write_text(json.dumps(drift.as_dict(), indent=2, sort_keys=True) + "\n")
    png_file.write_bytes(render_png(drift))
    html_file.write_text(render_html(drift, png_file.name, title))
    return {str(path): "drift" for path in (json_file, html_file, png_file)}
