"""A newcomer clones the project and runs `make run`: nothing git tracks changes, no noise.

The clone's path has a space and a non-ASCII letter, and the newcomer has no uv: the
Makefile bootstraps its own copy into .tools/, once, and everything after it runs through
that uv on PATH, itself under the same path.

A stale dvc.lock (code changed, lock not rewritten) or an output that is not byte-stable
would put a lock change into the newcomer's first commit that they did not make. One entry
differs by design: models/mlflow_run.json names the MLflow run of the newcomer's own store
(run ids are made by each store), so its md5 in dvc.lock is theirs (docs/failures.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.repository import REPO
from tests.support.tools import run

RUN_LINK = "models/mlflow_run.json"
BOOTSTRAP = "-m venv .tools"  # the Makefile's recipe for .tools/bin/uv


def without_run_link(lock_text: str) -> dict:
    """dvc.lock without the md5 and size of the one output that names a store's run."""
    lock = yaml.safe_load(lock_text)
    for stage in lock["stages"].values():
        for entry in [*stage.get("deps", []), *stage.get("outs", [])]:
            if entry["path"] == RUN_LINK:
                entry.pop("md5", None)
                entry.pop("size", None)
    return lock


pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]


def newcomer_env() -> dict[str, str]:
    """A user's shell: no venv active, no store settings, no uv on PATH."""
    stripped = ("MLFLOW_", "DVC_", "ZENML_", "PYTEST_", "VIRTUAL_ENV", "UV_PROJECT")
    env = {key: value for key, value in os.environ.items() if not key.startswith(stripped)}
    venv_bin = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join(
        entry
        for entry in env["PATH"].split(os.pathsep)
        if entry and Path(entry) != venv_bin and not (Path(entry) / "uv").is_file()
    )
    env.update({"GIT_AUTHOR_NAME": "newcomer", "GIT_AUTHOR_EMAIL": "newcomer@example.invalid"})
    env.update({"GIT_COMMITTER_NAME": "newcomer", "GIT_COMMITTER_EMAIL": "n@example.invalid"})
    return env


def test_a_fresh_clones_first_make_run_leaves_git_clean(tmp_path: Path) -> None:
    env = newcomer_env()
    clone = tmp_path / "my dir ü" / "clone"
    run(["git", "clone", "--quiet", REPO, clone], cwd=tmp_path, env=env)
    made = run(["make", "--no-print-directory", "run"], cwd=clone, env=env, timeout=1500)
    output = made.stdout + made.stderr
    assert made.stdout.count(BOOTSTRAP) == 1, made.stdout[-3000:]
    assert (clone / ".tools" / "bin" / "uv").is_file()
    assert "Running stage 'save'" in output
    assert (clone / "metrics" / "metrics.json").is_file()
    assert (clone / "models" / "pipeline.pkl").is_file()
    assert "Detected uv project" not in output, output[-3000:]  # MLflow's noise
    assert "Failed to resolve installed pip version" not in output, output[-3000:]

    # uv on PATH from here on, itself under the path with a space: no second bootstrap.
    env["PATH"] = f"{clone / '.tools' / 'bin'}{os.pathsep}{env['PATH']}"
    # A git operation touches pyproject.toml: uv rebuilds the editable project, silently.
    (clone / "pyproject.toml").touch()
    plots = run(["make", "--no-print-directory", "plots"], cwd=clone, env=env, timeout=600)
    assert "Installed 1 package" not in plots.stdout + plots.stderr, plots.stderr[-3000:]
    assert BOOTSTRAP not in plots.stdout
    status = run(["git", "status", "--porcelain"], cwd=clone, env=env).stdout
    diff = run(["git", "diff"], cwd=clone, env=env).stdout
    assert status in ("", " M dvc.lock\n"), f"make run changed what git tracks:\n{status}\n{diff}"
    committed = run(["git", "show", "HEAD:dvc.lock"], cwd=clone, env=env).stdout
    assert without_run_link((clone / "dvc.lock").read_text()) == without_run_link(committed), diff

    # The same pipeline has nothing to do, and the linters run under that path too.
    again = run(["make", "--no-print-directory", "run", "lint"], cwd=clone, env=env, timeout=1200)
    assert BOOTSTRAP not in again.stdout
    assert "didn't change, skipping" in again.stdout + again.stderr
