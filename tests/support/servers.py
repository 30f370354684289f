"""Servers a test starts on a free 127.0.0.1 port and stops afterwards: any command with its
health URL (`serving`), a plain `mlflow server` on SQLite, and the team script's server."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.process import free_port, start_logged
from tests.support.repository import REPO


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Poll an HTTP URL until it answers (any status), failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"{process.args[0]} exited {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serving(
    command: Sequence[str | Path],
    health: str,
    log: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 180,
) -> Iterator[subprocess.Popen]:
    """A server process, its output in LOG: yielded once HEALTH (a URL) answers, stopped
    after; fails early, with the log's tail, if it exits before."""
    process = start_logged(command, env, log, cwd)
    try:
        wait_for(health, process, log, timeout=timeout)
        yield process
    finally:
        stop(process)


def _one_local_worker(port: int, host: str = "127.0.0.1") -> list[str]:
    """`mlflow server`'s options for one worker on HOST:PORT."""
    return ["--host", host, "--port", str(port), "--workers", "1"]


@contextmanager
def mlflow_server_in(folder: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A real `mlflow server` on a free 127.0.0.1 port, one worker, its SQLite store
    (folder/server.db), artifacts and log (server.log) in FOLDER: its port and process."""
    port = free_port()
    command = [
        "mlflow",
        "server",
        *_one_local_worker(port),
        "--backend-store-uri",
        f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination",
        str(folder / "server-artifacts"),
    ]
    health = f"http://127.0.0.1:{port}/health"
    with serving(command, health, folder / "server.log", tool_env(), timeout=120) as process:
        yield port, process


TEAM_SERVER_SCRIPT = REPO / "docker" / "mlflow-team-server.sh"


@contextmanager
def team_server_in(
    folder: Path, settings: Mapping[str, str], *args: str, host: str = "127.0.0.1"
) -> Iterator[tuple[str, subprocess.Popen]]:
    """docker/mlflow-team-server.sh (MLflow's basic-auth app as the compose service starts
    it) on a free port of HOST (127.0.0.1) with one worker: SETTINGS (store, admin, S3) over
    the tools' environment and a new Flask secret; TMPDIR, working folder and log (mlflow.log)
    in FOLDER; ARGS go to `mlflow server`. Yields its URL and the script's process."""
    port = free_port()
    url = f"http://{host}:{port}"
    env = tool_env(
        {"MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(), "TMPDIR": str(folder), **settings}
    )
    command = [
        "sh",
        TEAM_SERVER_SCRIPT,
        *_one_local_worker(port, host),
        *args,
    ]
    with serving(command, f"{url}/health", folder / "mlflow.log", env, cwd=folder) as process:
        yield url, process
