"""The md5 sums DVC records, computed the way DVC computes them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def bytes_md5(data: bytes) -> str:
    """The md5 DVC records for a file holding `data`."""
    return hashlib.md5(data).hexdigest()


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dvc_md5(path: Path) -> str:
    """The md5 DVC records in dvc.lock: of the bytes for a file, of a listing for a folder.

    A folder's hash is the md5 of the JSON list of its files' md5s and relative paths,
    sorted by path, with `.dir` appended (dvc_data's `Tree.as_bytes`).
    """
    if path.is_file():
        return file_md5(path)
    entries = sorted(
        (
            {"md5": file_md5(file), "relpath": file.relative_to(path).as_posix()}
            for file in path.rglob("*")
            if file.is_file()
        ),
        key=lambda entry: entry["relpath"],
    )
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"
