"""One trial: a DVC experiment run in a working copy of its own, pushed when it finished.

What a Ray task runs, on whichever node Ray chose: clone the repository at the sweep's commit,
get the data (the sweep's DVC cache on one machine, the DVC remote on a cluster), run
`dvc exp run -n <study>-<n> -S ... evaluate` (save is left out: a trial registers nothing),
push the experiment to the git remote, and hand back its metrics. Nothing of Ray in here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The last stage a trial runs: evaluate writes the metrics; save would register a version.
LAST_STAGE = "evaluate"
# A dvc step that hangs (a remote that stopped answering) fails the trial instead of the sweep.
STEP_TIMEOUT_S = 3600


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run a trial; plain data, sent to the Ray task."""

    experiment: str
    overrides: list[str]
    source: str  # a git URL or path to clone from
    commit: str  # the sweep's baseline
    push_to: str  # the git remote the finished experiment goes to
    metric: str
    env: dict[str, str] = field(default_factory=dict)  # tracking URI, parent run, trial
    shared_cache: str | None = None  # one machine: the sweep's DVC cache, nothing to push


@dataclass(frozen=True)
class TrialResult:
    experiment: str
    metrics: dict[str, object]
    run_id: str | None
    seconds: float
    node: str
    error: str | None = None  # one line: why the trial failed

    def value(self, metric: str) -> float | None:
        found = self.metrics.get(metric)
        return float(found) if isinstance(found, int | float) else None


class TrialStepError(Exception):
    """A git or dvc step of the trial failed; its message is one line."""


def run_trial(spec: TrialSpec) -> TrialResult:
    """Run one trial in a fresh working copy; a failing step becomes the result's error line."""
    started = time.monotonic()
    node = os.uname().nodename
    with tempfile.TemporaryDirectory(prefix=f"{spec.experiment}-") as folder:
        copy = Path(folder) / "repo"
        try:
            metrics, run_id = _run_in_copy(spec, copy)
        except TrialStepError as exc:
            return TrialResult(
                spec.experiment, {}, None, time.monotonic() - started, node, str(exc)
            )
    return TrialResult(spec.experiment, metrics, run_id, time.monotonic() - started, node)


def _run_in_copy(spec: TrialSpec, copy: Path) -> tuple[dict[str, object], str | None]:
    env = _environment(spec.env)
    _step(["git", "clone", "--quiet", "--no-checkout", spec.source, str(copy)], copy.parent, env)
    _step(["git", "checkout", "--quiet", spec.commit], copy, env)
    dvc = [sys.executable, "-m", "dvc"]
    if spec.shared_cache:
        _step([*dvc, "cache", "dir", "--local", spec.shared_cache], copy, env)
        _step([*dvc, "checkout", "--quiet", "--allow-missing"], copy, env)
    elif _step([*dvc, "remote", "list"], copy, env).strip():
        _step([*dvc, "pull", "--quiet", "--allow-missing"], copy, env)
    overrides = [part for value in spec.overrides for part in ("-S", value)]
    _step([*dvc, "exp", "run", "--name", spec.experiment, *overrides, LAST_STAGE], copy, env)
    metrics = json.loads((copy / "metrics" / "metrics.json").read_text())
    run_info = json.loads((copy / "models" / "mlflow_run.json").read_text())
    # Only a finished experiment is pushed: its outputs first, its git ref last (DVC's order),
    # so the remote never holds a ref whose outputs are missing.
    push = [*dvc, "exp", "push", "--force", spec.push_to, spec.experiment]
    _step(push + (["--no-cache"] if spec.shared_cache else []), copy, env)
    return metrics, run_info.get("run_id")


def _environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This worker's environment, the project's Python first on PATH, and the trial's settings.

    The stages run as `python -m stages.<name>` in the copy, so `python` must be this one.
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    # DVC's own experiment settings on this worker would push or name things twice.
    for name in ("DVC_EXP_AUTO_PUSH", "DVC_EXP_GIT_REMOTE"):
        env.pop(name, None)
    env.update(extra)
    return env


def _step(command: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TrialStepError(f"{_shown(command)} did not finish in {STEP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise TrialStepError(f"{_shown(command)} failed: {_last_error(done.stderr + done.stdout)}")
    return done.stdout


def _shown(command: list[str]) -> str:
    words = ["dvc", *command[3:]] if command[1:3] == ["-m", "dvc"] else command
    shown = " ".join(words)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def _last_error(output: str) -> str:
    """The line that says what went wrong: a stage's ERROR line, else DVC's, else the last."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for marker in ("] ERROR ", "ERROR: ", "error: ", "fatal: "):
        found = [line for line in lines if marker in line]
        if found:
            return found[0]
    return lines[-1] if lines else "(no output)"
