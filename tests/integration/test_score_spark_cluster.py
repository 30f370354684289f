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
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from mlpipeline.tool_env import tool_env
from tests.support.servers import free_port
from tests.support.tools import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 200_000
PARTS = 8
BAD = {10: ("sepal_length", np.nan), 50_000: ("petal_width", np.inf)}
BAD |= {120_000: ("petal_length", 1e300), 199_999: ("sepal_width", None)}


def spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


@dataclass
class Cluster:
    folder: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = tool_env({"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(self.folder)})
        with (self.folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(spark_class()), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def state(self) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)

    def wait_for(self, workers: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.state().get("aliveworkers") == workers:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        logs = "\n".join(p.read_text()[-2000:] for p in self.folder.glob("*.log"))
        pytest.fail(f"the cluster did not have {workers} live worker(s) in {timeout} s\n{logs}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A master alone; `workers` adds the two workers."""
    cluster = Cluster(tmp_path_factory.mktemp("spark-cluster"))
    master = "org.apache.spark.deploy.master.Master"
    cluster.start(
        "master",
        master,
        "--host",
        "127.0.0.1",
        "--port",
        str(cluster.port),
        "--webui-port",
        str(cluster.ui_port),
    )
    try:
        cluster.wait_for(workers=0)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def workers(cluster: Cluster) -> list[subprocess.Popen[bytes]]:
    started = []
    for number in (1, 2):
        work = cluster.folder / f"worker{number}"
        work.mkdir()
        started.append(
            cluster.start(
                f"worker{number}",
                "org.apache.spark.deploy.worker.Worker",
                cluster.url,
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "1g",
                "--work-dir",
                str(work),
                "--webui-port",
                str(free_port()),
            )
        )
    cluster.wait_for(workers=2)
    return started


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


def assert_same_results(spark_out: Path, local_out: Path) -> None:
    for name in ("predictions", "rejects"):
        want = pd.read_parquet(local_out / f"{name}.parquet")
        got = pd.read_parquet(spark_out / f"{name}.parquet").sort_values("row")
        assert list(got.columns) == list(want.columns)
        assert len(got) == len(want)
        for column in want.columns:
            if column.startswith("proba_"):  # bitwise
                assert (
                    want[column].to_numpy().view(np.int64) == got[column].to_numpy().view(np.int64)
                ).all()
            else:
                assert list(map(str, want[column])) == list(map(str, got[column])), column
    assert (spark_out / "drift.json").read_bytes() == (local_out / "drift.json").read_bytes()


def seconds_after(
    mark: str, args: list[str | Path], cwd: Path, env: dict[str, str]
) -> tuple[int, str, float]:
    """Run the command: its exit status, stderr, and the seconds from its line holding
    `mark` to its exit (what comes before, imports, the model's load and the driver JVM's
    start, follows the machine's load)."""
    process = subprocess.Popen(
        [str(arg) for arg in args], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    lines, asked = [], None
    for line in process.stderr:
        lines.append(line)
        if asked is None and mark in line:
            asked = time.monotonic()
    status = process.wait(timeout=600)
    assert asked is not None, "".join(lines)[-3000:]
    return status, "".join(lines), time.monotonic() - asked


def test_a_master_without_workers_fails_within_a_minute(
    built_project: Path, cluster: Cluster, batch: tuple[Path, Path], tmp_path: Path
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
    cluster: Cluster,
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
    assert_same_results(out, local_result)
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


def _start(args: list[str | Path], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as handle:
        return subprocess.Popen(
            [str(arg) for arg in args],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until(condition: Callable[[], bool], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {condition.__doc__}")
        time.sleep(0.1)


def test_a_killed_executor_is_replaced_and_the_results_are_the_same(
    built_project: Path,
    cluster: Cluster,
    workers: list[subprocess.Popen[bytes]],
    batch: tuple[Path, Path],
    local_result: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    args = score_args(batch[0], out, "--engine", "spark", "--chunk-rows", "5000")
    env = env_for(built_project) | {"SPARK_MASTER": cluster.url}
    driver = _start(args, built_project, env, tmp_path / "driver.log")
    try:

        def running() -> bool:
            """a task of the scoring job and a live executor"""
            return bool(_attempts(tmp_path)) and bool(_executors(workers))

        _wait_until(running)
        victim = _executors(workers)[0]
        victim.kill()
        assert driver.wait(timeout=600) == 3, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):  # a driver that failed, and its JVM
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert not victim.is_running()
    assert_same_results(out, local_result)


def test_a_killed_driver_leaves_nothing_and_the_next_run_is_clean(
    built_project: Path,
    cluster: Cluster,
    workers: list[subprocess.Popen[bytes]],
    batch: tuple[Path, Path],
    local_result: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    args = score_args(batch[0], out, "--engine", "spark", "--chunk-rows", "5000")
    env = env_for(built_project) | {"SPARK_MASTER": cluster.url}
    driver = _start(args, built_project, env, tmp_path / "driver.log")
    try:

        def running() -> bool:
            """a task of the scoring job"""
            return bool(_attempts(tmp_path))

        _wait_until(running)
        driver.kill()
        driver.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):  # the driver's JVM, if it outlived it
            os.killpg(driver.pid, signal.SIGKILL)
    assert not out.exists()  # nothing half-written where the results go
    assert list(tmp_path.glob(".out.*.tmp"))  # the staging folder, left for the next run

    proc = run(args, cwd=built_project, env=env, check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "removed leftovers of an interrupted write" in proc.stderr
    assert not list(tmp_path.glob(".out.*"))
    assert_same_results(out, local_result)
