"""`python benchmarks/stage_probe.py NAME -- CMD...`: run a stage, record its time and peak RSS.

The benchmark swaps each dvc.yaml `cmd` for this wrapper in its throwaway copy of the
repository. The record goes to $BENCH_STAGE_LOG/NAME.json; the exit code is the stage's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    name, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: stage_probe.py NAME -- CMD...")
    start = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    log_dir = os.environ.get("BENCH_STAGE_LOG")
    if log_dir:
        record = {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}
        Path(log_dir, f"{name}.json").write_text(json.dumps(record))
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
