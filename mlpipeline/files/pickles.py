"""Byte-stable pickles: an estimator fitted twice on the same data gives the same file."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any


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
        super().save(obj, save_persistent_id)  # type: ignore[misc]  # pickle._Pickler's, untyped

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
    """A pickle of `obj`: equal estimators give equal bytes."""
    buffer = io.BytesIO()
    _StablePickler(buffer, protocol=5).dump(obj)
    return buffer.getvalue()


def load_object(path: Path) -> Any:
    """Unpickle an estimator this pipeline wrote (pickles run code: load only your own)."""
    with path.open("rb") as handle:
        return pickle.load(handle)
