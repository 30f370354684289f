"""A sweep: Optuna asks, Ray runs each trial as a DVC experiment, MLflow nests the runs.

The sweep's process holds the study and the MLflow parent run; each trial is a Ray task
(mlpipeline/sweeps/trial.py) in a working copy of its own, so trials run in parallel, here or
on a cluster. On one machine the copies share the repository's DVC cache and push their
experiment refs straight into it; on a cluster (RAY_ADDRESS) they clone the git remote, pull
and push through the DVC remote, and the sweep pulls each finished experiment back.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from mlpipeline.domain.errors import ParamsError, PipelineError
from mlpipeline.domain.params import Params, apply_overrides, validate_params
from mlpipeline.domain.search_space import SweepParams, better, experiment_name, overrides
from mlpipeline.files.paths import PARAMS, ROOT
from mlpipeline.sweeps import study as studies
from mlpipeline.sweeps.trial import TrialResult, TrialSpec, run_trial
from mlpipeline.tracking import lineage, runs, store

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

RAY_ADDRESS_ENV = "RAY_ADDRESS"
RAY_CONNECT_TIMEOUT_S = 10.0
# Each trial asks Ray for one CPU: its stages run one after another on one core. The local
# cluster is sized to the trials run at once, so K trials run at once even on 2 cores (they
# then share them) and none waits for a CPU that a busy driver holds: the driver holds none.
TRIAL_CPUS = 1.0
# A trial whose node died is run again once on another node, then marked failed.
TRIAL_RETRIES = 1


@dataclass(frozen=True)
class SweepOptions:
    trials: int | None = None
    parallel: int | None = None
    ray_address: str | None = None
    storage: str | None = None
    git_remote: str = "origin"
    apply_best: bool = False


@dataclass
class SweepOutcome:
    study_name: str
    parent_run_id: str
    finished: list[TrialResult] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    best_number: int | None = None
    best_experiment: str | None = None
    best_value: float | None = None
    ray_cost: RayCost = field(default_factory=lambda: RayCost())


@dataclass
class RayCost:
    """Seconds the sweep spent in Ray itself, apart from its trials' own work."""

    start_s: float = 0.0  # import ray and ray.init: once per sweep
    stop_s: float = 0.0  # ray.shutdown: once per sweep
    dispatch_s: float = 0.0  # all trials: a task's submission to its result, less its own run
    trials: int = 0

    def per_trial(self) -> float:
        return (self.start_s + self.stop_s + self.dispatch_s) / max(self.trials, 1)


def run_sweep(params: Params, options: SweepOptions, root: Path = ROOT) -> SweepOutcome:
    """Run `trials` more trials of the study; return what finished and the best so far."""
    sweep = _settled(params.sweep, options)
    commit = _clean_commit(root)
    address = options.ray_address or os.environ.get(RAY_ADDRESS_ENV) or None
    uri = runs.configure(params.mlflow.experiment_name)
    if address and not uri.startswith(("http://", "https://")):
        raise PipelineError(
            f"trials on the Ray cluster at {address} cannot log to {uri}: set "
            f"{runs.TRACKING_URI_ENV} to the team's tracking server (docs/sweeps.md)"
        )
    source = _git_remote_url(options.git_remote, root) if address else str(root)
    if address:
        _check_pushed(commit, options.git_remote, root)
    study = studies.open_study(
        studies.storage_url(options.storage, root), sweep.study_name, sweep.direction
    )
    stale = studies.settle_stale_trials(study)
    if stale:
        log.info("trials %s, left running by a sweep that stopped, are marked failed", stale)
    shared_cache = None if address else _dvc_cache_dir(root)
    # Ray starts last, alone, so its start is measured as its own cost: started beside MLflow's
    # import it saved nothing measurable on 2 cores (docs/sweeps.md, Costs).
    cost = RayCost()
    ray = _connect(address, sweep.parallel, cost)
    # One machine: the workers' copies live here and go with the sweep (a cluster's nodes keep
    # theirs in their own temp folder).
    copies = None if address else tempfile.mkdtemp(prefix=f"sweep-{sweep.study_name}-")
    try:
        with runs.mlflow_run(**_parent_run(study, sweep)) as parent:
            study.set_user_attr(studies.PARENT_RUN_ATTR, parent.info.run_id)
            outcome = SweepOutcome(sweep.study_name, parent.info.run_id, ray_cost=cost)
            spec = _SpecMaker(sweep, commit, source, uri, parent.info.run_id, shared_cache, copies)
            _trial_loop(
                ray, study, sweep, spec, outcome, pull_from=(source, root) if address else None
            )
            # Ray's processes go as soon as the last trial is in, not after the bookkeeping.
            _stop(ray, cost)
            _record_best(study, sweep, outcome)
    finally:
        _end_orphans(outcome_parent(study))
        _stop(ray, cost)
        if copies:
            shutil.rmtree(copies, ignore_errors=True)
    log.info(
        "Ray's own cost: start %.1f s, stop %.1f s, %.1f s between submitting %d trials and "
        "having their results, beyond their own run: %.2f s a trial",
        cost.start_s,
        cost.stop_s,
        cost.dispatch_s,
        cost.trials,
        cost.per_trial(),
    )
    if options.apply_best and outcome.best_experiment:
        apply_best(outcome.best_experiment, root)
    return outcome


def _stop(ray: Any, cost: RayCost) -> None:
    """ray.shutdown, once: its processes (started here) end, or the cluster is let go."""
    if not ray.is_initialized():
        return
    started = time.monotonic()
    ray.shutdown()
    cost.stop_s += time.monotonic() - started


def _settled(sweep: SweepParams | None, options: SweepOptions) -> SweepParams:
    if sweep is None:
        raise ParamsError("params.yaml has no sweep: section; add one (docs/sweeps.md)")
    changes = {"trials": options.trials, "parallel": options.parallel}
    for name, value in changes.items():
        if value is not None and value < 1:
            raise ParamsError(f"--{name} {value}: must be at least 1")
    return sweep.model_copy(update={k: v for k, v in changes.items() if v is not None})


def _clean_commit(root: Path) -> str:
    """HEAD, once sure the trials' copies (made from HEAD) hold what the workspace holds."""
    changed = _git(["status", "--porcelain", "--untracked-files=no"], root).splitlines()
    if changed:
        names = ", ".join(line[3:] for line in changed[:5])
        raise PipelineError(
            f"uncommitted changes ({names}): trials run from a commit; commit them first"
        )
    return _git(["rev-parse", "HEAD"], root).strip()


def _git_remote_url(remote: str, root: Path) -> str:
    try:
        return _git(["remote", "get-url", remote], root).strip()
    except PipelineError:
        raise PipelineError(
            f"a Ray cluster's workers clone the git remote {remote!r}, which this repository "
            "does not have: `git remote add origin <url>` (docs/sweeps.md)"
        ) from None


def _check_pushed(commit: str, remote: str, root: Path) -> None:
    """A cluster's workers clone the git remote: the sweep's commit must be there."""
    _git(["fetch", "--quiet", remote], root)
    if not _git(["branch", "--remotes", "--contains", commit], root).strip():
        raise PipelineError(
            f"commit {commit[:8]} is not on the git remote {remote!r}, which the cluster's "
            f"workers clone: push it first (`git push {remote} HEAD`)"
        )


def _dvc_cache_dir(root: Path) -> str:
    """The repository's DVC cache (`.dvc/cache` unless `dvc cache dir` moved it)."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "cache", "dir"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PipelineError(f"dvc cache dir: {done.stderr.strip() or 'failed'}")
    return done.stdout.strip()


def _git(args: list[str], root: Path) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PipelineError(f"git {' '.join(args)}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def _connect(address: str | None, parallel: int, cost: RayCost) -> Any:
    """Ray, started here (sized for `parallel` trials) or joined at `address`; one line if not."""
    if address:
        _check_reachable(address)
    # Under `uv run` (every make target) Ray would start its workers with the driver's `uv
    # run` command line, here a relative `.tools/bin/uv` that a worker's folder lacks, so no
    # worker ever registers. The trials run the venv's Python and need no uv of their own.
    # Read when ray is first imported.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    # No usage report to Ray's servers from a sweep (and no thread in Ray's processes for it).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.monotonic()
    import ray

    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        cpus = math.ceil(parallel * TRIAL_CPUS)
        # "local": a Ray of our own even when this machine runs another (`ray start`, a test's
        # cluster): with no address Ray joins the last one started here, and refuses num_cpus.
        ray.init(
            address="local",
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    cost.start_s = time.monotonic() - started
    log.info("Ray ready in %.1f s", cost.start_s)
    return ray


def _check_reachable(address: str) -> None:
    """Ray retries a dead address for minutes; a refused or silent port fails here at once."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    port = parts.port or (10001 if address.startswith("ray://") else 6379)
    try:
        with socket.create_connection((parts.hostname or "", port), RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise PipelineError(
            f"Ray cluster at {address} is unreachable ({exc.strerror or exc}): start it "
            f"(`ray start --head`) or unset {RAY_ADDRESS_ENV} to run the trials here"
        ) from None


def _parent_run(study: optuna.Study, sweep: SweepParams) -> dict[str, Any]:
    """The study's parent run, resumed; a new one for a new study (or one whose run is gone)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    known = study.user_attrs.get(studies.PARENT_RUN_ATTR)
    if known:
        try:
            MlflowClient().get_run(known)
            return {"run_id": known}
        except MlflowException:
            log.info("the study's MLflow parent run %s is gone; a new one is made", known)
    return {
        "run_name": sweep.study_name,
        "tags": {
            "sweep_study": sweep.study_name,
            "sweep_metric": sweep.metric,
            "sweep_direction": sweep.direction,
        },
    }


@dataclass(frozen=True)
class _SpecMaker:
    sweep: SweepParams
    commit: str
    source: str
    uri: str
    parent_run_id: str
    shared_cache: str | None  # one machine: the repository's DVC cache
    copies: str | None  # one machine: the folder of the workers' working copies

    def __call__(self, number: int, values: dict[str, Any]) -> TrialSpec:
        env = {
            runs.TRACKING_URI_ENV: self.uri,
            lineage.SWEEP_PARENT_ENV: self.parent_run_id,
            lineage.SWEEP_STUDY_ENV: self.sweep.study_name,
            lineage.SWEEP_TRIAL_ENV: str(number),
        }
        return TrialSpec(
            experiment=experiment_name(self.sweep.study_name, number),
            overrides=overrides(values),
            source=self.source,
            commit=self.commit,
            push_to=self.source,
            metric=self.sweep.metric,
            env=env,
            shared_cache=self.shared_cache,
            copies=self.copies,
        )


def _trial_loop(
    ray: Any,
    study: optuna.Study,
    sweep: SweepParams,
    make_spec: _SpecMaker,
    outcome: SweepOutcome,
    pull_from: tuple[str, Path] | None,
) -> None:
    """Keep `parallel` trials running until `trials` were asked; tell Optuna each result."""
    import optuna

    task = ray.remote(run_trial).options(
        num_cpus=TRIAL_CPUS, max_retries=TRIAL_RETRIES, retry_exceptions=False
    )
    raw = yaml.safe_load(PARAMS.read_text())
    running: dict[Any, int] = {}
    submitted: dict[Any, float] = {}  # monotonic seconds, by task
    asked = 0
    while asked < sweep.trials or running:
        while asked < sweep.trials and len(running) < sweep.parallel:
            asked += 1
            trial = study.ask()
            values = studies.suggest(trial, dict(sweep.space))
            refusal = _refusal(raw, values, study, trial.number)
            if refusal:
                state = optuna.trial.TrialState
                study.tell(trial, state=state.PRUNED if "same params" in refusal else state.FAIL)
                outcome.failed[trial.number] = refusal
                log.warning("trial %d: %s", trial.number, refusal)
                continue
            spec = make_spec(trial.number, values)
            trial.set_user_attr(studies.EXPERIMENT_ATTR, spec.experiment)
            log.info("trial %d: %s as %s", trial.number, " ".join(spec.overrides), spec.experiment)
            submitted_at = time.monotonic()
            reference = task.remote(spec)
            running[reference] = trial.number
            submitted[reference] = submitted_at
        if not running:
            continue
        [done], _ = ray.wait(list(running), num_returns=1)
        waited = time.monotonic() - submitted.pop(done)
        number = running.pop(done)
        _tell(ray, study, sweep, done, number, outcome, pull_from, waited)


def _refusal(raw: Any, values: dict[str, Any], study: optuna.Study, number: int) -> str | None:
    """Why a drawn trial is not run: params that fail validation, or a trial already run."""
    try:
        validate_params(apply_overrides(raw, overrides(values)), source="the trial's params")
    except ParamsError as exc:
        return " ".join(str(exc).split())
    earlier = studies.tried_before(study, values, number)
    return f"same params as trial {earlier}; not run again" if earlier is not None else None


def _tell(
    ray: Any,
    study: optuna.Study,
    sweep: SweepParams,
    done: Any,
    number: int,
    outcome: SweepOutcome,
    pull_from: tuple[str, Path] | None,
    waited: float,
) -> None:
    """Tell Optuna the trial's outcome; `waited`: seconds from its submission to its result."""
    import optuna

    try:
        result: TrialResult = ray.get(done)
    except ray.exceptions.RayError as exc:
        # A node that died twice under the trial, or a worker killed: the trial failed alone.
        reason = f"its Ray task was lost ({type(exc).__name__})"
        result = TrialResult(experiment_name(sweep.study_name, number), {}, None, 0.0, "?", reason)
        dispatch = None
    else:
        # Ray's part: scheduling, the worker's start (first trial), moving the spec and result.
        dispatch = max(waited - result.seconds, 0.0)
        outcome.ray_cost.dispatch_s += dispatch
        outcome.ray_cost.trials += 1
    value = result.value(sweep.metric) if result.error is None else None
    if result.error is None and value is None:
        result = replace(result, error=f"metrics.json has no number {sweep.metric!r}")
    if result.error is None and pull_from:
        result = _pulled(result, *pull_from)
    if result.error is not None:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
        outcome.failed[number] = result.error
        log.warning("trial %d (%s) failed: %s", number, result.experiment, result.error)
        return
    study.tell(number, value)
    outcome.finished.append(result)
    log.info(
        "trial %d (%s): %s = %.4f in %.1f s on %s, worker %d (%s); Ray %.2f s",
        number,
        result.experiment,
        sweep.metric,
        value,
        result.seconds,
        result.node,
        result.worker,
        ", ".join(f"{step} {seconds:.1f} s" for step, seconds in result.steps.items()),
        dispatch or 0.0,
    )


def _pulled(result: TrialResult, remote: str, root: Path) -> TrialResult:
    """A cluster's trial, pulled into this repository from the git remote (and DVC remote)."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "pull", "--force", remote, result.experiment],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return result
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    error = f"dvc exp pull {result.experiment} failed: {lines[-1] if lines else '?'}"
    return replace(result, error=error)


def _record_best(study: optuna.Study, sweep: SweepParams, outcome: SweepOutcome) -> None:
    """The parent run's metric and tags name the study's best trial so far."""
    import mlflow

    best: optuna.trial.FrozenTrial | None = None
    for trial in study.get_trials(deepcopy=False, states=studies.complete_states()):
        if trial.value is not None and better(
            sweep.direction, trial.value, best.value if best else None
        ):
            best = trial
    if best is None:
        return
    outcome.best_number = best.number
    outcome.best_value = best.value
    outcome.best_experiment = best.user_attrs.get(studies.EXPERIMENT_ATTR)
    if best.value is not None:
        mlflow.log_metric(f"best_{sweep.metric}", best.value)
    mlflow.set_tags(
        {
            "best_trial": str(best.number),
            "best_experiment": outcome.best_experiment or "",
            **{f"best.{key}": str(value) for key, value in best.params.items()},
        }
    )


def outcome_parent(study: optuna.Study) -> str | None:
    return study.user_attrs.get(studies.PARENT_RUN_ATTR)


def _end_orphans(parent_run_id: str | None) -> None:
    """Child runs still RUNNING when every trial is over lost their process: end them FAILED."""
    if not parent_run_id:
        return
    from mlflow import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    orphans = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' "
        "and attributes.status = 'RUNNING'",
    )
    for orphan in orphans:
        client.set_terminated(orphan.info.run_id, "FAILED", end_time=int(time.time() * 1000))
        store.discard_pending_models(client, orphan.info.experiment_id, orphan.info.run_id)
        log.info("MLflow run %s, left running by a lost trial, is ended FAILED", orphan.info.run_id)


def apply_best(experiment: str, root: Path = ROOT) -> None:
    """`dvc exp apply <best>` then `dvc repro`: save registers it through the usual gate."""
    for command in (["exp", "apply", experiment], ["repro"]):
        done = subprocess.run([sys.executable, "-m", "dvc", *command], cwd=root, check=False)
        if done.returncode != 0:
            raise PipelineError(f"dvc {' '.join(command)} failed (exit {done.returncode})")
