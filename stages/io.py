"""Reading the pipeline's files, and writing a stage's outputs all-or-nothing."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import pickle
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _temp_beside(path: Path, kind: str = "") -> Path:
    """`.<name>.<random><kind>.tmp` beside `path`: hidden, and recognisably `path`'s."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{kind}.tmp")


def _leftover_pattern(path: Path) -> re.Pattern[str]:
    # `.<name>.*.tmp` is ours; `.<name>.<8 chars>` and `.<name>.old` are what earlier versions
    # (tempfile.mkdtemp and a fixed backup name) left behind.
    return re.compile(rf"\.{re.escape(path.name)}\.(.+\.tmp|[a-z0-9_]{{8}}|old)")


def _is_backup(leftover: Path) -> bool:
    return leftover.name.endswith((".old.tmp", ".old"))


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
        _write_table(self.file(path), frame, parquet=path.suffix == ".parquet")

    def bytes(self, path: Path, data: bytes) -> None:
        self.file(path).write_bytes(data)

    def pickle(self, path: Path, obj: Any) -> None:
        """A fitted estimator; identical estimators give identical files."""
        self.bytes(path, pickle_bytes(obj))

    def _stage(self, path: Path, folder: bool) -> Path:
        if any(staged.target == path for staged in self._staged):
            raise ValueError(f"{path} is already staged")
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
            _fsync_tree(staged.temp)
        moved: list[tuple[_Staged, Path | None]] = []
        try:
            for staged in self._staged:
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
        raise PipelineError(
            f"could not write the outputs ({exc}); the previous outputs are left as they were"
        ) from exc
    finally:
        outputs._discard()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    with staged_outputs() as outputs:
        yield outputs.file(path)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces the folder `path` if the block succeeds."""
    with staged_outputs() as outputs:
        yield outputs.folder(path)


def write_text(path: Path, text: str) -> None:
    with staged_outputs() as outputs:
        outputs.text(path, text)


def write_json(path: Path, data: Any) -> None:
    with staged_outputs() as outputs:
        outputs.json(path, data)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# From this many rows on, CSV bodies go through Arrow's C++ writer: pandas' to_csv formats
# every float in Python and takes ~15-25 s per million rows of 10-20 columns, Arrow ~2 s.
ARROW_CSV_MIN_ROWS = 100_000


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV or Parquet, chosen by the file's suffix."""
    with staged_outputs() as outputs:
        outputs.table(path, frame)


def _write_table(path: Path, frame: pd.DataFrame, parquet: bool) -> None:
    if parquet:
        frame.to_parquet(path, index=False)
    elif len(frame) >= ARROW_CSV_MIN_ROWS:
        _write_large_csv(path, frame)
    else:
        frame.to_csv(path, index=False)


def _write_large_csv(path: Path, frame: pd.DataFrame) -> None:
    """pandas' header, then Arrow's body: every value reads back the same with pandas.

    Arrow writes floats in shortest round-trip form like pandas, but whole numbers without
    `.0` and text always quoted; small tables keep pandas' exact output.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    frame.head(0).to_csv(path, index=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with path.open("ab") as handle:
        pa_csv.write_csv(table, handle, pa_csv.WriteOptions(include_header=False))


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a CSV whose header repeats a name is a ValueError.

    pandas would rename the second `f1` to `f1.1` and carry on.
    """
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    seen: set[str] = set()
    for name in header.iloc[0] if len(header) else ():
        if name in seen and name:
            raise ValueError(f"column {name!r} appears more than once in the header")
        seen.add(name)
    return pd.read_csv(path)


class _StablePickler(pickle._Pickler):
    """A pickler whose output depends only on the object's values.

    scikit-learn's tree node records carry padding bytes that are never initialised, so the
    same fitted forest pickles to different bytes from run to run (and DVC sees a change).
    Trees are written with that padding zeroed.

    Pickle also memoises by object identity, and which equal strings and dtypes are one
    object differs between a freshly fitted estimator and the same estimator unpickled
    (unpickling interns attribute names and rebuilds dtypes; parts loaded from separate
    files share nothing). Equal strings and dtypes are therefore written as one object.
    This needs the pure-Python pickler: the C one does not let a subclass see strings.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import numpy as np

        super().__init__(*args, **kwargs)
        self._dtype_type = np.dtype
        self._canonical: dict[tuple[str, str], Any] = {}

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if type(obj) is str:
            obj = self._canonical.setdefault(("str", obj), obj)
        elif isinstance(obj, self._dtype_type):
            obj = self._canonical.setdefault(("dtype", repr(obj.__reduce__())), obj)
        super().save(obj, save_persistent_id)

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls.__name__ != "Tree" or cls.__module__ != "sklearn.tree._tree":
            return NotImplemented
        import numpy as np

        constructor, args, state = obj.__reduce__()
        nodes = state["nodes"]
        zeroed = np.zeros(nodes.shape, dtype=nodes.dtype)
        for field in nodes.dtype.names:
            zeroed[field] = nodes[field]
        return constructor, args, {**state, "nodes": zeroed}


def pickle_bytes(obj: Any) -> bytes:
    """The bytes `dump_object` writes for `obj`: equal estimators give equal bytes."""
    buffer = io.BytesIO()
    _StablePickler(buffer, protocol=5).dump(obj)
    return buffer.getvalue()


def dump_object(path: Path, obj: Any) -> None:
    """Pickle a fitted estimator; identical estimators give identical files."""
    with staged_outputs() as outputs:
        outputs.pickle(path, obj)


def load_object(path: Path) -> Any:
    """Unpickle an estimator this pipeline wrote (pickles run code: load only your own)."""
    with path.open("rb") as handle:
        return pickle.load(handle)


def bytes_md5(data: bytes) -> str:
    """The md5 DVC records for a file holding `data`."""
    return hashlib.md5(data).hexdigest()


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
