"""A copy of the user's repository to run the real tools in, for the tests and the benchmarks.

The copy holds the git-tracked and unignored files (DVC outputs and the MLflow store are
git-ignored, so it starts clean), runs on the template's Iris defaults whatever the user's
params.yaml says, and gets the data the user tracks with `dvc add` from the user's DVC cache:
the machinery is tested and measured the same way on every user's project.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

from mlpipeline.tool_env import VENV_BIN, tool_env

REPO = Path(__file__).resolve().parents[2]
# The template's Iris defaults, which every copy runs on.
IRIS_PARAMS = REPO / "tests" / "iris_params.yaml"
_CACHE_REMOTE = "workspace-cache"

# What the load, preprocess and train stages write (dvc.yaml), but the run-id file.
TRAINING_OUTPUTS = [
    "data/raw/dataset.csv",
    "data/processed/train.parquet",
    "data/processed/test.parquet",
    "models/scaler.pkl",
    "models/classifier.pkl",
    "models/pipeline.pkl",
]
# What the evaluate stage writes (dvc.yaml), checked by the tests of its writes and of lineage.
EVALUATE_OUTPUTS = [
    "metrics/metrics.json",
    "plots/predictions.csv",
    "plots/feature_importance.csv",
    "plots/roc",
    "plots/precision_recall",
    "plots/images",
]


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


def copy_repository(dest: Path, source: Path = REPO, env: Mapping[str, str] | None = None) -> Path:
    """A new git repository in `dest`: the source's files, Iris params, the user's DVC data.

    DVC outputs and the embedded MLflow store are git-ignored, so the copy starts clean.
    Whatever the user did to params.yaml or data/external/, the copy runs the template's Iris
    task (tests/iris_params.yaml), so the suite tests the machinery on every user's project.
    """
    env = dict(env) if env is not None else tool_env()
    names = listed_files(source)
    copy_files(source, dest, names)
    use_iris_params(dest)
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "copy of the repository under test"],
    ):
        subprocess.run(command, cwd=dest, env=env, check=True, capture_output=True)
    fetch_tracked_data(source, dest, [name for name in names if name.endswith(".dvc")], env)
    return dest


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


def set_params(root: Path, **changes: object) -> None:
    """Edit params.yaml like a user would: `section__key=value`; a section the copy's Iris
    params leave out (`retention`) is added."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params.setdefault(section, {})[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


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


def output_bytes(root: Path) -> dict[str, bytes]:
    """Every file of every cached output dvc.lock records (git's files, such as the user's
    data/external/, are not DVC's to push)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    outputs = [
        root / out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])
    ]
    files = [
        path
        for output in outputs
        for path in (sorted(output.rglob("*")) if output.is_dir() else [output])
        if path.is_file()
    ]
    # metrics.json is `cache: false`: git's, like the rest of metrics/.
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in files
        if not path.relative_to(root).as_posix().startswith("metrics/")
    }
