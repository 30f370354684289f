"""Running the real tools in a copy: a command that fails with its output, `make`, the
experiment queue, and what their output says (the stages run, the save stage's decision)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.process import captured, failure
from tests.support.repository import REPO, use_session_venv


def run(
    args: list[str | Path],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected exit code fail with its output."""
    proc = captured(args, cwd, env, timeout)
    if check and proc.returncode != 0:
        pytest.fail(failure(args, proc, 8000))
    return proc


def stages_run(output: str) -> list[str]:
    """The stages `dvc repro` / `dvc exp run` ran, in order, from its output."""
    return re.findall(r"Running stage '([^']+)'", output)


def decision(proc: subprocess.CompletedProcess[str]) -> str:
    """The save stage's `registered ... version N; now/not @champion: why` line."""
    lines = [line for line in proc.stderr.splitlines() if "[save] INFO registered" in line]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def run_queue(
    project: Path, env: Mapping[str, str] | None = None, jobs: int = 1, timeout: float = 420
) -> str:
    """`dvc queue start -j <jobs>`, wait until nothing is queued or running; fail on a failure.

    DVC's workers inherit `queue start`'s stdout and stderr, so with captured pipes the call
    would only return once every worker has exited, and with `-j 2` DVC's monitor sometimes
    loses a worker's shutdown message, leaving that worker idle for good. So the start writes
    to a file, the queue is judged by `dvc queue status`, and once it is done the workers are
    told to stop (`dvc queue stop`: they would otherwise idle DVC's 10-20 s timeout away),
    given 20 s to exit and then killed.
    """
    env = dict(env) if env is not None else tool_env()
    log = project / ".dvc" / "tmp" / "queue-start.log"
    with log.open("w") as out:
        start = subprocess.run(
            ["dvc", "queue", "start", "-j", str(jobs)],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    if start.returncode != 0:
        pytest.fail(f"dvc queue start exited {start.returncode}\n{log.read_text()}")
    try:
        deadline = time.monotonic() + timeout
        while not _queue_idle(status := run(["dvc", "queue", "status"], cwd=project, env=env)):
            if time.monotonic() > deadline:
                pytest.fail(f"the queue did not finish in {timeout:.0f} s:\n{status.stdout}")
            time.sleep(3)
    finally:
        run(["dvc", "queue", "stop"], cwd=project, env=env, check=False)
        _end_queue_workers(project)
    if "Failed" in status.stdout:
        logs = [
            run(["dvc", "queue", "logs", line.split()[0]], cwd=project, env=env, check=False)
            for line in status.stdout.splitlines()
            if "Failed" in line
        ]
        pytest.fail(f"{status.stdout}\n" + "\n".join(p.stdout[-3000:] for p in logs))
    return status.stdout


def _queue_idle(status: subprocess.CompletedProcess[str]) -> bool:
    return re.search(r"\b(Queued|Running)\b", status.stdout) is None


def _end_queue_workers(project: Path, grace: float = 20) -> None:
    """Wait `grace` seconds for the project's queue workers to exit, then kill the rest."""
    deadline = time.monotonic() + grace
    for pid_file in (project / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.pid"):
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        while _is_queue_worker(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _is_queue_worker(pid):
            os.kill(pid, signal.SIGKILL)


def _is_queue_worker(pid: int) -> bool:
    """Whether `pid` is a live `dvc exp queue-worker` (a pid file can outlive its process)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return b"queue-worker" in cmdline and state != "Z"


def make(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 1200,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `make ARGS` in a copy, on this session's venv and uv (no second `uv sync`)."""
    use_session_venv(root)
    found = [os.environ.get("UV"), shutil.which("uv"), str(REPO / ".tools" / "bin" / "uv")]
    uv = next((path for path in found if path and Path(path).is_file()), None)
    # Without a uv anywhere, the copy's Makefile bootstraps its own, as a user's would. `-o`
    # keeps make from syncing the linked venv, which would reinstall the project from the copy.
    # `--no-print-directory`: under another make (CI's `make test-slow`) make would frame the
    # output with "Entering directory" lines.
    command = ["make", "--no-print-directory", "-o", ".venv/.synced", *args]
    command += [f"UV={uv}"] if uv else []
    # `uv run` (the Makefile's RUN) would sync the linked venv too: the project reinstalled
    # from the copy, the `mlpipeline` script's first line naming the copy's python, gone
    # with the copy (test_cli then failed on the session's own script). Instead the copy's
    # package comes first on the path, so `mlpipeline` runs the copy's code on the copy.
    env = {**(env if env is not None else tool_env()), "UV_NO_SYNC": "1", "PYTHONPATH": str(root)}
    return run(command, cwd=root, env=env, timeout=timeout, check=check)
