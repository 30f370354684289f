"""`make bench`'s scoring engines figure: the local engine, Spark on `local[2]` and on a
standalone cluster of two one-core workers on 127.0.0.1, interleaved on the same CSV.

Rows per second count what each engine's summary counts: for Spark, from its job's start to
the scoring run's end, its start-up (the session and the executors' first model load)
reported apart. The peak RSS is that of the command's largest process: for Spark the driver's
JVM (in local mode, the executors run in it too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENGINES = ("local", "local[2]", "standalone")


def spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


@contextmanager
def standalone_cluster(
    folder: Path, env: Mapping[str, str], free_port: Callable[[], int], workers: int = 2
) -> Iterator[str]:
    """A master and `workers` one-core workers on 127.0.0.1; yields the master's URL."""
    port, ui_port = free_port(), free_port()
    env = {**env, "SPARK_LOCAL_IP": "127.0.0.1"}
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        with (folder / f"{name}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [str(spark_class()), *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    url = f"spark://127.0.0.1:{port}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui_port),
        )
        for number in range(workers):
            work = folder / f"worker{number}"
            work.mkdir()
            start(
                f"worker{number}",
                "org.apache.spark.deploy.worker.Worker",
                url,
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "1g",
                "--work-dir",
                str(work),
                "--webui-port",
                str(free_port()),
            )
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as a:
                    if json.load(a).get("aliveworkers") == workers:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standalone cluster did not start (logs in {folder})")
            time.sleep(0.5)
        yield url
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait()


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
            engine: {"rows_per_s": [], "startup_s": [], "seconds": [], "peak_rss_mib": []}
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
                figures[engine]["seconds"].append(result.seconds)
                figures[engine]["peak_rss_mib"].append(result.peak_rss_mib)
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
        "its own column); peak RSS of the command's largest process (Spark: the driver's JVM).",
        "",
        "| rows | engine | rows/s | start-up s | wall s | peak RSS MiB | outputs equal |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        equal = "yes" if entry["outputs_equal"] else "NO"
        for engine, figures in entry["engines"].items():
            lines.append(
                f"| {entry['rows']:,} | {engine} | {median(figures['rows_per_s']):,.0f} "
                f"| {median(figures['startup_s']):.1f} | {median(figures['seconds']):.1f} "
                f"| {max(figures['peak_rss_mib']):.0f} | {equal} |"
            )
    return lines
