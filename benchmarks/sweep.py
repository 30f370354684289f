"""What a sweep costs: N trials as a plain `dvc exp run` loop vs the sweep on 1 and 2 Ray workers.

    python -m benchmarks.sweep [--trials 8] [--output benchmarks/results-sweep.json]

One copy of the repository on the Iris defaults (benchmarks/bench.py's snapshot), the data
made once with `dvc repro` and committed, then, one after another: the sweep with `--parallel
1` and with `--parallel 2` (local Ray sized to it, each its own study), and N `dvc exp run -S
... evaluate` in the workspace (what a user's loop does; last, as it leaves its last
experiment in the workspace). Reported: wall seconds of each; the sweep's cost
per trial over the loop; Ray's own cost per trial (the sweep's wall time less the seconds
its trials' tasks took, over N, with parallel 1: Ray's start, scheduling, Optuna, MLflow's
parent run); the speed-up of 2 workers over the loop.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.bench import copy_repository, snapshot_working_tree, timed, tool_env

SPACE = {"train.max_depth": {"int": [2, 8]}, "train.random_state": {"int": [0, 10_000]}}
TASK_SECONDS = re.compile(r"trial \d+ \([^)]*\): \S+ = [0-9.]+ in ([0-9.]+) s")


def add_sweep_section(root: Path, trials: int) -> None:
    params = root / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["train"]["n_estimators"] = 50
    raw["sweep"] = {"space": SPACE, "trials": trials, "parallel": 1, "study_name": "bench"}
    params.write_text(yaml.safe_dump(raw, sort_keys=False))


def measure(trials: int, workdir: Path) -> dict[str, float]:
    snapshot = snapshot_working_tree(workdir / "snapshot")
    root = copy_repository(snapshot, workdir / "repo", lambda r: add_sweep_section(r, trials))
    env = tool_env()
    timed(["dvc", "repro"], root, env)  # the data and a first run, as a user has them
    # Committed: a sweep runs from a commit; the loop's workspace experiments come last (the
    # last one stays in the workspace).
    timed(["git", "commit", "-qam", "first run"], root, env)
    results: dict[str, float] = {}
    for parallel in (1, 2):
        storage = f"sqlite:///{workdir / f'study-{parallel}.db'}"
        command = [
            "python",
            "-m",
            "mlpipeline",
            "model",
            "sweep",
            "--trials",
            str(trials),
            "--parallel",
            str(parallel),
            "--storage",
            storage,
        ]
        done = timed(command, root, env)
        tasks = [float(s) for s in TASK_SECONDS.findall(done.stderr)]
        if len(tasks) != trials:
            raise RuntimeError(f"{len(tasks)} of {trials} trials finished:\n{done.stderr[-3000:]}")
        results[f"sweep_{parallel}_s"] = done.seconds
        results[f"sweep_{parallel}_task_s"] = sum(tasks)

    started = time.perf_counter()
    for number in range(trials):
        values = [f"train.max_depth={2 + number % 7}", f"train.random_state={number}"]
        overrides = [part for value in values for part in ("-S", value)]
        timed(["dvc", "exp", "run", "-n", f"loop-{number}", *overrides, "evaluate"], root, env)
    results["loop_s"] = time.perf_counter() - started
    results["sweep_cost_per_trial_s"] = (results["sweep_1_s"] - results["loop_s"]) / trials
    results["ray_cost_per_trial_s"] = (results["sweep_1_s"] - results["sweep_1_task_s"]) / trials
    results["speedup_2_workers"] = results["loop_s"] / results["sweep_2_s"]
    return {key: round(value, 2) for key, value in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results-sweep.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        results = {"trials": args.trials, **measure(args.trials, Path(folder))}
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
