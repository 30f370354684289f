"""One trial: a DVC experiment run in a working copy of its own, pushed when it finished.

What a Ray task runs, on whichever node Ray chose: a working copy of the repository at the
sweep's commit, run `dvc exp run -n <study>-<n> -S ... evaluate` (save is left out: a trial
registers nothing), push the experiment to the git remote, and hand back its metrics and what
each step took. Nothing of Ray in here.

The copy is made by a worker process's first trial (clone, then the data from the sweep's DVC
cache on one machine or the DVC remote on a cluster) and kept for its next trials, reset to
the commit before each: a worker runs one trial at a time, so no two trials share a copy, and
the clone, the data's checkout and the stages' first compile are paid once per worker, not
per trial. A trial whose step failed discards its copy (the next trial makes a fresh one).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
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
# Where a worker keeps its copies when the sweep names no folder (a cluster's node).
COPIES_FOLDER = "mlpipeline-trials"


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
    copies: str | None = None  # the folder workers keep their copies in (default: node's temp)


@dataclass(frozen=True)
class TrialResult:
    experiment: str
    metrics: dict[str, object]
    run_id: str | None
    seconds: float
    node: str
    error: str | None = None  # one line: why the trial failed
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step (clone, exp run…)
    worker: int = 0  # the process id of the Ray worker that ran it

    def value(self, metric: str) -> float | None:
        found = self.metrics.get(metric)
        return float(found) if isinstance(found, int | float) else None


class TrialStepError(Exception):
    """A git or dvc step of the trial failed; its message is one line."""


def run_trial(spec: TrialSpec) -> TrialResult:
    """Run one trial in this worker's working copy; a failing step becomes the result's error."""
    started = time.monotonic()
    node = os.uname().nodename
    steps: dict[str, float] = {}
    try:
        metrics, run_id = _run_in_copy(spec, steps)
    except TrialStepError as exc:
        _discard(spec)
        seconds = time.monotonic() - started
        return TrialResult(spec.experiment, {}, None, seconds, node, str(exc), steps, os.getpid())
    seconds = time.monotonic() - started
    return TrialResult(spec.experiment, metrics, run_id, seconds, node, None, steps, os.getpid())


# This worker process's copies, by the repository they were cloned from and the cache they use.
_copies: dict[tuple[str, str | None], Path] = {}


def _run_in_copy(spec: TrialSpec, steps: dict[str, float]) -> tuple[dict[str, object], str | None]:
    env = _environment(spec.env)
    dvc = [sys.executable, "-m", "dvc"]
    copy = _copies.get((spec.source, spec.shared_cache))
    if copy is not None and copy.is_dir():
        # The last trial's params and lock go; its outputs stay, so stages whose deps are the
        # same as its (load, preprocess) are not run again.
        _step("reset", ["git", "reset", "--quiet", "--hard", spec.commit], copy, env, steps)
    else:
        copy = _new_copy(spec, env, steps)
    overrides = [part for value in spec.overrides for part in ("-S", value)]
    run = [*dvc, "exp", "run", "--name", spec.experiment, *overrides, LAST_STAGE]
    _step("exp run", run, copy, env, steps)
    metrics = json.loads((copy / "metrics" / "metrics.json").read_text())
    run_info = json.loads((copy / "models" / "mlflow_run.json").read_text())
    if spec.shared_cache:
        # One machine: the outputs are in the shared cache already, so the push is the ref
        # alone, what `dvc exp push --no-cache` does, by git: no second DVC process per trial.
        ref = _experiment_ref(spec.experiment, copy, env, steps)
        _step(
            "push",
            ["git", "push", "--quiet", "--force", spec.push_to, f"{ref}:{ref}"],
            copy,
            env,
            steps,
        )
    else:
        # Only a finished experiment is pushed: its outputs first, its git ref last (DVC's
        # order), so the remote never holds a ref whose outputs are missing.
        push = [*dvc, "exp", "push", "--force", spec.push_to, spec.experiment]
        _step("push", push, copy, env, steps)
    return metrics, run_info.get("run_id")


def _experiment_ref(name: str, copy: Path, env: Mapping[str, str], steps: dict[str, float]) -> str:
    """The git ref DVC stored the experiment under: refs/exps/<baseline>/<name>."""
    listed = _step(
        "push", ["git", "for-each-ref", "--format=%(refname)", "refs/exps"], copy, env, steps
    )
    found = [ref for ref in listed.split() if ref.rsplit("/", 1)[-1] == name]
    if len(found) != 1:
        raise TrialStepError(f"dvc exp run left {len(found)} refs named {name} under refs/exps")
    return found[0]


def _new_copy(spec: TrialSpec, env: Mapping[str, str], steps: dict[str, float]) -> Path:
    """A clone at the sweep's commit with its data, kept for this worker's next trials."""
    folder = Path(spec.copies or Path(tempfile.gettempdir()) / COPIES_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_copies(folder)
    copy = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=folder)) / "repo"
    _copies[(spec.source, spec.shared_cache)] = copy
    if len(_copies) == 1:
        atexit.register(_remove_copies)
    dvc = [sys.executable, "-m", "dvc"]
    clone = ["git", "clone", "--quiet", "--no-checkout", spec.source, str(copy)]
    _step("clone", clone, copy.parent, env, steps)
    _step("checkout", ["git", "checkout", "--quiet", spec.commit], copy, env, steps)
    if spec.shared_cache:
        use_shared_cache(copy, spec.shared_cache, env, steps)
        _step("data", [*dvc, "checkout", "--quiet", "--allow-missing"], copy, env, steps)
    elif _step("data", [*dvc, "remote", "list"], copy, env, steps).strip():
        _step("data", [*dvc, "pull", "--quiet", "--allow-missing"], copy, env, steps)
    return copy


def use_shared_cache(
    copy: Path, cache: str, env: Mapping[str, str], steps: dict[str, float]
) -> None:
    """What `dvc cache dir --local <cache>` does, without a dvc process: .dvc/config.local."""
    if '"' in cache:  # DVC's config format has no escape for a double quote in a value
        _step(
            "data",
            [sys.executable, "-m", "dvc", "cache", "dir", "--local", cache],
            copy,
            env,
            steps,
        )
        return
    (copy / ".dvc" / "config.local").write_text(f'[cache]\n    dir = "{cache}"\n')


def _discard(spec: TrialSpec) -> None:
    """A copy whose step failed may be half-made or locked: the next trial starts afresh."""
    copy = _copies.pop((spec.source, spec.shared_cache), None)
    if copy is not None:
        shutil.rmtree(copy.parent, ignore_errors=True)


def _remove_copies() -> None:
    for copy in _copies.values():
        shutil.rmtree(copy.parent, ignore_errors=True)
    _copies.clear()


def _remove_stale_copies(folder: Path) -> None:
    """Copies of worker processes that are gone (killed before they could remove them)."""
    for entry in folder.iterdir():
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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


def _step(
    label: str, command: list[str], cwd: Path, env: Mapping[str, str], steps: dict[str, float]
) -> str:
    """Run one git or dvc command of the trial; its seconds add to `steps[label]`."""
    started = time.monotonic()
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
    finally:
        steps[label] = steps.get(label, 0.0) + time.monotonic() - started
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
