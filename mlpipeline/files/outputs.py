"""A stage's outputs, written all-or-nothing: every file replaced, or none."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import PipelineError
from mlpipeline.files import pickles, tables

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _temp_beside(path: Path, kind: str = "") -> Path:
    """`.<name>.<random><kind>.tmp` beside `path`: hidden, and recognisably `path`'s."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{kind}.tmp")


def _leftover_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(path.name)}\..+\.tmp")


def _is_backup(leftover: Path) -> bool:
    return leftover.name.endswith(".old.tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporary files and folders an interrupted write of `path` left beside it.

    A stage killed while swapping folders can leave its previous folder only as a backup;
    that backup is put back as `path` rather than deleted. Returns what was removed.
    """
    if not path.parent.is_dir():
        return []
    pattern = _leftover_pattern(path)
    leftovers = sorted(entry for entry in path.parent.iterdir() if pattern.fullmatch(entry.name))
    backups = [entry for entry in leftovers if _is_backup(entry)]
    if backups and not os.path.lexists(path):
        newest = max(backups, key=lambda entry: entry.lstat().st_mtime)
        newest.rename(path)
        leftovers.remove(newest)
        log.warning("restored %s from %s (an interrupted write)", path, newest.name)
    for leftover in leftovers:
        _remove(leftover)
    if leftovers:
        log.info(
            "removed leftovers of an interrupted write: %s", ", ".join(p.name for p in leftovers)
        )
    return leftovers


def _kept_mode(path: Path, folder: bool) -> int | None:
    """The permission bits of the file or folder `path` replaces, if it replaces one."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    same_kind = stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)
    return stat.S_IMODE(info.st_mode) if same_kind else None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush a file, or a folder and everything in it, to disk."""
    if path.is_dir():
        for folder, _, files in os.walk(path):
            for name in files:
                _fsync(Path(folder) / name)
            _fsync(Path(folder))
    else:
        _fsync(path)


@dataclass(frozen=True)
class _Staged:
    target: Path
    temp: Path
    folder: bool


class StagedOutputs:
    """A stage's outputs, each written to a temporary file or folder beside its target.

    Temporaries are created as a plain `open()` or `mkdir()` would create them (0644 / 0755
    under umask 022), or with the mode of the file or folder they replace.
    """

    def __init__(self) -> None:
        self._staged: list[_Staged] = []
        # The output being written or moved in: a failure names it (a failed write() of an
        # open file says only "No space left on device").
        self.current: Path | None = None

    def file(self, path: Path) -> Path:
        """An empty temporary file whose content becomes `path`."""
        return self._stage(path, folder=False)

    def folder(self, path: Path) -> Path:
        """An empty temporary folder whose content becomes the folder `path`."""
        return self._stage(path, folder=True)

    def text(self, path: Path, text: str) -> None:
        self.file(path).write_text(text)

    def json(self, path: Path, data: Any) -> None:
        self.text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def table(self, path: Path, frame: pd.DataFrame) -> None:
        """A DataFrame as CSV or Parquet, chosen by the file's suffix."""
        tables.write_table_to(self.file(path), frame, parquet=path.suffix == ".parquet")

    def bytes(self, path: Path, data: bytes) -> None:
        self.file(path).write_bytes(data)

    def pickle(self, path: Path, obj: Any) -> None:
        """A fitted estimator; identical estimators give identical files."""
        self.bytes(path, pickles.pickle_bytes(obj))

    def _stage(self, path: Path, folder: bool) -> Path:
        if any(staged.target == path for staged in self._staged):
            raise ValueError(f"{path} is already staged")
        self.current = path
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(path)
        while True:
            temp = _temp_beside(path)
            try:
                if folder:
                    temp.mkdir(0o777)  # the umask applies, as for any mkdir
                else:
                    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                continue
        self._staged.append(_Staged(path, temp, folder))
        mode = _kept_mode(path, folder)
        if mode is not None:
            temp.chmod(mode)
        return temp

    def _commit(self) -> None:
        """Flush every temporary to disk, then move them all in; undo the moves on a failure."""
        for staged in self._staged:
            self.current = staged.target
            _fsync_tree(staged.temp)
        moved: list[tuple[_Staged, Path | None]] = []
        try:
            for staged in self._staged:
                self.current = staged.target
                moved.append((staged, _move_in(staged)))
        except BaseException:
            for staged, backup in reversed(moved):
                _move_back(staged, backup)
            raise
        for _, backup in moved:
            if backup is not None:
                _remove(backup)
        for parent in {staged.target.parent for staged in self._staged}:
            _fsync(parent)

    def _discard(self) -> None:
        for staged in self._staged:
            _remove(staged.temp)


def _move_in(staged: _Staged) -> Path | None:
    """Put a temporary in its target's place; return the backup of what was there."""
    target = staged.target
    if not os.path.lexists(target):
        staged.temp.rename(target)
        return None
    backup = _temp_beside(target, ".old")
    if staged.folder:
        # A folder cannot be swapped in one step: the old one goes aside for a moment.
        target.rename(backup)
        try:
            staged.temp.rename(target)
        except BaseException:
            backup.rename(target)
            raise
        return backup
    try:  # a second name for the old file; the target never goes missing
        os.link(target, backup, follow_symlinks=False)
    except OSError:  # no hard links here (or the target is a folder: copy2 says so)
        shutil.copy2(target, backup, follow_symlinks=False)
    try:
        staged.temp.replace(target)
    except BaseException:
        backup.unlink()
        raise
    return backup


def _move_back(staged: _Staged, backup: Path | None) -> None:
    """Undo `_move_in`: the target is what it was before."""
    target = staged.target
    try:
        if staged.folder:
            discarded = _temp_beside(target)
            target.rename(discarded)
            if backup is not None:
                backup.rename(target)
            _remove(discarded)
        elif backup is not None:
            backup.replace(target)
        else:
            target.unlink()
    except OSError as exc:  # the next write of `target` restores a backup left behind
        log.error("could not put back the previous %s: %s", target, exc)


@contextlib.contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Write a stage's outputs all-or-nothing: all are replaced, or none is.

    Every output is written to a temporary beside it and flushed to disk; only when the block
    has succeeded are they moved into place, and a failing move puts back the ones already
    moved. Leftovers of an interrupted earlier write are removed first.
    A failure to write (a full disk, a folder in an output file's place) is a PipelineError.
    """
    outputs = StagedOutputs()
    try:
        yield outputs
        outputs._commit()
    except OSError as exc:
        culprit = outputs.current or exc.filename
        raise PipelineError(
            f"could not write {_shown(culprit)} ({exc.strerror or exc}); the previous outputs "
            "are left as they were"
        ) from exc
    finally:
        outputs._discard()


def _shown(path: Path | str | None) -> str:
    """An output's path as the user knows it: relative to the working directory if inside."""
    if path is None:
        return "the outputs"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """One table as a stage's only output: CSV or Parquet by the file's suffix."""
    with staged_outputs() as outputs:
        outputs.table(path, frame)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
