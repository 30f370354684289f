"""What a sweep costs: N trials as a plain `dvc exp run` loop vs the sweep on 1 and 2 Ray workers.

    python -m benchmarks.sweep [--trials 8] [--runs 1] [--output benchmarks/results-sweep.json]

`make bench` measures it too (benchmarks/bench.py, figure `sweep`). One copy of the repository
on the Iris defaults (benchmarks/bench.py's snapshot), the data made once with `dvc repro` and
committed, then, round by round in a rotating order: the sweep with `--parallel 1` and with
`--parallel 2` (local Ray sized to it, each round its own study) and N `dvc exp run -S ...
evaluate` in the workspace (what a user's loop does; the workspace is reset to the commit
after it, as a sweep runs from a clean commit). Reported, median over the rounds: wall
seconds of each; Ray's own cost per trial (the sweep's wall time less the seconds its trials'
tasks took, over N, with 1 worker: the sweep command's start, Ray's start, scheduling, Optuna,
MLflow's parent run); the seconds of each step of a trial's task (the working copy's clone,
checkout and data, made once per worker; its reset, `dvc exp run` and push, every trial);
the speed-up of 2 workers over the loop.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from benchmarks.bench import copy_repository, snapshot_working_tree, summary, timed, tool_env

SPACE = {"train.max_depth": {"int": [2, 8]}, "train.random_state": {"int": [0, 10_000]}}
# The sweep's line per finished trial: "... trial 3 (s-3): f1_score = 0.9 in 21.0 s on host
# (clone 0.1 s, checkout 0.1 s, data 3.0 s, exp run 15.0 s, push 2.0 s)".
FINISHED = re.compile(r"trial \d+ \([^)]*\): \S+ = [0-9.]+ in ([0-9.]+) s on \S+ \(([^)]*)\)")
RAY_READY = re.compile(r"Ray ready in ([0-9.]+) s")
WORKERS = (1, 2)
# Each round's order of the three ways, so none is always first on a busy machine.
ORDERS = (("loop", 1, 2), (1, 2, "loop"), (2, "loop", 1))


def add_sweep_section(root: Path, trials: int) -> None:
    params = root / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["train"]["n_estimators"] = 50
    raw["sweep"] = {"space": SPACE, "trials": trials, "parallel": 1, "study_name": "bench"}
    params.write_text(yaml.safe_dump(raw, sort_keys=False))


def sweep_once(
    root: Path, workdir: Path, trials: int, workers: int, label: str, env: Mapping[str, str]
) -> dict[str, Any]:
    """One sweep of `trials` on `workers` local Ray workers, its own study (and exp names)."""
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["sweep"]["study_name"] = label
    params = workdir / f"params-{label}.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    storage = f"sqlite:///{workdir / f'study-{label}.db'}"
    command = ["python", "-m", "mlpipeline", "model", "sweep", "--trials", str(trials)]
    command += ["--parallel", str(workers), "--storage", storage, "--params", str(params)]
    done = timed(command, root, env)
    finished = finished_trials(done.stderr)
    if len(finished) != trials:
        raise RuntimeError(f"{len(finished)} of {trials} trials finished:\n{done.stderr[-3000:]}")
    steps: dict[str, float] = {}
    for _, seconds_by_step in finished:
        for step, seconds in seconds_by_step.items():
            steps[step] = steps.get(step, 0.0) + seconds
    ready = RAY_READY.search(done.stderr)
    return {
        "seconds": done.seconds,
        "task_seconds": sum(seconds for seconds, _ in finished),
        "ray_start_s": float(ready.group(1)) if ready else None,
        "steps_per_trial": {step: total / trials for step, total in steps.items()},
    }


def finished_trials(log: str) -> list[tuple[float, dict[str, float]]]:
    """Each finished trial in the sweep's log: its task's seconds and each step's."""
    found = []
    for seconds, listed in FINISHED.findall(log):
        steps: dict[str, float] = {}
        for part in listed.split(", "):
            step, value = part.rsplit(" ", 2)[:2]
            steps[step] = float(value)
        found.append((float(seconds), steps))
    return found


def loop_once(root: Path, trials: int, label: str, env: Mapping[str, str]) -> float:
    """N `dvc exp run` in the workspace, as a user's loop; the workspace reset after it."""
    started = time.perf_counter()
    for number in range(trials):
        values = [f"train.max_depth={2 + number % 7}", f"train.random_state={number}"]
        overrides = [part for value in values for part in ("-S", value)]
        command = ["dvc", "exp", "run", "-n", f"{label}-{number}", *overrides, "evaluate"]
        timed(command, root, env)
    seconds = time.perf_counter() - started
    timed(["git", "reset", "--quiet", "--hard"], root, env)
    return seconds


def measure(trials: int, workdir: Path, runs: int = 1) -> dict[str, Any]:
    """The three ways, `runs` rounds interleaved; medians (with min and max) of each figure."""
    snapshot = snapshot_working_tree(workdir / "snapshot")
    root = copy_repository(snapshot, workdir / "repo", lambda r: add_sweep_section(r, trials))
    env = tool_env()
    timed(["dvc", "repro"], root, env)  # the data and a first run, as a user has them
    timed(["git", "commit", "-qam", "first run"], root, env)  # a sweep runs from a commit
    rounds: list[dict[str, Any]] = []
    for number in range(runs):
        measured: dict[str, Any] = {}
        for way in ORDERS[number % len(ORDERS)]:
            if way == "loop":
                measured["loop"] = loop_once(root, trials, f"loop{number}", env)
            else:
                label = f"r{number}w{way}"
                measured[way] = sweep_once(root, workdir, trials, int(way), label, env)
        rounds.append(measured)
    return summarize(trials, rounds)


def summarize(trials: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    one = [r[1] for r in rounds]
    figures: dict[str, Any] = {
        "trials": trials,
        "loop_s": summary([r["loop"] for r in rounds]),
        **{f"sweep_{w}_s": summary([r[w]["seconds"] for r in rounds]) for w in WORKERS},
        "sweep_1_task_s": summary([r["task_seconds"] / trials for r in one]),
        "ray_cost_per_trial_s": summary([(r["seconds"] - r["task_seconds"]) / trials for r in one]),
        "speedup_2_workers": summary([r["loop"] / r[2]["seconds"] for r in rounds]),
        "loop_per_trial_s": summary([r["loop"] / trials for r in rounds]),
    }
    starts = [r[w]["ray_start_s"] for r in rounds for w in WORKERS if r[w]["ray_start_s"]]
    if starts:
        figures["ray_start_s"] = summary(starts)
    steps = sorted({step for r in one for step in r["steps_per_trial"]})
    figures["steps_per_trial_1_worker"] = {
        step: summary([r["steps_per_trial"].get(step, 0.0) for r in one]) for step in steps
    }
    return figures


def render(sweep: Mapping[str, Any]) -> list[str]:
    """results.md's section: the three ways' wall times, Ray's cost, a trial's steps."""

    def cell(stat: Mapping[str, Any], unit: str = " s") -> str:
        return f"{stat['median']:.1f}{unit} ({stat['min']:.1f}–{stat['max']:.1f})"

    n = sweep["trials"]
    lines = [
        "",
        "## Sweep",
        "",
        f"{n} trials of a tiny forest (`python -m benchmarks.sweep`): a plain `dvc exp run` loop",
        "in the workspace against `mlpipeline model sweep` on 1 and 2 local Ray workers, rounds",
        "interleaved. Ray's own cost per trial: the 1-worker sweep's wall time less its trials'",
        "task seconds, over N (the sweep command's start, Ray's start, scheduling, Optuna, the",
        "parent run).",
        "",
        "| | wall | per trial |",
        "|---|---|---|",
        f"| `dvc exp run` loop | {cell(sweep['loop_s'])} | {sweep['loop_s']['median'] / n:.1f} s |",
    ]
    for workers in WORKERS:
        wall = sweep[f"sweep_{workers}_s"]
        lines.append(
            f"| sweep, {workers} worker{'s' if workers > 1 else ''} | {cell(wall)} "
            f"| {wall['median'] / n:.1f} s |"
        )
    steps = ", ".join(
        f"{step} {stat['median']:.1f} s" for step, stat in sweep["steps_per_trial_1_worker"].items()
    )
    start = sweep.get("ray_start_s")
    lines += [
        "",
        f"- Ray's own cost per trial: {cell(sweep['ray_cost_per_trial_s'])}"
        + (f"; Ray's start alone {cell(start)}" if start else ""),
        f"- 2 workers against the loop: {cell(sweep['speedup_2_workers'], '×')}",
        f"- A trial's task, 1 worker, per trial: {cell(sweep['sweep_1_task_s'])}: {steps}",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results-sweep.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        results = measure(args.trials, Path(folder), args.runs)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(render(results)))


if __name__ == "__main__":
    main()
