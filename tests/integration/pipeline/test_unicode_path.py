"""`dvc exp run --temp` in a checkout whose path is not ASCII (docs/deploy.md).

DVC's temporary-copy executor writes the cache path into the copy's `.dvc/config.local` with
configobj and no encoding, so configobj encodes it as ASCII and a path with `ü` fails
(dvc/repo/experiments/executor/local.py, `LocalExecutor._update_config`). The workaround is a
cache folder whose path is ASCII: `dvc cache dir --local <path>`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import copy_repository
from tests.support.tools import run, run_queue

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPERIMENT = ["dvc", "exp", "run", "--temp", "-S", "train.n_estimators=10"]


def test_temp_experiments_under_a_non_ascii_path_need_an_ascii_cache(tmp_path: Path) -> None:
    project = copy_repository(tmp_path / "ünïcode repo" / "project")
    env = tool_env()
    failed = run(EXPERIMENT, cwd=project, env=env, check=False, timeout=300)
    # If this starts passing, DVC writes config.local as UTF-8: drop the workaround in
    # docs/deploy.md and this test.
    assert failed.returncode != 0
    assert "'ascii' codec can't encode character" in failed.stderr + failed.stdout

    cache = tmp_path / "dvc-cache"
    run(["dvc", "cache", "dir", "--local", cache], cwd=project, env=env)
    done = run(EXPERIMENT, cwd=project, env=env, timeout=900)
    assert "Ran experiment(s)" in done.stdout + done.stderr, done.stdout[-2000:]
    shown = run(["dvc", "exp", "show", "--json"], cwd=project, env=env)
    assert '"n_estimators": 10' in shown.stdout
    assert any(cache.rglob("*")), "the experiment's outputs went to the ASCII cache"


def test_queued_experiments_under_a_non_ascii_path_run_with_an_ascii_cache(
    tmp_path: Path,
) -> None:
    """The same cause stops queued experiments (`dvc queue logs`: "No output logs found");
    the same one command per clone lets them run."""
    project = copy_repository(tmp_path / "ünïcode repo" / "project")
    env = tool_env()
    run(["dvc", "cache", "dir", "--local", tmp_path / "dvc-cache"], cwd=project, env=env)
    for n_estimators in (10, 20):
        queued = ["dvc", "exp", "run", "--queue", "-S", f"train.n_estimators={n_estimators}"]
        run(queued, cwd=project, env=env)
    status = run_queue(project, env, jobs=1, timeout=900)
    assert status.count("Success") == 2, status
    shown = run(["dvc", "exp", "show", "--json"], cwd=project, env=env)
    assert '"n_estimators": 10' in shown.stdout and '"n_estimators": 20' in shown.stdout
