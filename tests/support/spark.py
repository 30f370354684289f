"""Spark for the tests and the bench: a standalone cluster on 127.0.0.1 (a master and one-core
workers started with pyspark's `spark-class` on free ports, each in its own process group,
their logs in one folder, torn down by `stop()`), a command timed from one of its log lines,
and the comparison of Spark's results with the local engine's.

tests/integration/scoring/test_score_spark_cluster.py starts the master alone (a master without
workers is one of its cases) and adds the workers after; benchmarks/bench.py uses
`standalone_cluster`, which starts both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import free_port

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# Seconds for a JVM to start and register on a busy machine.
START_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0


class ClusterError(RuntimeError):
    """The cluster did not come up as asked; the message carries the tail of its logs."""


def spark_class() -> Path:
    """pyspark's own launcher of Spark's JVM classes."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


@dataclass
class StandaloneCluster:
    """A master on 127.0.0.1 and the workers added to it; `env` is the daemons' environment
    (the project's tools first, so executors run the project's Python)."""

    folder: Path
    env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {**self.env, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(self.folder)}
        with (self.folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(spark_class()), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its JVM and executors go with its group
            )
        self.processes.append(process)
        return process

    def start_master(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start(
            "master",
            MASTER_CLASS,
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--webui-port", str(self.ui_port)),
        )
        self.wait_for(workers=0)

    def add_workers(self, count: int, memory: str = "1g") -> list[subprocess.Popen[bytes]]:
        """`count` more one-core workers; returns once the master lists them all alive."""
        started = []
        first = len(self.processes)
        for number in range(first, first + count):
            work = self.folder / f"worker{number}"
            work.mkdir()
            started.append(
                self._start(
                    f"worker{number}",
                    WORKER_CLASS,
                    self.url,
                    *("--host", "127.0.0.1", "--cores", "1", "--memory", memory),
                    *("--work-dir", str(work), "--webui-port", str(free_port())),
                )
            )
        self.wait_for(workers=len(self.processes) - 1)  # every process but the master
        return started

    def state(self) -> dict[str, object]:
        """The master's JSON status page."""
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)

    def wait_for(self, workers: int, timeout: float = START_TIMEOUT) -> None:
        """Until the master answers and lists `workers` live workers; a ClusterError after
        `timeout` seconds or as soon as one of the daemons exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = [p.args[1] for p in self.processes if p.poll() is not None]
            if exited:
                raise ClusterError(f"{exited[0]} exited\n{self.logs()}")
            try:
                if self.state().get("aliveworkers") == workers:
                    return
            except (OSError, ValueError):  # not listening yet, or an empty page while it starts
                pass
            time.sleep(0.5)
        raise ClusterError(
            f"no master with {workers} live worker(s) in {timeout:.0f} s {self.logs()}"
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
            for path in sorted(self.folder.glob("*.log"))
        )

    def stop(self) -> None:
        """SIGTERM to every daemon's group (workers first), SIGKILL to any still up after
        STOP_TIMEOUT seconds."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def standalone_cluster(
    folder: Path, env: Mapping[str, str], workers: int = 2
) -> Iterator[StandaloneCluster]:
    """A master and `workers` one-core workers, stopped on the way out."""
    cluster = StandaloneCluster(folder, env)
    try:
        cluster.start_master()
        cluster.add_workers(workers)
        yield cluster
    finally:
        cluster.stop()


def seconds_after(
    mark: str, args: list[str | Path], cwd: Path, env: dict[str, str]
) -> tuple[int, str, float]:
    """Run the command: its exit status, stderr, and the seconds from its first line holding
    `mark` to its exit (what comes before, imports, the model's load and the driver JVM's
    start, follows the machine's load; the 60 s promises are about what follows)."""
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


def assert_same_scores(spark_out: Path, local_out: Path) -> None:
    """Spark's predictions and rejects (Parquet datasets) are the local engine's (CSV or
    Parquet) row for row, probabilities bit for bit, and drift.json is the same to the byte."""
    import numpy as np
    import pandas as pd

    for name in ("predictions", "rejects"):
        if (local_out / f"{name}.csv").exists():
            want = pd.read_csv(local_out / f"{name}.csv", dtype={"id": str})
        else:
            want = pd.read_parquet(local_out / f"{name}.parquet")
        got = pd.read_parquet(spark_out / f"{name}.parquet").sort_values("row")
        assert list(got.columns) == list(want.columns), name
        assert len(got) == len(want), name
        for column in want.columns:
            if column.startswith("proba_"):  # bitwise, not approximately
                have = got[column].to_numpy(dtype=float).view(np.int64)
                assert (want[column].to_numpy(dtype=float).view(np.int64) == have).all(), column
            else:
                assert list(map(str, want[column])) == list(map(str, got[column])), column
    assert (spark_out / "drift.json").read_bytes() == (local_out / "drift.json").read_bytes()
