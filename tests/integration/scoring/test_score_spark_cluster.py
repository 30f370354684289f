"""`mlpipeline model score --engine spark` on a standalone Spark cluster on 127.0.0.1: a master
and two one-core workers started with pyspark's `spark-class` on free ports, torn down after.

The module's one cluster serves every test, in order: a master with no workers first, then
a 200k-row batch (a folder of Parquet parts, bad rows, a shifted column) scored as the
local engine scores the same rows, then the same batch with an executor killed mid-job (Spark
runs its tasks again; the results are the same) and with the driver killed (nothing is
written; the next run starts clean).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from mlpipeline.tool_env import tool_env
from tests.support.spark import (
    ClusterError,
    StandaloneCluster,
    assert_same_scores,
    seconds_after,
)
from tests.support.tools import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 200_000
PARTS = 8
BAD = {10: ("sepal_length", np.nan), 50_000: ("petal_width", np.inf)}
BAD |= {120_000: ("petal_length", 1e300), 199_999: ("sepal_width", None)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A master alone; `workers` adds the two workers."""
    cluster = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster"), tool_env())
    try:
        cluster.start_master()
        yield cluster
    except ClusterError as exc:
        pytest.fail(str(exc))
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def workers(cluster: StandaloneCluster) -> list[subprocess.Popen[bytes]]:
    try:
        return cluster.add_workers(2)
    except ClusterError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def batch(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """200k rows as a folder of Parquet parts, and the same rows as one file."""
    raw = pd.read_csv(built_project / "data" / "raw" / "dataset.csv").drop(columns=["target"])
    rng = np.random.default_rng(7)
    rows = raw.sample(ROWS, replace=True, random_state=7).reset_index(drop=True)
    rows[raw.columns] += rng.normal(0, 0.05, size=(ROWS, len(raw.columns)))
    rows["petal_length"] += 1.0  # the gate fails on petal_length
    rows.insert(0, "id", [f"r{i:06d}" for i in range(ROWS)])
    for index, (column, value) in BAD.items():
        rows.loc[index, column] = value
    folder = tmp_path_factory.mktemp("spark-batch")
    parts = folder / "lake"
    parts.mkdir()
    for number, part in enumerate(np.array_split(np.arange(ROWS), PARTS)):
        rows.iloc[part].to_parquet(parts / f"part-{number:05d}.parquet", index=False)
    single = folder / "batch.parquet"
    rows.to_parquet(single, index=False)
    return parts, single


def env_for(project: Path) -> dict[str, str]:
    return tool_env(
        {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", "SPARK_LOCAL_IP": "127.0.0.1"}
    )


def score_args(source: Path, out: Path, *extra: str) -> list[str | Path]:
    return ["python", "-m", "mlpipeline", "model", "score", source, "--output", out, *extra]


@pytest.fixture(scope="module")
def local_result(
    built_project: Path, batch: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The local engine's results for the same rows."""
    out = tmp_path_factory.mktemp("local") / "out"
    proc = run(
        score_args(batch[1], out), cwd=built_project, env=env_for(built_project), check=False
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    return out


def test_a_master_without_workers_fails_within_a_minute(
    built_project: Path, cluster: StandaloneCluster, batch: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = score_args(batch[0], out, "--engine", "spark", "--spark-master", cluster.url)
    waiting = "waiting up to 30 s for an executor"
    status, stderr, seconds = seconds_after(waiting, args, built_project, env_for(built_project))
    assert status == 1, stderr[-3000:]
    assert seconds < 60
    errors = [line for line in stderr.splitlines() if "[score] ERROR" in line]
    assert len(errors) == 1, stderr[-3000:]
    assert f"the master {cluster.url} has no workers" in errors[0]
    assert "org.apache.spark.deploy.worker.Worker" in errors[0]
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_a_cluster_scores_200k_rows_as_the_local_engine_does(
    built_project: Path,
    cluster: StandaloneCluster,
    workers: list[subprocess.Popen[bytes]],
    batch: tuple[Path, Path],
    local_result: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    args = score_args(batch[0], out, "--engine", "spark", "--chunk-rows", "10000")
    env = env_for(built_project) | {"SPARK_MASTER": cluster.url}
    proc = run(args, cwd=built_project, env=env, check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert_same_scores(out, local_result)
    assert len(list((out / "predictions.parquet").glob("part-*.parquet"))) >= 2

    summary = json.loads((out / "summary.json").read_text())
    run_id = summary["scoring_run_id"]
    code = (
        f"import mlflow, json; r = mlflow.get_run({run_id!r}); "
        "print(json.dumps({'params': r.data.params, 'metrics': r.data.metrics}))"
    )
    logged = json.loads(
        run(["python", "-c", code], cwd=built_project, env=env).stdout.strip().splitlines()[-1]
    )
    assert logged["params"]["engine"] == "spark"
    assert logged["params"]["spark_master"] == cluster.url
    assert logged["params"]["spark_executors"] == "2"
    assert int(logged["params"]["spark_partitions"]) >= 2
    assert logged["metrics"]["rows"] == ROWS
    assert logged["metrics"]["rows_per_second"] > 0


def _attempts(folder: Path) -> list[Path]:
    return list(folder.glob(".out.*.tmp/_attempts/*"))


def _executors(workers: list[subprocess.Popen[bytes]]) -> list[psutil.Process]:
    found = []
    for worker in workers:
        for child in psutil.Process(worker.pid).children(recursive=True):
            try:
                if "CoarseGrainedExecutorBackend" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:  # gone, or a zombie not yet reaped
                continue
    return found


def _wait_until(condition: Callable[[], bool], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {condition.__doc__}")
        time.sleep(0.1)


def _kill_test_scoring(
    project: Path, cluster: StandaloneCluster, source: Path, out: Path
) -> tuple[list[str | Path], dict[str, str]]:
    """The kill tests' scoring, its command and environment: small chunks, a longer job."""
    args = score_args(source, out, "--engine", "spark", "--chunk-rows", "5000")
    return args, env_for(project) | {"SPARK_MASTER": cluster.url}


@contextlib.contextmanager
def _driver_mid_job(
    args: list[str | Path], project: Path, env: dict[str, str], folder: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The scoring started in a process group of its own (its log in `folder`), handed over
    once a task of its job has started; the group (the driver's JVM too) killed after."""
    with (folder / "driver.log").open("w") as log:
        driver = subprocess.Popen(
            [str(arg) for arg in args],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def running() -> bool:
            """a task of the scoring job"""
            return bool(_attempts(folder))

        _wait_until(running)
        yield driver
    finally:
        with contextlib.suppress(ProcessLookupError):  # a driver that failed, and its JVM
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()


def test_a_killed_executor_is_replaced_and_the_results_are_the_same(
    built_project: Path,
    cluster: StandaloneCluster,
    workers: list[subprocess.Popen[bytes]],
    batch: tuple[Path, Path],
    local_result: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    args, env = _kill_test_scoring(built_project, cluster, batch[0], out)
    with _driver_mid_job(args, built_project, env, tmp_path) as driver:
        victims = _executors(workers)
        assert victims, "a task runs, so an executor is up"
        victims[0].kill()
        assert driver.wait(timeout=600) == 3, (tmp_path / "driver.log").read_text()[-3000:]
    assert not victims[0].is_running()
    assert_same_scores(out, local_result)


def test_a_killed_driver_leaves_nothing_and_the_next_run_is_clean(
    built_project: Path,
    cluster: StandaloneCluster,
    workers: list[subprocess.Popen[bytes]],
    batch: tuple[Path, Path],
    local_result: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    args, env = _kill_test_scoring(built_project, cluster, batch[0], out)
    with _driver_mid_job(args, built_project, env, tmp_path) as driver:
        driver.kill()
        driver.wait()
    assert not out.exists()  # nothing half-written where the results go
    assert list(tmp_path.glob(".out.*.tmp"))  # the staging folder, left for the next run

    proc = run(args, cwd=built_project, env=env, check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "removed leftovers of an interrupted write" in proc.stderr
    assert not list(tmp_path.glob(".out.*"))
    assert_same_scores(out, local_result)
