"""A trial's working copy uses the sweep's DVC cache: what `dvc cache dir` reads back (real dvc)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlpipeline.sweeps import trial
from mlpipeline.tool_env import tool_env


@pytest.mark.parametrize(
    "name", ["cache", "a cache, with # and 'quotes'", 'a "double" quote (dvc writes it)']
)
def test_a_copy_points_dvc_at_the_shared_cache(tmp_path: Path, name: str) -> None:
    copy = tmp_path / "copy"
    (copy / ".dvc").mkdir(parents=True)
    (copy / ".dvc" / "config").write_text("")
    cache = tmp_path / name
    env = tool_env()
    steps: dict[str, float] = {}

    trial.use_shared_cache(copy, str(cache), env, steps)

    # One dvc process fewer per copy, unless the path needs DVC's own quoting.
    assert ("data" in steps) == ('"' in name)
    read = subprocess.run(
        [sys.executable, "-m", "dvc", "cache", "dir"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert read.stdout.strip() == str(cache)
