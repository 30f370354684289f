"""A command told to stop, or left by the process that started it, ends with nothing written
(issue 30, item 21): SIGTERM, SIGHUP, and `kill -9` of its parent (make's `uv run`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpipeline.files.paths import ROOT

# A command writing an output folder all-or-nothing, stuck before its commit.
WRITER = """
import logging, sys, time
from pathlib import Path
from mlpipeline.files.outputs import staged_outputs
from mlpipeline.runner import exit_on_user_error, stop_cleanly
logging.basicConfig(format="[w] %(levelname)s %(message)s")
with exit_on_user_error(logging.getLogger("w")), stop_cleanly("scoring"):
    with staged_outputs() as outputs:
        folder = outputs.folder(Path(sys.argv[1]))
        (folder / "predictions.csv").write_text("half")
        print("writing", flush=True)
        while True:
            time.sleep(0.05)
"""


def start(out: Path, *wrapper: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*wrapper, sys.executable, "-c", WRITER, str(out)],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().strip() == "writing", process.stderr.read()
    return process


def nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_command_with_nothing_written(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "scores"
    writer = start(out)
    writer.send_signal(signum)
    _, stderr = writer.communicate(timeout=30)
    assert writer.returncode == 1, stderr
    assert stderr.strip().splitlines() == [
        f"[w] ERROR scoring stopped by {signal.Signals(signum).name}; nothing was written"
    ], stderr
    nothing_written(out)


def test_the_command_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    out = tmp_path / "scores"
    pid_file = tmp_path / "writer.pid"
    # A parent (as make's `uv run`) that starts the writer and waits for it.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys\n"
            f"child = subprocess.Popen([sys.executable, '-c', {WRITER!r}, {str(out)!r}],"
            " stdout=subprocess.PIPE)\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
            "print(child.stdout.readline().decode().strip(), flush=True)\n"
            "child.wait()\n",
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
    )
    assert parent.stdout.readline().strip() == "writing"
    writer_pid = int(pid_file.read_text())
    parent.kill()
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{writer_pid}").exists() and _state(writer_pid) != "Z":
        assert time.monotonic() < deadline, "the writer outlived its parent by 30 s"
        time.sleep(0.1)
    nothing_written(out)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"
