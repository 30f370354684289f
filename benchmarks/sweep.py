"""What a sweep costs: N trials as a plain `dvc exp run` loop vs the sweep on 1 and 2 Ray workers.

    python -m benchmarks.sweep [--trials 8] [--runs 1] [--output benchmarks/results-sweep.json]

`make bench` measures it too (benchmarks/bench.py, figure `sweep`). One copy of the repository
on the Iris defaults (benchmarks/measuring.py's snapshot), the data made once with `dvc repro` and
committed, then, round by round in a rotating order: the sweep with `--parallel 1` and with
`--parallel 2` (local Ray sized to it, each round its own study) and N `dvc exp run -S ...
evaluate` in the workspace (what a user's loop does; the workspace is reset to the commit
after it, as a sweep runs from a clean commit). Reported, median over the rounds, from the
sweep's own log:
- wall seconds of each way, and the speed-up of 1 and 2 workers over the loop;
- Ray's own cost per trial, on 1 and 2 workers: its start and stop (once per sweep) and, per
  trial, the seconds from submitting the task to having its result less the task's own run
  (scheduling, the worker's start, moving the spec and the result), over N;
- the trial's work: the seconds of each step of a trial's task (the working copy's clone,
  checkout and data, once per worker; its reset, `dvc exp run` and push, every trial);
- the sweep's other fixed costs, neither Ray's nor a trial's (the command's start, MLflow's
  parent run, Optuna, the end), per trial: the 1-worker sweep's wall time less both;
- counts: the Ray worker processes the trials ran in and the working copies made.
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

from benchmarks.measuring import copy_repository, snapshot_working_tree, summary, timed, tool_env

SPACE = {"train.max_depth": {"int": [2, 8]}, "train.random_state": {"int": [0, 10_000]}}
# The sweep's line per finished trial: "... trial 3 (s-3): f1_score = 0.9 in 21.0 s on host,
# worker 4242 (clone 0.1 s, checkout 0.1 s, data 3.0 s, exp run 15.0 s, push 2.0 s); Ray 0.02 s".
FINISHED = re.compile(
    r"trial \d+ \([^)]*\): \S+ = [0-9.]+ in ([0-9.]+) s on \S+, worker (\d+) \(([^)]*)\); "
    r"Ray ([0-9.]+) s"
)
RAY_COST = re.compile(r"Ray's own cost: start ([0-9.]+) s, stop ([0-9.]+) s, ([0-9.]+) s between")
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
    return {"seconds": done.seconds, **read_sweep_log(done.stderr, trials)}


def read_sweep_log(log: str, trials: int) -> dict[str, Any]:
    """What the sweep's log says: its trials' seconds and steps, Ray's own cost, the counts."""
    finished = finished_trials(log)
    cost = RAY_COST.search(log)
    if len(finished) != trials or cost is None:
        raise RuntimeError(f"{len(finished)} of {trials} trials finished:\n{log[-3000:]}")
    steps: dict[str, float] = {}
    for trial in finished:
        for step, seconds in trial["steps"].items():
            steps[step] = steps.get(step, 0.0) + seconds
    start, stop, dispatch = (float(group) for group in cost.groups())
    return {
        "task_seconds": sum(trial["seconds"] for trial in finished),
        "ray_start_s": start,
        "ray_stop_s": stop,
        "ray_dispatch_s": dispatch,
        "ray_per_trial_s": (start + stop + dispatch) / trials,
        "steps_per_trial": {step: total / trials for step, total in steps.items()},
        "workers": len({trial["worker"] for trial in finished}),
        "copies": sum("clone" in trial["steps"] for trial in finished),
    }


def finished_trials(log: str) -> list[dict[str, Any]]:
    """Each finished trial in the sweep's log: its task's seconds, worker, steps, Ray's part."""
    found = []
    for seconds, worker, listed, ray in FINISHED.findall(log):
        steps: dict[str, float] = {}
        for part in listed.split(", "):
            step, value = part.rsplit(" ", 2)[:2]
            steps[step] = float(value)
        found.append(
            {"seconds": float(seconds), "worker": int(worker), "steps": steps, "ray": float(ray)}
        )
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
    rounds: list[dict[str | int, Any]] = []
    for number in range(runs):
        measured: dict[str | int, Any] = {}
        for way in ORDERS[number % len(ORDERS)]:
            if way == "loop":
                measured["loop"] = loop_once(root, trials, f"loop{number}", env)
            else:
                label = f"r{number}w{way}"
                measured[way] = sweep_once(root, workdir, trials, int(way), label, env)
        rounds.append(measured)
    return summarize(trials, rounds)


def summarize(trials: int, rounds: list[dict[str | int, Any]]) -> dict[str, Any]:
    one = [r[1] for r in rounds]
    figures: dict[str, Any] = {
        "trials": trials,
        "loop_s": summary([r["loop"] for r in rounds]),
        "loop_per_trial_s": summary([r["loop"] / trials for r in rounds]),
        "sweep_1_task_s": summary([r["task_seconds"] / trials for r in one]),
    }
    for w in WORKERS:
        figures[f"sweep_{w}_s"] = summary([r[w]["seconds"] for r in rounds])
        figures[f"speedup_{w}_workers"] = summary([r["loop"] / r[w]["seconds"] for r in rounds])
        figures[f"ray_cost_per_trial_{w}_s"] = summary([r[w]["ray_per_trial_s"] for r in rounds])
        figures[f"workers_{w}"] = max(r[w]["workers"] for r in rounds)
        figures[f"copies_{w}"] = max(r[w]["copies"] for r in rounds)
    # The targets' figure: Ray's own cost per trial with 1 worker (2 workers: the same start
    # and stop, shared by the same trials).
    figures["ray_cost_per_trial_s"] = figures["ray_cost_per_trial_1_s"]
    for name in ("ray_start_s", "ray_stop_s"):
        figures[name] = summary([r[w][name] for r in rounds for w in WORKERS])
    figures["ray_dispatch_per_trial_s"] = summary(
        [r[w]["ray_dispatch_s"] / trials for r in rounds for w in WORKERS]
    )
    figures["sweep_other_per_trial_s"] = summary(
        [(r["seconds"] - r["task_seconds"]) / trials - r["ray_per_trial_s"] for r in one]
    )
    steps = sorted({step for r in one for step in r["steps_per_trial"]})
    figures["steps_per_trial_1_worker"] = {
        step: summary([r["steps_per_trial"].get(step, 0.0) for r in one]) for step in steps
    }
    return figures


def render(sweep: Mapping[str, Any]) -> list[str]:
    """results.md's section: the three ways' wall times, Ray's cost apart, a trial's steps."""

    def cell(stat: Mapping[str, Any], unit: str = " s", digits: int = 1) -> str:
        low, high = f"{stat['min']:.{digits}f}", f"{stat['max']:.{digits}f}"
        return f"{stat['median']:.{digits}f}{unit} ({low}–{high})"

    n = sweep["trials"]
    lines = [
        "",
        "## Sweep",
        "",
        f"{n} trials of a tiny forest (`python -m benchmarks.sweep`): a plain `dvc exp run` loop",
        "in the workspace against `mlpipeline model sweep` on 1 and 2 local Ray workers, rounds",
        "interleaved. Ray's own cost per trial: its start and stop (once per sweep) and each",
        "task's submission-to-result time beyond the task's own run, over N; the trial's work is",
        "the task's steps; the rest is the sweep's (command start, MLflow, Optuna).",
        "",
        "| | wall | per trial | vs the loop | Ray's own, per trial | Ray workers | copies |",
        "|---|---|---|---|---|---|---|",
        f"| `dvc exp run` loop | {cell(sweep['loop_s'])} | {sweep['loop_s']['median'] / n:.1f} s "
        "| 1× | – | – | – |",
    ]
    for w in WORKERS:
        wall = sweep[f"sweep_{w}_s"]
        ray = sweep.get(f"ray_cost_per_trial_{w}_s")
        speedup = sweep.get(f"speedup_{w}_workers")  # a report of before #34's item 8: 2 only
        label = f"sweep, {w} worker{'s' if w > 1 else ''}"
        lines.append(
            f"| {label} | {cell(wall)} | {wall['median'] / n:.1f} s "
            f"| {cell(speedup, '×', 2) if speedup else '?'} "
            f"| {cell(ray, ' s', 2) if ray else '?'} | {sweep.get(f'workers_{w}', '?')} "
            f"| {sweep.get(f'copies_{w}', '?')} |"
        )
    steps = ", ".join(
        f"{step} {stat['median']:.1f} s" for step, stat in sweep["steps_per_trial_1_worker"].items()
    )
    lines += [
        "",
        f"- Ray's own cost, 1 worker: {cell(sweep['ray_cost_per_trial_s'], ' s', 2)} a trial"
        + (
            f"; its start {cell(sweep['ray_start_s'])} and stop {cell(sweep['ray_stop_s'])} once "
            f"a sweep, {cell(sweep['ray_dispatch_per_trial_s'], ' s', 2)} a task"
            if "ray_stop_s" in sweep
            else ""
        ),
        f"- The trial's work, 1 worker, per trial: {cell(sweep['sweep_1_task_s'])}: {steps}",
    ]
    if "sweep_other_per_trial_s" in sweep:
        lines.append(
            "- The sweep's other fixed costs (command start, MLflow's parent run, Optuna), per "
            f"trial: {cell(sweep['sweep_other_per_trial_s'])}"
        )
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
