"""What `make run`'s check last verified, as a stamp: when nothing changed, nothing to check.

The full check (mlpipeline/commands/preflight.py) imports MLflow, opens the store, settles
runs and loads the champion: ~5 s of CPU before every `make run`. Its verdict only depends
on files, so when it finds everything sound it writes a stamp of them, and the next check
compares the stamp with the files as they are (a few ms, no MLflow, pandas or scikit-learn):

- the embedded store: the identity (inode, size, mtime in ns) of `mlflow.db` and of its
  journal or WAL files, and its header (SQLite bumps a change counter in it at every
  write): a new run, a run killed mid-way, a moved alias, a restored backup all change it;
- the models the check loaded, the outputs' logged model and `@champion`: every file's
  size, mtime and checksum (a model deleted, truncated or rewritten in place);
- what decides the check: params.yaml and its schema, `models/mlflow_run.json`, dvc.lock,
  the tracking URI, the failed-stage markers (`.dvc/tmp/failed-runs/`), Python and the
  folders of the installed packages (an upgrade can break a load that worked).

Any difference, or no stamp, means the full check. Only the embedded SQLite store with its
artifacts on local disk is stamped: a server's state is not in files here. The stamp lives
in `.dvc/tmp/` (git-ignored, not copied by `dvc exp run --temp`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlpipeline.files.paths import DVC_LOCK, PARAMS, ROOT, RUN_INFO, workspace_root
from mlpipeline.tracking.store import FAILED_MARKERS, sqlite_path

STAMP = Path(".dvc") / "tmp" / "preflight-verified.json"
# Bump when what a stamp holds changes: an older stamp then never matches.
FORMAT = 1
# Where installed packages live: what loads a model (mlflow, scikit-learn, skops) and reads
# the store; an upgrade can break a load that worked, so a change means the full check.
PACKAGE_FOLDERS = ("site-packages", "dist-packages")
# The files the check reads, by name; and the params schema params.yaml was validated with.
INPUTS = {
    name: path.relative_to(ROOT)
    for name, path in (("params", PARAMS), ("run_info", RUN_INFO), ("lock", DVC_LOCK))
}
SCHEMA = Path(__file__).resolve().parent.parent / "domain" / "params.py"
# The part of a SQLite file that changes at every committed write (the change counter).
SQLITE_HEADER_BYTES = 100


def stamp_path(root: Path = ROOT) -> Path:
    return workspace_root(root) / STAMP


def _identity(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def _checksum(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def store_state(uri: str) -> dict[str, Any] | None:
    """The SQLite store's files as they are now (None for another store): equal before and
    after a check, nobody wrote to it meanwhile."""
    db = sqlite_path(uri)
    return None if db is None else _store(db)


def _store(db: Path) -> dict[str, Any]:
    """The database's identity and header, and its journal's and WAL's identity."""
    try:
        with db.open("rb") as handle:
            header = handle.read(SQLITE_HEADER_BYTES).hex()
    except FileNotFoundError:
        header = None
    return {
        "db": _identity(db),
        "header": header,
        **{suffix: _identity(db.with_name(db.name + suffix)) for suffix in ("-journal", "-wal")},
    }


def _folder(folder: Path) -> dict[str, Any]:
    """Every file under `folder`: its size, mtime and checksum (empty if it is gone)."""
    files: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file():
            info = path.stat()
            files[path.relative_to(folder).as_posix()] = [
                info.st_size,
                info.st_mtime_ns,
                _checksum(path),
            ]
    return files


def local_folder(artifact_location: str) -> Path | None:
    """The folder of a `file://` artifact location; None for any other (a server, S3)."""
    parsed = urlparse(artifact_location)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def _installed() -> dict[str, Any]:
    """Python, and the identity of each package folder on sys.path: installing, upgrading or
    removing a package (what can break a load that worked) adds or renames an entry there,
    which changes the folder's mtime. Cheaper than asking importlib.metadata for versions."""
    folders = [Path(entry) for entry in sys.path if Path(entry).name in PACKAGE_FOLDERS]
    return {
        "python": [sys.executable, sys.version],
        "folders": {str(folder): _identity(folder) for folder in folders},
    }


def _markers(root: Path) -> list[str]:
    folder = workspace_root(root) / FAILED_MARKERS
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def state(uri: str, model_folders: Iterable[Path], root: Path = ROOT) -> dict[str, Any] | None:
    """What the check's verdict rests on, as it is now; None for a store this cannot stamp."""
    db = sqlite_path(uri)
    if db is None:
        return None
    inputs = {name: root / relative for name, relative in INPUTS.items()}
    inputs["schema"] = SCHEMA
    return {
        "format": FORMAT,
        "uri": uri,
        "installed": _installed(),
        "inputs": {name: _checksum(path) for name, path in inputs.items()},
        "markers": _markers(root),
        "store": _store(db),
        "models": {str(folder): _folder(folder) for folder in sorted(model_folders)},
    }


def record(verified: Mapping[str, Any], root: Path = ROOT) -> Path:
    """Write the stamp of a state the full check verified (atomically)."""
    path = stamp_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(verified, sort_keys=True))
    partial.replace(path)
    return path


def forget(root: Path = ROOT) -> None:
    """Remove the stamp: the next check is a full one."""
    stamp_path(root).unlink(missing_ok=True)


def unchanged(uri: str, root: Path = ROOT) -> bool:
    """Whether everything the last full check verified is as it was (never on a doubt)."""
    try:
        stamped = json.loads(stamp_path(root).read_text())
        folders = [Path(folder) for folder in stamped["models"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not stamped.get("models"):
        return False
    return state(uri, folders, root) == stamped
