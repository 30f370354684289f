"""Before `dvc repro` (`make run`): valid params, a settled store, and a champion that loads.

DVC judges the pipeline by its files alone. `models/mlflow_run.json` is a DVC output naming
the run that trained `models/classifier.pkl` and the model it logged; evaluate and save log
into that run. When the store lost that run or its model's files (`make clean-tracking`, a
deleted `mlflow.db` or `mlartifacts/`, another `MLFLOW_TRACKING_URI`), DVC still sees every
output up to date: `dvc repro` would run nothing, and `models:/<name>@champion` would not
load. So, in order:

1. params.yaml is validated (a section nobody reads is an error, as in every stage). Under a
   checkout path that is not ASCII, DVC's cache moves to an ASCII path once (files/dvc_cache.py).
2. The store is opened as a stage opens it: a corrupt, locked or unreachable store is the
   same one line, and runs left RUNNING by a process that is gone are ended (FAILED when
   their stage failed, else KILLED) with the models they left unfinished.
3. The outputs' run and its model's files must be in the store, else train runs again and
   `dvc repro` reruns evaluate and save on the new run.
4. `@champion` must load. When it does not and the outputs' model is sound, save runs again
   on it (a champion that cannot load gives way); if the alias still does not load, the
   error says the one command that heals.

When that check finds everything sound on the embedded store it stamps what it verified
(mlpipeline/tracking/verified.py); the next check that finds every stamped file as it was
stops there, without importing MLflow (~5 s of CPU less on a `make run` with nothing to do).
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from mlpipeline.commands.console import command, params_option
from mlpipeline.domain.errors import PipelineError, TrackingError
from mlpipeline.files import dvc_cache, paths
from mlpipeline.tracking import runs as tracking
from mlpipeline.tracking import servable, server, store, verified
from mlpipeline.tracking.failures import is_not_found

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlpipeline.domain.params import Params

log = logging.getLogger("mlpipeline.preflight")

# train and what it needs, if they are out of date (load's params changed): once, on fresh data
CATCH_UP = ["dvc", "repro", "train"]
RETRAIN = ["dvc", "repro", "--force", "--single-item", "train"]
RESAVE = ["dvc", "repro", "--force", "--single-item", "save"]
REPRO = ["dvc", "repro"]


def _run_state(client: MlflowClient, uri: str, run_id: str, model_uri: str | None) -> str | None:
    """The run's lifecycle stage (active, deleted) in the store, None if it holds no such run.

    A store that says "no such run" is checked first: a damaged page can hide a row, and a
    read error must never pass for a missing run (it would start a retrain that fails). So
    SQLite checks its file, and a store that still holds the run's logged model is damaged.
    """
    from mlflow.exceptions import MlflowException

    try:
        stage = client.get_run(run_id).info.lifecycle_stage
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
    else:
        if stage == "active":
            return stage
        store.check_integrity(uri)
        if stage != "deleted":  # garbage read as a row
            raise TrackingError(
                f"MLflow store {uri}: run {run_id} reads as lifecycle stage {stage!r}: the "
                "store is damaged; restore a backup, or move it away to start anew"
            )
        return stage
    store.check_integrity(uri)
    if model_uri:
        try:
            model = client.get_logged_model(model_uri.removeprefix("models:/"))
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
            return None
        if model.source_run_id == run_id:
            raise TrackingError(
                f"MLflow store {uri} holds the model {model_uri} of run {run_id} but cannot "
                "read the run: the store is damaged; restore a backup, or move it away to "
                "start anew"
            )
    return None


def _client(uri: str) -> MlflowClient:
    """A client of the store at `uri`, after the same checks and settings a stage makes."""
    import mlflow
    from mlflow import MlflowClient

    tracking.use_client_defaults()
    server.check_reachable(uri)
    # Error messages name the store from here on (mlpipeline.runner.exit_on_user_error).
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def settle(client: MlflowClient, experiment_name: str) -> list[str]:
    """End the runs of `experiment_name` whose process is gone; their ids."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return store.reap_dead_runs(experiment.experiment_id, client)


def lost_run(run_info: Path, uri: str, client: MlflowClient | None = None) -> str | None:
    """Why the store cannot serve the run `run_info` names, or None when it can (or none yet)."""
    if not run_info.exists():  # nothing trained yet: `dvc repro` trains
        return None
    try:
        recorded = json.loads(run_info.read_text())
        run_id = recorded["run_id"]
    except (ValueError, KeyError, TypeError):
        return f"{run_info} names no MLflow run"
    db = store.sqlite_path(uri)
    if db is not None and not db.exists():
        return f"{run_info} names MLflow run {run_id}, but the store {db} does not exist"
    if client is None:
        from mlflow import MlflowClient

        server.check_reachable(uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model_uri = recorded.get("model_uri")
    state = _run_state(client, uri, run_id, model_uri)
    if state is None:
        return f"{run_info} names MLflow run {run_id}, which the store {uri} does not hold"
    if state != "active":
        return f"{run_info} names MLflow run {run_id}, which the store {uri} has deleted"
    if model_uri:
        problem = servable.logged_model_problem(client, model_uri)
        if problem is not None:
            return f"{run_info} names MLflow run {run_id}, but {problem}"
    return None


def _dvc(command: list[str]) -> None:
    done = subprocess.run(command, cwd=paths.ROOT, check=False)
    if done.returncode != 0:
        raise PipelineError(f"`{' '.join(command)}` exited {done.returncode}")


def use_ascii_cache(root: Path) -> None:
    """Under a checkout path that is not ASCII, move DVC's cache to one that is (once)."""
    moved = dvc_cache.ensure_ascii_cache(root)
    if moved is not None:
        log.warning(
            "the checkout's path is not ASCII, which `dvc exp run --temp` and the queue cannot "
            "write into a copy's config: moved DVC's cache from %s to %s (`dvc cache dir "
            "--local`, once per clone; docs/deploy.md)",
            *moved,
        )


def _trained_run() -> str | None:
    try:
        return json.loads(paths.RUN_INFO.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def retrain() -> None:
    """Train once on up-to-date data: `dvc repro train` runs load, preprocess and train when
    their params or inputs changed; only when it left train as it was is train forced (a
    forced train first would train on the stale dataset, and the next `dvc repro` again)."""
    before = _trained_run()
    _dvc(CATCH_UP)
    if _trained_run() == before:
        _dvc(RETRAIN)


def check(params: Path = paths.PARAMS, uri: str | None = None) -> None:
    """`make run`'s check: nothing when nothing changed since the last full check verified
    the store, the outputs' run and @champion; else validate params and `preflight`.

    The stamp is of the repository's params.yaml: another params file is always checked.
    """
    use_ascii_cache(paths.ROOT)
    uri = uri or tracking.tracking_uri()
    ours = params.resolve() == paths.PARAMS
    if ours and verified.unchanged(uri):
        log.info(
            "params, store, the outputs' run and the champion are as verified before (%s): "
            "nothing to check",
            verified.stamp_path().relative_to(paths.workspace_root()),
        )
        return
    from mlpipeline.files.params_yaml import load_params

    preflight(load_params(params), uri, stamp=ours)


def preflight(params: Params, uri: str, stamp: bool = True) -> None:
    """Settle the store, then retrain or re-save until the outputs and @champion can serve.

    When it had nothing to settle or heal and nobody else wrote to the store meanwhile, it
    stamps what it verified for the next `check` (with `stamp`: params are params.yaml's).
    """
    verified.forget()
    before = verified.store_state(uri)
    db = store.sqlite_path(uri)
    client = _client(uri) if db is None or db.exists() else None
    settled = settle(client, params.mlflow.experiment_name) if client is not None else []
    reason = lost_run(paths.RUN_INFO, uri, client)
    if reason is not None:
        log.warning(
            "%s: retraining with `%s` (or `%s` when train is up to date), then `%s` for "
            "evaluate and save",
            reason,
            " ".join(CATCH_UP),
            " ".join(RETRAIN),
            " ".join(REPRO),
        )
        retrain()
        # The rest of the pipeline now, so that the champion is checked after the new
        # version had its chance at the alias (`make run`'s own `dvc repro` has nothing left).
        _dvc(REPRO)
        client = _client(uri)
    if client is None or not paths.RUN_INFO.exists():
        return
    name, alias = params.mlflow.registered_model_name, params.mlflow.champion_alias
    broken = servable.champion_problem(client, name, alias)
    if broken is None:
        if stamp and reason is None and not settled:
            _stamp(client, params, uri, before)
        return
    version, why = broken
    log.warning(
        "%s@%s (version %s) cannot be served: %s; registering the current model again with `%s`",
        name,
        alias,
        version,
        why,
        " ".join(RESAVE),
    )
    _dvc(RESAVE)
    still = servable.champion_problem(client, name, alias)
    if still is not None:
        raise TrackingError(
            f"{name}@{alias} (version {still[0]}) cannot be served ({still[1]}), and the "
            "current model did not take the alias; move it to a version that loads with "
            "`mlpipeline model promote <version>` (see `mlpipeline model list`), or retrain "
            "with `dvc repro --force`"
        )


def _stamp(client: MlflowClient, params: Params, uri: str, before: dict | None) -> None:
    """Stamp the state just verified, unless a run of this host is still RUNNING (its process
    may die later without a write to the store) or the store changed during the check."""
    experiment = client.get_experiment_by_name(params.mlflow.experiment_name)
    if experiment is None or store.running_here(experiment.experiment_id, client):
        return
    folders = _model_folders(client, params)
    if folders is None:
        return
    now = verified.state(uri, folders)
    if before is None or now is None or now["store"] != before:
        return
    path = verified.record(now)
    log.debug("verified state stamped in %s", path)


def _model_folders(client: MlflowClient, params: Params) -> list[Path] | None:
    """The local folders of the outputs' logged model and @champion's; None when one is not
    on local disk (then nothing is stamped)."""
    from mlflow.exceptions import MlflowException

    model_ids = []
    recorded = json.loads(paths.RUN_INFO.read_text()).get("model_uri")
    if recorded:
        model_ids.append(recorded.removeprefix("models:/"))
    name, alias = params.mlflow.registered_model_name, params.mlflow.champion_alias
    try:
        holder = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    else:
        source = str(holder.source)
        if not source.startswith("models:/"):
            return None
        model_ids.append(source.removeprefix("models:/"))
    folders = set()
    for model_id in model_ids:
        folder = verified.local_folder(client.get_logged_model(model_id).artifact_location)
        if folder is None:
            return None
        folders.add(folder)
    return sorted(folders) or None


@command(
    "preflight",
    help="Validate params, settle the store, and heal the outputs' run and "
    "the champion: what `make run` does before `dvc repro`.",
)
@params_option
def preflight_command(params: Path) -> None:
    check(params)
