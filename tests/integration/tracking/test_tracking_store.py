"""The tracking store under real use: every run lands, stays loadable, never stays RUNNING.

Real `dvc` CLI, real SQLite stores, a real (tiny) hung HTTP server; faults are injected
with real file systems (tmpfs, read-only bind mounts) and real processes.
"""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import clone_built
from tests.support.tools import decision, run, run_queue
from tests.support.tracking import (
    EXPERIMENT,
    MODEL,
    RUN_OUTPUTS,
    client_for,
    load_and_predict,
    running_runs,
    snapshot,
    start_train,
)

pytestmark = pytest.mark.integration


def assert_every_model_loads(uri: str, db_folder: Path, trees: set[str]) -> None:
    """Each experiment has a run, its artifacts beside the database, and loadable models."""
    client = client_for(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    artifacts = (db_folder / "mlartifacts").as_uri()
    assert experiment.artifact_location.startswith(artifacts)
    runs = client.search_runs([experiment.experiment_id])
    by_trees = {r.data.params["n_estimators"]: r for r in runs}
    assert trees <= set(by_trees), f"runs missing: {trees - set(by_trees)}"
    expected = ["setosa", "versicolor", "virginica"]
    for name in trees:
        tracked = by_trees[name]
        assert tracked.info.status == "FINISHED"
        assert tracked.info.artifact_uri.startswith(artifacts)
        # The run's classifier takes scaled features: it loads and predicts known classes.
        assert set(load_and_predict(uri, f"runs:/{tracked.info.run_id}/model")) <= set(expected)
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) >= len(trees)
    for version in versions:
        assert load_and_predict(uri, f"models:/{MODEL}/{version.version}") == expected
    # Experiments outside the workspace register but do not compete for the alias
    # (save.experiments_compete: false), so only the versions are served here.
    assert "champion" not in client.get_registered_model(MODEL).aliases


def test_relative_sqlite_uri_under_a_temp_experiment_lands_in_the_repository(
    baseline: Path,
) -> None:
    """MLflow's documented `sqlite:///mlflow.db` with `dvc exp run --temp`: nothing is lost."""
    env = tool_env({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"})
    run(["dvc", "exp", "run", "--temp", "-S", "train.n_estimators=11"], cwd=baseline, env=env)
    assert (baseline / "mlflow.db").is_file()
    assert not (baseline / "mlruns").exists()
    assert_every_model_loads(f"sqlite:///{baseline / 'mlflow.db'}", baseline, {"11"})


@pytest.mark.slow
@pytest.mark.parametrize("form", ["unset", "relative", "absolute"])
def test_queued_and_temp_experiments_on_a_fresh_store_all_land(
    baseline: Path, tmp_path: Path, form: str
) -> None:
    """Two queued experiments on two workers create the store together, then a --temp one."""
    db = {
        "unset": baseline / "mlflow.db",
        "relative": baseline / "stores" / "team.db",
        "absolute": tmp_path / "elsewhere" / "m.db",
    }[form]
    given = {
        "unset": None,
        "relative": "sqlite:///stores/team.db",
        "absolute": f"sqlite:///{db}",
    }[form]
    env = tool_env({"MLFLOW_TRACKING_URI": given} if given else {})
    for trees in (11, 12):
        run(
            ["dvc", "exp", "run", "--queue", "-S", f"train.n_estimators={trees}"],
            cwd=baseline,
            env=env,
        )
    run_queue(baseline, env, jobs=2)
    run(["dvc", "exp", "run", "--temp", "-S", "train.n_estimators=13"], cwd=baseline, env=env)

    assert not (baseline / "mlruns").exists()
    assert_every_model_loads(f"sqlite:///{db}", db.parent, {"11", "12", "13"})


def test_a_killed_stage_does_not_leave_its_run_running(baseline: Path) -> None:
    """kill -9 train while its run is open; the next stage marks that run KILLED and says so."""
    db = baseline / "mlflow.db"
    victim = start_train(baseline, tool_env())
    try:
        deadline = time.monotonic() + 120
        while not (open_runs := running_runs(db)):
            assert victim.poll() is None, "train ended before its run could be caught open"
            assert time.monotonic() < deadline, "train never opened a run"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait()
    (orphan,) = open_runs
    store = client_for(f"sqlite:///{db}")
    assert store.get_run(orphan).info.status == "RUNNING"

    proc = run(["dvc", "repro", "--force", "--single-item", "train"], cwd=baseline)
    assert f"MLflow run {orphan} was left RUNNING by process {victim.pid}" in proc.stderr
    assert store.get_run(orphan).info.status == "KILLED"
    assert running_runs(db) == []


def test_a_run_an_orchestrator_started_is_reaped_when_its_process_dies(tmp_path: Path) -> None:
    """ZenML's MLflow tracker starts the run itself; the step's logging tags it all the same."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    killed = (
        "import os, signal, mlflow\n"
        "from mlpipeline.tracking import runs\n"
        f"runs.configure({EXPERIMENT!r})\n"
        "mlflow.start_run()  # as an experiment tracker does, without our tags\n"
        "with runs.mlflow_run() as run:\n"
        "    print(run.info.run_id, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = tool_env({"MLFLOW_TRACKING_URI": uri})
    proc = run(["python", "-c", killed], cwd=tmp_path, env=env, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    orphan = proc.stdout.strip()
    assert client_for(uri).get_run(orphan).info.status == "RUNNING"

    reaper = (
        "import logging; logging.basicConfig()\n"
        f"from mlpipeline.tracking import runs; runs.configure({EXPERIMENT!r})"
    )
    reaped = run(["python", "-c", reaper], cwd=tmp_path, env=env)
    assert f"MLflow run {orphan} was left RUNNING by process" in reaped.stderr
    assert client_for(uri).get_run(orphan).info.status == "KILLED"


def retrain(project: Path, uri: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`dvc repro --force` of train alone, logging to `uri`; it may fail."""
    return run(
        ["dvc", "repro", "--force", "--single-item", "train"],
        cwd=project,
        env=tool_env({"MLFLOW_TRACKING_URI": uri}),
        check=False,
        timeout=timeout,
    )


def the_one_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The failed stage's error: exactly one `[train] ERROR` line, no traceback."""
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("[train] ERROR")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return errors[0]


def test_a_stage_that_fails_writing_its_outputs_ends_its_run_failed(baseline: Path) -> None:
    """A directory where train's model file goes, then where metrics.json goes."""
    run(["dvc", "repro", "--force", "--single-item", "train"], cwd=baseline)
    store = client_for(f"sqlite:///{baseline / 'mlflow.db'}")
    run_info = baseline / "models/mlflow_run.json"
    trained = json.loads(run_info.read_text())["run_id"]

    metrics = baseline / "metrics/metrics.json"
    metrics.unlink()
    metrics.mkdir()
    proc = run(["dvc", "repro", "--single-item", "evaluate"], cwd=baseline, check=False)
    assert proc.returncode != 0
    assert store.get_run(trained).info.status == "FAILED"  # evaluate resumed train's run
    assert metrics.is_dir()

    before = run_info.read_bytes()
    classifier = baseline / "models/classifier.pkl"
    classifier.unlink()
    classifier.mkdir()
    proc = run(["dvc", "repro", "--force", "--single-item", "train"], cwd=baseline, check=False)
    assert proc.returncode != 0
    assert run_info.read_bytes() == before
    assert classifier.is_dir()
    runs = store.search_runs([store.get_experiment_by_name(EXPERIMENT).experiment_id])
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.info.run_id != trained
    assert newest.info.status == "FAILED"


class HangingTrackingServer(http.server.BaseHTTPRequestHandler):
    """Answers /health like MLflow; every API call hangs until the test ends."""

    release = threading.Event()

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
            return
        self.release.wait(120)

    do_POST = do_GET  # noqa: N815 (http.server names handlers so)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hanging_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HangingTrackingServer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        HangingTrackingServer.release.set()
        server.shutdown()
        server.server_close()


def test_a_server_that_hangs_fails_the_stage_within_30_s(
    built_project: Path, tmp_path: Path, hanging_server: str
) -> None:
    project = clone_built(built_project, tmp_path / "project")
    before = snapshot(project, RUN_OUTPUTS)
    start = time.monotonic()
    proc = retrain(project, hanging_server, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert hanging_server in proc.stderr
    assert elapsed < 30, f"took {elapsed:.0f} s to give up"
    assert snapshot(project, RUN_OUTPUTS) == before


def create_store(project: Path, uri: str) -> None:
    """Open the store once, as a stage does, so it exists with its experiment."""
    code = f"from mlpipeline.tracking import runs as tracking; tracking.configure({EXPERIMENT!r})"
    run(["python", "-c", code], cwd=project, env=tool_env({"MLFLOW_TRACKING_URI": uri}))


def fill_disk(folder: Path) -> None:
    """Write until the file system has no byte left."""
    with (folder / "filler").open("wb", buffering=0) as filler:
        for chunk in (b"\0" * 65536, b"\0"):
            try:
                while True:
                    filler.write(chunk)
            except OSError:
                pass


def broken_store(kind: str, folder: Path, project: Path, mounts: list[Path]) -> str:
    """A store of `kind` in `folder`; returns its URI."""
    folder.mkdir(parents=True)
    db = folder / "mlflow.db"
    uri = f"sqlite:///{db}"
    if kind == "corrupt":
        db.write_bytes(b"this is not a database, it was overwritten\n" * 200)
    elif kind == "full":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], check=True)
        mounts.append(folder)
        create_store(project, uri)
        fill_disk(folder)
    elif kind == "read-only":
        create_store(project, uri)
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        mounts.append(folder)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
    return uri


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("corrupt", "file is not a database"),
        pytest.param("full", "disk is full", marks=pytest.mark.slow),
        pytest.param("read-only", "read-only", marks=pytest.mark.slow),
    ],
)
def test_a_broken_store_fails_in_one_line(
    built_project: Path, tmp_path: Path, mounts: list[Path], kind: str, cause: str
) -> None:
    project = clone_built(built_project, tmp_path / "project")
    uri = broken_store(kind, tmp_path / "store", project, mounts)
    before = snapshot(project, RUN_OUTPUTS)
    error = the_one_error(retrain(project, uri))
    assert uri in error or str(tmp_path / "store") in error, error
    assert cause in error.lower()
    assert snapshot(project, RUN_OUTPUTS) == before


@pytest.mark.slow
def test_a_store_locked_by_another_process_fails_in_one_line(
    built_project: Path, tmp_path: Path
) -> None:
    project = clone_built(built_project, tmp_path / "project")
    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    create_store(project, uri)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        before = snapshot(project, RUN_OUTPUTS)
        proc = retrain(project, uri)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    error = the_one_error(proc)
    assert uri in error and "database is locked" in error
    assert snapshot(project, RUN_OUTPUTS) == before


@pytest.mark.slow
def test_a_champion_whose_model_was_deleted_gives_way_to_one_that_serves(baseline: Path) -> None:
    """The champion's artifacts are deleted: the next training takes the alias, and it serves."""
    uri = f"sqlite:///{baseline / 'mlflow.db'}"
    run(["dvc", "exp", "run", "-S", "train.n_estimators=11"], cwd=baseline)
    client = client_for(uri)
    lost = client.get_model_version_by_alias(MODEL, "champion")
    model_id = lost.source.removeprefix("models:/")
    artifacts = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    assert (artifacts / "MLmodel").is_file()
    shutil.rmtree(artifacts)

    proc = run(["dvc", "exp", "run", "-S", "train.n_estimators=12"], cwd=baseline)
    assert f"{MODEL}@champion (version {lost.version}) cannot be loaded" in proc.stderr
    assert f"champion version {lost.version}'s model cannot be loaded" in decision(proc)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert int(champion.version) == int(lost.version) + 1
    expected = ["setosa", "versicolor", "virginica"]
    assert load_and_predict(uri, f"models:/{MODEL}@champion") == expected
