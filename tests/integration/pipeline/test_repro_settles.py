"""`dvc repro` alone, after a process died inside a run, settles that run: the first stage
that opens the store ends it KILLED and discards the model it left PENDING (docs/failures.md,
"No run stays RUNNING"), without waiting for `make run`'s check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import copy_repository, set_params
from tests.support.tools import run, stages_run

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1200)]

EXPERIMENT = "iris_classification"

# A training process killed (SIGKILL) while its model upload is under way: the run is RUNNING
# and tagged with the dead process, its logged model PENDING with a file already written.
DIE_IN_A_RUN = f"""
import os, signal
from pathlib import Path
import mlflow
from mlpipeline.tracking import runs
runs.configure({EXPERIMENT!r})
with runs.mlflow_run() as run:
    model = mlflow.initialize_logged_model(name="model", source_run_id=run.info.run_id)
    folder = Path(model.artifact_location.removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text("half written")
    print(run.info.run_id, model.model_id, os.getpid(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_dvc_repro_alone_settles_a_killed_run_and_its_pending_model(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelStatus

    project = copy_repository(tmp_path / "project")
    env = tool_env()
    run(["dvc", "repro"], cwd=project, env=env)
    killed = run(["python", "-c", DIE_IN_A_RUN], cwd=project, env=env, check=False)
    assert killed.returncode == -9, killed.stderr[-3000:]
    run_id, model_id, pid = killed.stdout.split()
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_run(run_id).info.status == "RUNNING"
    pending = client.get_logged_model(model_id)
    assert pending.status == LoggedModelStatus.PENDING
    files = Path(pending.artifact_location.removeprefix("file://"))
    assert files.is_dir()

    set_params(project, train__n_estimators=40)  # the user's next change
    repro = run(["dvc", "repro"], cwd=project, env=env)
    assert stages_run(repro.stdout)[0] == "train"
    settled = f"MLflow run {run_id} was left RUNNING by process {pid}"
    assert settled in repro.stderr + repro.stdout, repro.stderr[-3000:]
    assert client.get_run(run_id).info.status == "KILLED"
    left = client.search_logged_models(
        [client.get_experiment_by_name(EXPERIMENT).experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    assert all(model.status != LoggedModelStatus.PENDING for model in left), left
    assert not files.exists(), "the unfinished model's files are left"
