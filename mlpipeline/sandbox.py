"""A copy of the user's repository to run the real tools in, and the environment they run with.

Tests, benchmarks and `reproduce` run dvc, mlflow and zenml as subprocesses. They all need the
project's venv first on PATH and none of the caller's store settings (MLFLOW_*, DVC_*,
ZENML_*), so that a run never lands in the user's own store by accident.

The copy holds the git-tracked and unignored files (DVC outputs and the MLflow store are
git-ignored, so it starts clean), runs on the template's Iris defaults whatever the user's
params.yaml says, and gets the data the user tracks with `dvc add` from the user's DVC cache:
the machinery is tested and measured the same way on every user's project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from mlpipeline.files.paths import ROOT

IRIS_PARAMS = ROOT / "tests" / "iris_params.yaml"
VENV_BIN = Path(sys.executable).parent
_CACHE_REMOTE = "workspace-cache"
_STRIPPED = ("MLFLOW_", "DVC_", "ZENML_", "PYTEST_", "VIRTUAL_ENV")


def tool_env(
    extra: Mapping[str, str] | None = None, git_identity: str | None = "tests"
) -> dict[str, str]:
    """The environment the real tools run in: the project's venv first, no inherited stores.

    Args:
        git_identity: author and committer name for commits the tools make; None keeps the
            caller's git identity.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(_STRIPPED)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "ZENML_ANALYTICS_OPT_IN": "false",
            "DVC_NO_ANALYTICS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONHASHSEED": "0",
        }
    )
    if git_identity is not None:
        email = f"{git_identity}@example.invalid"
        env.update(
            {
                "GIT_AUTHOR_NAME": git_identity,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": git_identity,
                "GIT_COMMITTER_EMAIL": email,
            }
        )
    env.update(extra or {})
    return env


def listed_files(source: Path) -> list[str]:
    """The working tree's tracked and untracked-but-not-ignored files, relative to `source`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return [name for name in listed if name and (source / name).is_file()]


def copy_files(source: Path, dest: Path, names: list[str]) -> None:
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)


def use_iris_params(root: Path) -> None:
    """Write the template's Iris defaults into a copy's params.yaml."""
    shutil.copyfile(IRIS_PARAMS, root / "params.yaml")


def fetch_tracked_data(
    source: Path, root: Path, dvc_files: list[str], env: Mapping[str, str]
) -> None:
    """Check out the data of the copied `.dvc` files from the source's DVC cache.

    The source's cache serves as a local remote: DVC 3 lays out a cache and a local remote
    alike (`files/md5/..`), and a pull only reads from it, so the user's cache is untouched.
    """
    if not dvc_files:
        return

    def dvc(*args: str | Path) -> None:
        proc = subprocess.run(
            ["dvc", *map(str, args)], cwd=root, env=dict(env), capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"dvc {' '.join(map(str, args))} in {root} exited {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
            )

    cache = subprocess.run(
        ["dvc", "cache", "dir"], cwd=source, env=dict(env), capture_output=True, text=True
    ).stdout.strip() or str(source / ".dvc" / "cache")
    dvc("remote", "add", "--local", "--force", _CACHE_REMOTE, cache)
    try:
        dvc("pull", "--remote", _CACHE_REMOTE, *dvc_files)
    finally:
        dvc("remote", "remove", "--local", _CACHE_REMOTE)


def copy_repository(source: Path, dest: Path, env: Mapping[str, str]) -> Path:
    """A new git repository in `dest`: the source's files, Iris params, the user's DVC data."""
    names = listed_files(source)
    copy_files(source, dest, names)
    use_iris_params(dest)
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "copy of the repository under test"],
    ):
        subprocess.run(command, cwd=dest, env=dict(env), check=True, capture_output=True)
    fetch_tracked_data(source, dest, [name for name in names if name.endswith(".dvc")], env)
    return dest
