"""One writer per output folder (issue 30, item 17): a second is refused, naming the first;
a killed holder leaves no stale lock."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlpipeline.domain.errors import PipelineError
from mlpipeline.files.output_lock import lock_path, output_lock
from mlpipeline.files.paths import ROOT


def hold(folder: Path) -> subprocess.Popen[str]:
    """Another process holding `folder`'s lock until its stdin closes."""
    code = (
        "import sys; from pathlib import Path\n"
        "from mlpipeline.files.output_lock import output_lock\n"
        f"with output_lock(Path({str(folder)!r})):\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "scores" / "batch"
    holder = hold(folder)
    try:
        with pytest.raises(PipelineError) as caught, output_lock(folder):
            pass
        message = str(caught.value)
        assert "\n" not in message
        assert f"--output {folder} is being written by another command (pid {holder.pid}" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with output_lock(folder):  # released: the next writer goes ahead
        assert lock_path(folder).exists()
    assert not lock_path(folder).exists()


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    holder = hold(folder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock_path(folder).exists()  # the file stays, the lock went with the process
    with output_lock(folder):
        pass
