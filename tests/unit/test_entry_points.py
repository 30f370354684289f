"""The speed measures of the entry points: each one in one place, with its scope tested."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from mlpipeline.runner import FULL_COLLECTION_EVERY
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


def test_a_stage_collects_less_often_and_still_frees_cycles() -> None:
    """Full collections ten times rarer in a stage (runner.collect_less_often), yet a garbage
    cycle that reached the oldest generation is freed without anyone calling gc.collect."""
    code = (
        "import gc, weakref\n"
        "from mlpipeline.runner import run_stage\n"
        "class Node:\n"
        "    pass\n"
        "def main(params):\n"
        "    print(gc.get_threshold()[2])\n"
        "    node = Node()\n"
        "    node.me = node\n"
        "    gc.collect(1)\n"
        "    gc.collect(1)  # two survivals: the cycle is in the oldest generation\n"
        "    gone = weakref.ref(node)\n"
        "    del node\n"
        "    kept = []\n"
        "    while gone() is not None and len(kept) < 5_000_000:\n"
        "        kept.append([])\n"
        "    print(gone() is None, gc.get_stats()[2]['collections'])\n"
        "run_stage('probe', main, argv=[])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    full_every, freed = proc.stdout.splitlines()
    assert int(full_every) == FULL_COLLECTION_EVERY == 100
    assert freed.split()[0] == "True", proc.stdout


def test_the_distribution_listing_is_cached_only_during_a_run() -> None:
    original = importlib.metadata.packages_distributions
    with installed_packages_listed_once():
        cached = importlib.metadata.packages_distributions
        assert cached is not original
        assert cached() is cached()  # read once, answered from memory after
        assert "sklearn" in cached()
    assert importlib.metadata.packages_distributions is original
