"""What each workflow costs, as ratios to a plain-Python floor, and how it scales (issue #5).

`make bench` (or `uv run python -m benchmarks.bench [--quick] [--runs N]`) measures, on this
machine, in throwaway git copies of the repository under a temporary folder:

1. floor: benchmarks/floor.py, the same work in one plain Python process;
1b. the anchor: benchmarks/mlflow_script.py, the whole job as one MLflow script;
2. cold `dvc repro` in a fresh copy (embedded MLflow store, nothing cached), and per stage
   (time, imports, peak RSS) from a second copy whose stages run under stage_probe.py
   (--quick: only the probed copy, which then gives the total too);
3. no-op `dvc repro` against `dvc status` on the same, built copy;
4. `dvc exp run -S train.n_estimators=...`: which stages ran and how long it took;
5. the ZenML pipeline: its store created (once per machine), then a project's cold run (fresh
   MLflow store, nothing cached) and the same run again, cached;
5b. `--only zenml-docker` (not in a full `make bench`): the same with every step in its own
   container (`make zenml-stack`'s local_docker stack, image BENCH_IMAGE, default
   dvc-mlops-pipeline:latest, already built), against moto's S3 server and an MLflow server
   on 127.0.0.1: cold and cached;
6. scale: the synthetic source at 10k, 100k and 1M rows, pipeline and floor, per stage;
7. batch scoring (`mlpipeline model score`) of 1M and 10M Iris-like rows with the
   champion: rows per second against benchmarks/score_floor.py (one process, whole file,
   `model.predict`), peak RSS, and the drift computation's seconds;
7b. scoring engines (benchmarks/scoring_engines.py): the same CSV of 1M rows (and 10M with
   BENCH_ENGINES_10M=1) with the local engine, `--engine spark` on local[2] and on a
   standalone cluster of two one-core workers, run by run in turn: rows/s and per core,
   Spark's start-up apart, the driver's peak RSS, and whether the outputs are equal.
8. the team server (`--only team`);
9. the registry after months of use (`--only registry`): `mlpipeline model list`, `list --page
   LAST`, `history`, `card` and the save stage on a built project's store, then on the same
   store grown to 10,000 versions, 100,000 runs and 1,000 alias moves (registry_seed.py);
10. the sweep (benchmarks/sweep.py): 8 trials (--quick: 2) as a plain `dvc exp run` loop
   against `mlpipeline model sweep` on 1 and 2 local Ray workers, rounds interleaved: Ray's
   own cost per trial, each step of a trial's task, the speed-up of 2 workers.

Every figure is the median of the runs with min and max. Results go to benchmarks/results.json
and benchmarks/results.md (--quick or --only: results-quick.*, git-ignored; `--only FIGURE
--merge` puts that figure into results.json/md, keeping the others, and the report says when
and under what load it was measured). Nothing here is run by the tests; timings only mean
something on a quiet machine.

This module is the command line and the order of the sections (one function each); the
figures are measured in figures.py with measuring.py's helpers, judged in targets.py and
written out by rendering.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import scoring_engines, sweep
from benchmarks.figures import Bench
from benchmarks.measuring import HERE, machine
from benchmarks.rendering import render_markdown
from benchmarks.targets import auto_notes, verdicts

log = logging.getLogger("benchmarks")

# The sweep's trials (--quick: 2).
SWEEP_TRIALS = 8
SWEEP_TRIALS_QUICK = 2
# Scoring sizes (--quick: 10k and 100k); the batch is Iris resampled with a little noise.
SCORING_ROWS = [1_000_000, 10_000_000]
SCORING_ROWS_QUICK = [10_000, 100_000]
# What `--only` may name; a full run measures all but zenml-docker.
FIGURES = (
    "floor",
    "repro",
    "noop",
    "exp",
    "zenml",
    "zenml-docker",
    "scale",
    "scoring",
    "engines",
    "team",
    "registry",
    "sweep",
)
# The registry after months of use (issue #35): versions, runs and recorded alias moves.
REGISTRY_SIZE = {"versions": 10_000, "runs": 100_000, "moves": 1_000}
REGISTRY_SIZE_QUICK = {"versions": 1_000, "runs": 10_000, "moves": 100}


@dataclass(frozen=True)
class Plan:
    """What a run measures: the figures asked for, how many runs, at which sizes."""

    only: set[str]
    runs: int
    quick: bool
    sizes: list[int]


def _failed(exc: Exception, last_line: bool = True) -> dict[str, Any]:
    """A figure whose run failed, in place of its figures (the others are kept)."""
    log.error("%s", exc)
    lines = str(exc).strip().splitlines()
    reason = (lines[-1] if last_line else lines[0])[:200]
    return {"available": False, "reason": f"the run failed: {reason}"}


def measure_iris(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("1-2. floor, MLflow script and cold dvc repro on Iris, interleaved")
    figures, project = bench.rounds("iris", with_script=True, plain=not plan.quick)
    results["floor_iris"] = figures["floor"]
    results["script_iris"] = figures["script"]
    results["repro_iris"] = figures["repro"]
    if "noop" in plan.only:
        log.info("3. no-op dvc repro vs dvc status; make run with nothing to do")
        results["noop"] = bench.noop(project)
        results["make_run_noop"] = bench.make_run_noop(project)
    if "exp" in plan.only:
        log.info("4. dvc exp run -S train.n_estimators=...")
        results["experiment"] = bench.experiment(project)


def measure_zenml(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("5. ZenML pipeline, cold and cached")
    try:
        results["zenml"] = bench.zenml()
    except RuntimeError as exc:  # a broken ZenML run must not lose the other figures
        results["zenml"] = _failed(exc)


def measure_zenml_docker(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("5b. ZenML pipeline, every step in its own container, cold and cached")
    try:
        image = os.environ.get("BENCH_IMAGE", "dvc-mlops-pipeline:latest")
        results["zenml_docker"] = bench.zenml_docker(image)
    except RuntimeError as exc:
        results["zenml_docker"] = _failed(exc)


def measure_scale(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    results["scale"] = []
    for rows in plan.sizes:
        log.info("6. scale: %s rows", f"{rows:,}")
        results["scale"].append(bench.scale(rows))


def measure_scoring(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("7. batch scoring")
    results["scoring"] = bench.scoring(SCORING_ROWS_QUICK if plan.quick else SCORING_ROWS)


def measure_engines(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("7b. scoring engines: local, Spark local[2], a standalone Spark cluster")
    engine_rows = scoring_engines.sizes(os.environ)
    results["engines"] = bench.engines(SCORING_ROWS_QUICK if plan.quick else engine_rows)


def measure_team(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("8. the team server: latency per call, stage overhead against the embedded")
    try:
        results["team"] = bench.team()
    except (RuntimeError, OSError) as exc:  # includes team_stack.StackError
        results["team"] = _failed(exc, last_line=False)


def measure_registry(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("9. the registry after months of use: list, history, card, save")
    results["registry"] = bench.registry(REGISTRY_SIZE_QUICK if plan.quick else REGISTRY_SIZE)


def measure_sweep(bench: Bench, plan: Plan, results: dict[str, Any]) -> None:
    log.info("10. the sweep: a dvc exp run loop vs 1 and 2 Ray workers, interleaved")
    trials = SWEEP_TRIALS_QUICK if plan.quick else SWEEP_TRIALS
    results["sweep"] = sweep.measure(trials, bench.fresh_dir("sweep"), plan.runs)


# Each section in the order measured, with the `--only` names that ask for it.
SECTIONS: tuple[tuple[set[str], Callable[[Bench, Plan, dict[str, Any]], None]], ...] = (
    ({"floor", "repro", "noop", "exp"}, measure_iris),
    ({"zenml"}, measure_zenml),
    ({"zenml-docker"}, measure_zenml_docker),
    ({"scale"}, measure_scale),
    ({"scoring"}, measure_scoring),
    ({"engines"}, measure_engines),
    ({"team"}, measure_team),
    ({"registry"}, measure_registry),
    ({"sweep"}, measure_sweep),
)


# The keys of a run's results that describe the run, not a figure.
RUN_KEYS = ("machine", "runs", "load_average_end", "total_seconds", "targets", "merged")


def merge_into(report: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """`report` with the figures of the partial run `partial` in place of its own, and a
    `merged` entry saying when, how many runs and under what load they were measured."""
    figures = [key for key in partial if key not in RUN_KEYS]
    merged = {key: value for key, value in report.items() if key != "targets"}
    merged.update({key: partial[key] for key in figures})
    merged["merged"] = [
        *[entry for entry in report.get("merged", []) if set(entry["figures"]) - set(figures)],
        {
            "figures": figures,
            "date": partial["machine"]["date"],
            "runs": partial["runs"],
            "load_average_start": partial["machine"]["load_average_start"],
            "load_average_end": partial["load_average_end"],
            "minutes": round(partial["total_seconds"] / 60, 1),
        },
    ]
    return merged


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 run, 1k/10k rows, the cold repro probed only: a smoke test",
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument(
        "--rows", type=int, nargs="+", help="scale sizes (default 10000 100000 1000000)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=FIGURES,
        help="measure only these figures (for profiling; the report is partial)",
    )
    parser.add_argument("--out", type=Path, help="folder for results.json/md (default benchmarks/)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite results.md from results.json"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: put the figures measured into results.json/md, keeping the others",
    )
    return parser


def measure(plan: Plan, keep: bool) -> dict[str, Any]:
    """Every section the plan asks for, in throwaway copies under a temporary folder."""
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "runs": plan.runs}
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        bench = Bench(workdir, plan.runs)
        for names, section in SECTIONS:
            if plan.only & names:
                section(bench, plan, results)
    finally:
        if keep:
            log.info("kept %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - started
    return results


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s")
    if args.render:
        out_dir = args.out or HERE
        results = json.loads((out_dir / "results.json").read_text())
        (out_dir / "results.md").write_text(render_markdown(results, auto_notes(results)))
        return

    if args.merge and (args.quick or not args.only):
        parser.error("--merge takes --only and full sizes: it updates the main report")
    plan = Plan(
        only=set(args.only or [name for name in FIGURES if name != "zenml-docker"]),
        runs=args.runs or (1 if args.quick else 3),
        quick=args.quick,
        sizes=args.rows or ([1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]),
    )
    suffix = "-quick" if args.quick or (args.only and not args.merge) else ""
    out_dir = args.out or HERE
    results = measure(plan, args.keep)
    if args.merge:
        results = merge_into(json.loads((out_dir / "results.json").read_text()), results)
    results["targets"] = verdicts(results)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"results{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"results{suffix}.md").write_text(render_markdown(results, auto_notes(results)))
    for verdict in results["targets"].values():
        value = "n/a" if verdict["value"] is None else f"{verdict['value']:.2f}"
        log.info("%-45s %-20s %8s %s", verdict["what"], verdict["target"], value, verdict["status"])
    log.info("wrote %s", out_dir / f"results{suffix}.md")


if __name__ == "__main__":
    main()
