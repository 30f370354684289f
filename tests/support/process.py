"""Processes the tests and the benchmarks start: a command's captured output and what to say
when it fails, a server with its output in a log file, a free port."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlpipeline.tool_env import tool_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def captured(
    args: Sequence[str | Path],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end (default environment: the tools'), its output captured."""
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=dict(env) if env is not None else tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def failure(args: Sequence[str | Path], proc: subprocess.CompletedProcess[str], tail: int) -> str:
    """The command, its exit code and the last `tail` characters of its stdout and stderr."""
    return (
        f"{' '.join(map(str, args))} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-tail:]}\n--- stderr\n{proc.stderr[-tail:]}"
    )


def start_logged(
    command: Sequence[str | Path], env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen:
    """Start a server, its stdout and stderr in the file `log`."""
    with log.open("w") as log_file:
        return subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
