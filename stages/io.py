"""Reading and atomically writing the pipeline's files (temporary file, then rename)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces the folder `path` if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.replace(old)
        tmp.replace(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


# From this many rows on, CSV bodies go through Arrow's C++ writer: pandas' to_csv formats
# every float in Python and takes ~15-25 s per million rows of 10-20 columns, Arrow ~2 s.
ARROW_CSV_MIN_ROWS = 100_000


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV or Parquet, chosen by the file's suffix."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif len(frame) >= ARROW_CSV_MIN_ROWS:
            _write_large_csv(tmp, frame)
        else:
            frame.to_csv(tmp, index=False)


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
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
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


def dump_object(path: Path, obj: Any) -> None:
    """Pickle a fitted estimator; identical estimators give identical files."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        _StablePickler(handle, protocol=5).dump(obj)


def load_object(path: Path) -> Any:
    """Unpickle an estimator this pipeline wrote (pickles run code: load only your own)."""
    with path.open("rb") as handle:
        return pickle.load(handle)


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
