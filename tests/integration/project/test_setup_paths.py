"""The README's commands in a checkout whose path has spaces and non-ASCII characters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.tools import run


def path_without_uv() -> str:
    """PATH as a new user has it: no uv, and not this checkout's virtualenv."""
    return os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and Path(entry) != VENV_BIN and not (Path(entry) / "uv").is_file()
    )


@pytest.mark.slow
@pytest.mark.integration
def test_make_run_in_a_path_with_spaces(project: Path, tmp_path: Path) -> None:
    checkout = tmp_path / "my dir ü" / "repo"
    run(["git", "clone", "-q", project, checkout], cwd=tmp_path)

    # Without uv: the Makefile bootstraps its own copy into .tools/, once.
    env = tool_env({"PATH": path_without_uv()})
    built = run(["make", "run"], cwd=checkout, env=env, timeout=1200)
    assert built.stdout.count("-m venv .tools") == 1
    assert (checkout / ".tools" / "bin" / "uv").is_file()
    assert (checkout / "metrics" / "metrics.json").is_file()
    assert (checkout / "models" / "pipeline.pkl").is_file()

    # With uv on PATH, itself under a path with a space: no bootstrap, the same pipeline.
    env["PATH"] = f"{checkout / '.tools' / 'bin'}{os.pathsep}{env['PATH']}"
    again = run(["make", "run", "lint"], cwd=checkout, env=env, timeout=1200)
    assert "-m venv .tools" not in again.stdout
    assert "didn't change, skipping" in again.stdout + again.stderr
