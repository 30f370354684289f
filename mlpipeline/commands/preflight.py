"""Before `dvc repro` (`make run`): retrain when the MLflow store lost the run the outputs name.

`models/mlflow_run.json` is a DVC output naming the run that trained `models/classifier.pkl`;
evaluate and save log into that run. When the store no longer holds it (`make
clean-tracking`, a deleted `mlflow.db`, another `MLFLOW_TRACKING_URI`), DVC still sees every
output up to date: `dvc repro` would run nothing and the store would have no run and no
champion. Retraining opens a new run, and the `dvc repro` that follows reruns evaluate and
save on it, which registers a version and moves the champion alias.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

from mlpipeline.domain.errors import PipelineError
from mlpipeline.files import paths
from mlpipeline.runner import exit_on_user_error
from mlpipeline.tracking import runs as tracking
from mlpipeline.tracking import store

log = logging.getLogger("mlpipeline.preflight")

RETRAIN = ["dvc", "repro", "--force", "--single-item", "train"]


def _run_state(uri: str, run_id: str) -> str | None:
    """The run's lifecycle stage (active, deleted) in the store, None if it holds no such run."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient(tracking_uri=uri).get_run(run_id).info.lifecycle_stage
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def lost_run(run_info: Path, uri: str) -> str | None:
    """Why the store cannot serve the run `run_info` names, or None when it can (or none yet)."""
    if not run_info.exists():  # nothing trained yet: `dvc repro` trains
        return None
    try:
        run_id = json.loads(run_info.read_text())["run_id"]
    except (ValueError, KeyError, TypeError):
        return f"{run_info} names no MLflow run"
    db = store.sqlite_path(uri)
    if db is not None and not db.exists():
        return f"{run_info} names MLflow run {run_id}, but the store {db} does not exist"
    tracking.check_reachable(uri)
    state = _run_state(uri, run_id)
    if state is None:
        return f"{run_info} names MLflow run {run_id}, which the store {uri} does not hold"
    if state != "active":
        return f"{run_info} names MLflow run {run_id}, which the store {uri} has deleted"
    return None


def main() -> None:
    """Retrain (then `dvc repro` runs the rest) when the store lacks the outputs' run."""
    logging.basicConfig(level=logging.INFO, format="[preflight] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        reason = lost_run(paths.RUN_INFO, tracking.tracking_uri())
        if reason is None:
            return
        log.warning(
            "%s: retraining with `%s`; evaluate and save follow in `dvc repro`",
            reason,
            " ".join(RETRAIN),
        )
        retrained = subprocess.run(RETRAIN, cwd=paths.ROOT, check=False)
        if retrained.returncode != 0:
            raise PipelineError(f"`{' '.join(RETRAIN)}` exited {retrained.returncode}")


if __name__ == "__main__":
    main()
