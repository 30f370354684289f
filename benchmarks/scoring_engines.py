"""`make bench`'s scoring engines figure: the local engine, Spark on `local[2]` and on a
standalone cluster of two one-core workers on 127.0.0.1, interleaved on the same CSV.

Rows per second count what each engine's summary counts: for Spark, from its job's start to
the scoring run's end, its start-up (the session and the executors' first model load)
reported apart, and per core against the local engine's one. The driver's peak RSS is the
one the scoring run records (its Python and its JVM); the command's is that of its largest
process. The cluster is tests/support/spark.py's, as the tests start it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ENGINES = ("local", "local[2]", "standalone")
# The cores each engine scores on: one process; two task threads; two one-core workers.
CORES = {"local": 1, "local[2]": 2, "standalone": 2}
# The targets: after start-up, Spark's rows/s per core at least this share of the
# local engine's; the driver (its Python and its JVM together) within this many MiB.
PER_CORE_TARGET = 0.8
DRIVER_RSS_TARGET_MIB = 1024.0


def sizes(environ: Mapping[str, str]) -> list[int]:
    """1M rows; 10M too with BENCH_ENGINES_10M=1 (about 15 minutes more per run here)."""
    return [1_000_000, *([10_000_000] if environ.get("BENCH_ENGINES_10M") == "1" else [])]


def driver_rss_mib(engine: str, metrics: Mapping[str, float], command_peak_mib: float) -> float:
    """The driver's peak RSS: the local engine's one process; for Spark the driver's Python
    plus its JVM (each one's own peak: an upper bound of their peak together). In local
    mode the JVM runs the executors' tasks too; their Python workers are not counted."""
    if engine == "local":
        return command_peak_mib
    return metrics["spark_driver_python_peak_rss_mib"] + metrics["spark_driver_jvm_peak_rss_mib"]


def measure(
    project: Path,
    env: Mapping[str, str],
    batches: Mapping[int, Path],
    runs: int,
    timed: Callable[..., Any],
    cluster: str,
) -> list[dict[str, Any]]:
    """Per size, per engine: rows/s, Spark's start-up, wall seconds and peak RSS; and whether
    every engine's predictions and drift report equal the local engine's."""
    import pandas as pd

    entries = []
    for rows, batch in batches.items():
        figures: dict[str, dict[str, list[float]]] = {
            engine: {
                "rows_per_s": [],
                "startup_s": [],
                "seconds": [],
                "peak_rss_mib": [],
                "driver_rss_mib": [],
                "model_loads": [],
            }
            for engine in ENGINES
        }
        same = True
        for _ in range(runs):
            outputs = {}
            for engine in ENGINES:  # interleaved: the machine's load weighs on all alike
                out = project.parent / f"scored-{engine.replace('[', '').replace(']', '')}"
                command = ["python", "-m", "mlpipeline", "model", "score", batch, "--output", out]
                if engine != "local":
                    master = cluster if engine == "standalone" else engine
                    command += ["--engine", "spark", "--spark-master", master]
                result = timed(command, cwd=project, env=env)
                metrics = json.loads((out / "summary.json").read_text())["metrics"]
                figures[engine]["rows_per_s"].append(metrics["rows_per_second"])
                figures[engine]["startup_s"].append(metrics.get("spark_startup_seconds", 0.0))
                figures[engine]["model_loads"].append(metrics.get("spark_model_loads", 0.0))
                figures[engine]["seconds"].append(result.seconds)
                figures[engine]["peak_rss_mib"].append(result.peak_rss_mib)
                figures[engine]["driver_rss_mib"].append(
                    driver_rss_mib(engine, metrics, result.peak_rss_mib)
                )
                outputs[engine] = out
            local = outputs["local"]
            want = pd.read_csv(local / "predictions.csv")
            for engine in ENGINES[1:]:
                got = pd.read_parquet(outputs[engine] / "predictions.parquet").sort_values("row")
                probabilities = [c for c in want.columns if c.startswith("proba_")]
                same &= bool(
                    (got[probabilities].to_numpy() == want[probabilities].to_numpy()).all()
                    and (outputs[engine] / "drift.json").read_bytes()
                    == (local / "drift.json").read_bytes()
                )
        entries.append({"rows": rows, "engines": figures, "outputs_equal": same})
    return entries


def render(
    entries: Sequence[Mapping[str, Any]], median: Callable[[list[float]], float]
) -> list[str]:
    """The report's section."""
    lines = [
        "",
        "## Scoring engines",
        "",
        "`mlpipeline model score` on the same CSV with the local engine, `--engine spark` on",
        "`local[2]` and on a standalone cluster of two one-core workers (127.0.0.1), run by",
        "run in turn. Rows/s as each summary counts them (Spark: after its start-up, which is",
        "its own column), per core, and per core as a share of the local engine's (target",
        f"≥ {PER_CORE_TARGET}×); the driver's peak RSS (Spark: its Python plus its JVM; target",
        f"≤ {DRIVER_RSS_TARGET_MIB:.0f} MiB) and that of the command's largest process; the",
        "model's loads by Spark's scoring tasks after start-up (most in a run; 0: every task",
        "found the model its executor's start-up loaded).",
        "",
        "| rows | engine | rows/s | rows/s per core | × local per core | start-up s | wall s "
        "| driver peak RSS MiB | largest process MiB | model loads in the job | outputs equal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        equal = "yes" if entry["outputs_equal"] else "NO"
        engines = entry["engines"]
        local_per_core = median(engines["local"]["rows_per_s"]) / CORES["local"]
        for engine, figures in engines.items():
            per_core = median(figures["rows_per_s"]) / CORES[engine]
            ratio = per_core / local_per_core if local_per_core else 0.0
            driver = max(figures.get("driver_rss_mib") or [0.0])
            loads = max(figures.get("model_loads") or [0.0])  # absent from earlier results
            lines.append(
                f"| {entry['rows']:,} | {engine} | {median(figures['rows_per_s']):,.0f} "
                f"| {per_core:,.0f} | {ratio:.2f} "
                f"| {median(figures['startup_s']):.1f} | {median(figures['seconds']):.1f} "
                f"| {driver:.0f} | {max(figures['peak_rss_mib']):.0f} | {loads:.0f} | {equal} |"
            )
    return lines
