"""DVC's cache in a checkout whose path is not ASCII: moved, with its contents, to one that is.

Before DVC runs an experiment in a temporary copy (`dvc exp run --temp`, the queue), it
writes the cache's path into the copy's `.dvc/config.local` through configobj, which encodes
it as ASCII: under a folder such as `ünïcode repo/` every such experiment fails (docs/deploy.md,
"Experiments in a checkout whose path is not ASCII"). A cache whose path is ASCII avoids it.
The cache is moved, not started anew, so the outputs of every revision stay restorable
(`dvc status`, `dvc plots diff`, `make report BASE=...`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from mlpipeline.domain.errors import PipelineError

CACHE_HOME_ENV = "XDG_CACHE_HOME"
FOLDER = "mlpipeline-dvc-cache"


def ascii_cache_dir(root: Path) -> Path:
    """Where the cache of the checkout at `root` goes: under $XDG_CACHE_HOME (~/.cache), one
    folder per checkout path."""
    base = Path(os.environ.get(CACHE_HOME_ENV) or Path.home() / ".cache")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", root.name.encode("ascii", "ignore").decode()) or "repo"
    digest = hashlib.md5(str(root).encode("utf-8")).hexdigest()[:10]
    return base / FOLDER / f"{name}-{digest}"


def _dvc(args: list[str], root: Path) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"`dvc {' '.join(args)}` exited {done.returncode}: {last}")
    return done.stdout.strip()


def ensure_ascii_cache(root: Path) -> tuple[Path, Path] | None:
    """Move DVC's cache to an ASCII path when the checkout's and the cache's are not: (from,
    to); else None.

    The new path goes to `.dvc/config.local` (`dvc cache dir --local`), so this happens once
    per clone; a cache the user placed on an ASCII path is left alone.
    """
    if str(root).isascii():
        return None  # no `dvc` call (a second) for the usual checkout
    current = Path(_dvc(["cache", "dir"], root))
    if str(current).isascii():
        return None
    target = ascii_cache_dir(root)
    if not str(target).isascii():
        raise PipelineError(
            f"DVC's cache {current} and {target} are not ASCII paths, which DVC's "
            f"`dvc exp run --temp` and queue cannot write: set {CACHE_HOME_ENV} to an ASCII "
            "folder, or run `dvc cache dir --local <an ASCII folder>` (docs/deploy.md)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if current.is_dir():
        if target.exists():  # a clone at the same path before: its objects are the same files
            shutil.copytree(current, target, dirs_exist_ok=True)
            shutil.rmtree(current)
        else:
            shutil.move(current, target)
    else:
        target.mkdir(exist_ok=True)
    _dvc(["cache", "dir", "--local", str(target)], root)
    return current, target
