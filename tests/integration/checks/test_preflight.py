"""`make run` leaves a champion when the MLflow store lost the run the outputs name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlpipeline.commands.preflight import lost_run
from tests.support.repository import clone_built, set_params
from tests.support.tools import make, run, stages_run
from tests.support.tracking import assert_tracked, store_client


def write_run_info(path: Path, run_id: str) -> Path:
    path.write_text(json.dumps({"run_id": run_id, "experiment_id": "1"}))
    return path


def test_lost_run_reads_a_real_store(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    info = tmp_path / "mlflow_run.json"
    assert lost_run(info, uri) is None  # nothing trained yet: dvc repro trains anyway
    write_run_info(info, "0" * 32)
    assert "does not exist" in lost_run(info, uri)

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("heal", artifact_location=tmp_path.as_uri())
    kept = client.create_run(experiment).info.run_id
    deleted = client.create_run(experiment).info.run_id
    client.delete_run(deleted)

    assert lost_run(write_run_info(info, kept), uri) is None
    assert "does not hold" in lost_run(write_run_info(info, "f" * 32), uri)
    assert "has deleted" in lost_run(write_run_info(info, deleted), uri)
    info.write_text("{}")
    assert "names no MLflow run" in lost_run(info, uri)


@pytest.mark.integration
def test_make_run_retrains_when_the_store_is_gone(built_project: Path, tmp_path: Path) -> None:
    # A built project whose store is gone, as after `make clean-tracking`.
    root = clone_built(built_project, tmp_path / "project")
    assert not (root / "mlflow.db").exists()
    lost = json.loads((root / "models/mlflow_run.json").read_text())["run_id"]

    out = make(root, "run")
    log = out.stdout + out.stderr
    assert f"names MLflow run {lost}, but the store" in log
    assert "retraining with `dvc repro train`" in log
    assert {"train", "evaluate", "save"} <= set(stages_run(log))
    assert_tracked(store_client(root), root)  # a new run, metrics, and it is @champion

    # `make clean` keeps the history; the next `make run` has nothing to do.
    make(root, "clean")
    assert (root / "mlflow.db").exists() and (root / "mlartifacts").is_dir()
    out = make(root, "run")
    assert "retraining" not in out.stdout + out.stderr
    assert stages_run(out.stdout) == []

    cleaned = make(root, "clean-tracking")
    assert "Deleting every MLflow run" in cleaned.stdout
    assert not (root / "mlflow.db").exists() and not (root / "mlartifacts").exists()
    assert "up to date" in run(["dvc", "status"], cwd=root).stdout  # what DVC alone would see


@pytest.mark.integration
def test_a_sqlite_uri_with_options_is_one_store_for_every_command(built_project: Path) -> None:
    """`?timeout=60` is part of the URI, not of the file name: preflight, registry and
    reproduce all find the store `dvc repro` wrote."""
    from mlpipeline.tool_env import tool_env

    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{built_project / 'mlflow.db'}?timeout=60"})
    checked = run(["python", "-m", "mlpipeline", "check", "preflight"], built_project, env)
    assert "retraining" not in checked.stderr, checked.stderr
    listed = run(["python", "-m", "mlpipeline", "model", "list"], built_project, env)
    assert re.search(r"^\d+\s+champion\s", listed.stdout, re.M), listed.stdout
    refused = run(
        ["python", "-m", "mlpipeline", "model", "reproduce", "models:/no_such_model@champion"],
        built_project,
        env,
        check=False,
    )
    assert "no model version models:/no_such_model@champion" in refused.stderr, refused.stderr


@pytest.mark.integration
def test_a_retrain_after_a_change_to_loads_params_trains_once(
    built_project: Path, tmp_path: Path
) -> None:
    """The store is gone and load's params changed: train runs once, on the new dataset
    (issue 30, item 21: a forced train first trained on the stale one, then again)."""
    root = clone_built(built_project, tmp_path / "project")
    set_params(root, load__source="synthetic")
    out = run(["python", "-m", "mlpipeline", "check", "preflight"], cwd=root)
    ran = stages_run(out.stdout)
    assert ran.count("train") == 1, out.stdout[-3000:]
    assert ran.index("load") < ran.index("train")
    assert "up to date" in run(["dvc", "status"], cwd=root).stdout


NOTHING_TO_CHECK = "nothing to check"


def check(root: Path) -> str:
    """`make run`'s check (`mlpipeline check preflight`); its log (stderr). It must succeed."""
    done = run(["python", "-m", "mlpipeline", "check", "preflight"], cwd=root)
    return done.stderr


def leave_a_dead_run(root: Path) -> str:
    """A run RUNNING in the store, opened by a process of this host that is gone."""
    import subprocess

    from mlflow import MlflowClient

    from mlpipeline.tracking import store

    gone = subprocess.Popen(["true"])
    gone.wait()
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("iris_classification").experiment_id
    tags = {
        store.HOST_TAG: store.this_host(),
        store.PID_TAG: str(gone.pid),
        store.STARTED_TAG: "1.000",
    }
    return client.create_run(experiment, tags=tags).info.run_id


@pytest.mark.integration
@pytest.mark.slow
def test_the_check_skips_only_what_nothing_changed(built_project: Path, tmp_path: Path) -> None:
    """Checked once, the next check has nothing to do; a change to the lock, the store or the
    champion's files brings the full check back, which finds what changed."""
    root = clone_built(built_project, tmp_path / "project")
    run(["dvc", "repro", "--force", "--single-item", "train"], cwd=root)
    run(["dvc", "repro"], cwd=root)
    assert NOTHING_TO_CHECK not in check(root)
    assert NOTHING_TO_CHECK in check(root)

    # The lock: nothing else to see, the full check runs and stamps again.
    lock = root / "dvc.lock"
    lock.write_text(lock.read_text() + "# edited\n")
    assert NOTHING_TO_CHECK not in check(root)
    assert NOTHING_TO_CHECK in check(root)

    # The store: a run left RUNNING by a process that is gone is settled.
    dead = leave_a_dead_run(root)
    log = check(root)
    assert NOTHING_TO_CHECK not in log
    assert f"MLflow run {dead} was left RUNNING" in log
    assert NOTHING_TO_CHECK not in check(root)  # it wrote to the store: checked once more
    assert NOTHING_TO_CHECK in check(root)

    # The champion: its model's files lose one, the store is untouched.
    stamped = json.loads((root / ".dvc/tmp/preflight-verified.json").read_text())
    (folder,) = stamped["models"]
    (Path(folder) / "model.skops").unlink()
    done = run(["python", "-m", "mlpipeline", "check", "preflight"], cwd=root, check=False)
    assert NOTHING_TO_CHECK not in done.stderr
    assert "@champion (version 1) cannot be served" in done.stderr, done.stderr[-3000:]
