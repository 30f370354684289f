"""One writer per output folder: a second command writing the same results is refused.

Without it, a second scoring to the same folder takes the first one's staged folder for the
leftovers of an interrupted write and deletes it under the first (issue 30, item 17). The
lock is an exclusive `flock` on a hidden `.<folder>.lock` file beside the folder, holding the
writer's pid, host and start time for the refusal to name; the kernel releases it when the
process ends however it ends, so a killed writer never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from mlpipeline.domain.errors import PipelineError


def lock_path(folder: Path) -> Path:
    """`.<name>.lock` beside `folder`."""
    return folder.with_name(f".{folder.name}.lock")


@contextlib.contextmanager
def output_lock(folder: Path, what: str = "--output") -> Iterator[None]:
    """Hold `folder`'s lock for the block; a PipelineError naming the holder if another
    process holds it."""
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 500).decode("utf-8", "replace").strip()
            os.close(descriptor)
            raise PipelineError(
                f"{what} {folder} is being written by another command ({holder or 'unknown'}); "
                "wait for it to finish, or name another folder"
            ) from None
        # The holder before us may have removed the file after we opened it: lock the file
        # that is there now.
        try:
            if path.stat().st_ino == os.fstat(descriptor).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(descriptor)
    try:
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(descriptor, 0)
        holder = f"pid {os.getpid()} on {socket.gethostname()}, since {started}"
        os.write(descriptor, holder.encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(descriptor)
