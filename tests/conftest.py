"""Shared fixtures: a throwaway git copy of the repository and a clean environment for the tools."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from mlpipeline import sandbox
from mlpipeline.sandbox import VENV_BIN, tool_env

REPO = Path(__file__).resolve().parent.parent


# Suites that run only when a `-m` expression names them (`make test-docker`, `make
# test-slow`): a `-m` on the command line replaces addopts' `-m 'not docker and not slow'`,
# so `pytest -m integration` would otherwise also run the Docker tests (which need the
# images `make test-docker` builds) and the long workflow tests.
EXPLICIT_MARKERS = ("docker", "slow")

# The modules that take longest (CI's duration report), longest first. They run first, and
# the rest in collection order (integration modules, then the second-long unit tests), so
# that under `make test`'s two pytest-xdist workers (`--dist loadscope
# --no-loadscope-reorder`) no worker is left alone with a long module at the end of a suite.
# xdist's own order (most tests first) started the slow suite's three longest tests, one
# test each, last. Update the list when the duration report shows a new long module.
LONGEST_FIRST = (
    # make test-slow: the sweep's Ray cluster and trials, a fresh clone's make run, the Spark
    # cluster's kills; one long test each (~230, ~160, ~160 s), then the team setup's 14
    "tests/integration/test_sweep.py",
    "tests/integration/test_fresh_clone.py",
    "tests/integration/test_score_spark_cluster.py",
    "tests/integration/test_user_workflows.py",
    "tests/integration/test_several_machines.py",
    "tests/integration/test_setup_paths.py",
    "tests/integration/test_team_setup.py",
    # make test: a champion rebuilt from scratch, the ZenML runs, the fault injections
    "tests/integration/test_reproduce.py",
    "tests/integration/test_zenml_pipeline.py",
    "tests/integration/test_faults.py",
)


# What the evaluate stage writes (dvc.yaml), checked by the tests of its writes and of lineage.
EVALUATE_OUTPUTS = [
    "metrics/metrics.json",
    "plots/predictions.csv",
    "plots/feature_importance.csv",
    "plots/roc",
    "plots/precision_recall",
    "plots/images",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expression = config.getoption("markexpr") or ""
    unasked = [name for name in EXPLICIT_MARKERS if name not in expression]
    deselected = [item for item in items if any(item.get_closest_marker(m) for m in unasked)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    rank = {module: place for place, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def run(
    args: list[str | Path],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected exit code fail with its output."""
    proc = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=dict(env) if env is not None else tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-8000:]}\n--- stderr\n{proc.stderr[-8000:]}"
        )
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
    to a file, the queue is judged by `dvc queue status`, and workers still alive when it is
    done are given DVC's 10 s idle timeout and then killed.
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


def copy_repository(dest: Path) -> Path:
    """A git copy of the working tree on the Iris defaults, with the user's DVC-tracked data.

    DVC outputs and the embedded MLflow store are git-ignored, so the copy starts clean.
    Whatever the user did to params.yaml or data/external/, the copy runs the template's Iris
    task (tests/iris_params.yaml), so the suite tests the machinery on every user's project.
    """
    return sandbox.copy_repository(REPO, dest, tool_env())


def set_params(root: Path, **changes: object) -> None:
    """Edit params.yaml like a user would: `section__key=value`."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [str(arg) for arg in command],
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(health, process, log, timeout=timeout)
        yield process
    finally:
        stop(process)


@contextmanager
def mlflow_server_in(folder: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """A real `mlflow server` on a free 127.0.0.1 port, one worker, its SQLite store
    (folder/server.db), artifacts and log (server.log) in FOLDER: its port and process."""
    port = free_port()
    command = ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
               "--artifacts-destination", str(folder / "server-artifacts")]  # fmt: skip
    health = f"http://127.0.0.1:{port}/health"
    with serving(command, health, folder / "server.log", tool_env(), timeout=120) as process:
        yield port, process


def use_session_venv(root: Path) -> None:
    """Link a copy's `.venv` to this session's venv; git ignores the link as it does `.venv/`."""
    venv = root / ".venv"
    if not venv.is_symlink():
        venv.symlink_to(VENV_BIN.parent, target_is_directory=True)
    exclude = root / ".git" / "info" / "exclude"
    excluded = exclude.read_text().splitlines() if exclude.exists() else []
    if "/.venv" not in excluded:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("".join(f"{line}\n" for line in [*excluded, "/.venv"]))


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
    # `uv run` syncs too: it would reinstall the project from the copy into this session's
    # venv (its editable .pth and console scripts then name the copy, gone after the test).
    env = {**(env if env is not None else tool_env()), "UV_NO_SYNC": "1"}
    return run(command, cwd=root, env=env, timeout=timeout, check=check)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git copy of the repository, outputs not yet built."""
    return copy_repository(tmp_path / "project")


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git copy on which `dvc repro` has run once, shared by the session.

    Tests may change it only if they put it back as it was (params, outputs, git state).
    """
    root = copy_repository(tmp_path_factory.mktemp("built") / "project")
    run(["dvc", "repro"], cwd=root)
    return root


def clone_built(source: Path, dest: Path) -> Path:
    """Copy a built project (git history, DVC cache, outputs) without its MLflow store.

    The copy gets its own embedded store; its outputs still name runs of the source's store,
    so a test in it starts by retraining.
    """
    shutil.copytree(
        source,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts", "tmp"),
    )
    return dest


@pytest.fixture
def baseline(built_project: Path, tmp_path: Path) -> Path:
    """A built copy without a store, its outputs committed as the experiments' baseline."""
    root = clone_built(built_project, tmp_path / "project")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "baseline outputs"], cwd=root)
    return root


@pytest.fixture
def dvc(project: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `dvc ARGS` in the project copy."""

    def _dvc(*args: str, check: bool = True, env: Mapping[str, str] | None = None):
        return run(["dvc", *args], cwd=project, env=env, check=check)

    return _dvc


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount when the test ends (tests run as root)."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)
