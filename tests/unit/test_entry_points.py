"""The two speed measures of the entry points: each one in one place, with its scope tested."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from zenml_pipeline.__main__ import installed_packages_listed_once


def test_a_finished_process_still_runs_its_exit_handlers(tmp_path: Path) -> None:
    marker = tmp_path / "exit-handler-ran"
    code = (
        "import atexit, pathlib\n"
        "from mlpipeline.runner import exit_without_final_collection\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "print('flushed', end='')\n"
        "exit_without_final_collection(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "flushed"
    assert marker.read_text() == "yes"


def test_the_distribution_listing_is_cached_only_during_a_run() -> None:
    original = importlib.metadata.packages_distributions
    with installed_packages_listed_once():
        cached = importlib.metadata.packages_distributions
        assert cached is not original
        assert cached() is cached()  # read once, answered from memory after
        assert "sklearn" in cached()
    assert importlib.metadata.packages_distributions is original
