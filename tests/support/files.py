"""Files as the tests compare them: a folder's whole tree, a file's permission bits."""

from __future__ import annotations

import stat
from pathlib import Path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tree_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under root, with its bytes (None for a folder)."""
    return {
        str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
        for path in sorted(root.rglob("*"))
    }
