"""`make run` in a checkout whose path is not ASCII moves DVC's cache to an ASCII path, once,
with its contents: `dvc exp run --temp` then works, and no output is missing from the cache
(docs/deploy.md, "Experiments in a checkout whose path is not ASCII")."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import copy_repository
from tests.support.tools import make, run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

MOVED = "moved DVC's cache from"


def test_make_run_moves_the_cache_to_an_ascii_path_keeping_its_contents(tmp_path: Path) -> None:
    project = copy_repository(tmp_path / "ünïcode repo" / "project")
    env = tool_env({"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    run(["dvc", "repro"], cwd=project, env=env)  # outputs in the cache under the ü path
    old_cache = project / ".dvc" / "cache"
    cached = sorted(p.relative_to(old_cache) for p in old_cache.rglob("*") if p.is_file())
    assert cached

    first = make(project, "run", env=env)
    assert first.stderr.count(MOVED) == 1, first.stderr[-3000:]
    new_cache = Path(run(["dvc", "cache", "dir"], cwd=project, env=env).stdout.strip())
    assert str(new_cache).isascii() and new_cache.is_relative_to(tmp_path / "xdg")
    assert sorted(p.relative_to(new_cache) for p in new_cache.rglob("*") if p.is_file()) >= cached
    status = run(["dvc", "status"], cwd=project, env=env).stdout
    assert "not in cache" not in status, status

    again = make(project, "run", env=env)
    assert MOVED not in again.stderr  # once per clone
    temp = run(
        ["dvc", "exp", "run", "--temp", "-S", "train.n_estimators=10"],
        cwd=project,
        env=env,
        timeout=900,
    )
    assert "Ran experiment(s)" in temp.stdout + temp.stderr, temp.stdout[-2000:]
