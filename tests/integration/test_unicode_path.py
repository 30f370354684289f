"""`dvc exp run --temp` in a checkout whose path is not ASCII (docs/deploy.md).

DVC's temporary-copy executor writes the cache path into the copy's `.dvc/config.local` with
configobj and no encoding, so configobj encodes it as ASCII and a path with `ü` fails
(dvc/repo/experiments/executor/local.py, `LocalExecutor._update_config`). The workaround is a
cache folder whose path is ASCII: `dvc cache dir --local <path>`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import copy_repository, run, tool_env

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
