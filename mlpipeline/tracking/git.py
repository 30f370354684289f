"""git, as lineage and reproduce ask it: captured output, never an exception for an exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`git <args>` in `cwd`, captured; a missing git executable reads as exit status 127."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        return subprocess.CompletedProcess(["git", *args], 127, "", str(exc))


def output(args: list[str], cwd: Path) -> str | None:
    """What `git <args>` printed, or None when it failed (no repository, no git)."""
    proc = run(args, cwd)
    return proc.stdout if proc.returncode == 0 else None
