"""`python benchmarks/stage_probe.py NAME -- CMD...`: run a stage, record its time, peak RSS
and the time its imports took.

The benchmark swaps each dvc.yaml `cmd` for this wrapper in its throwaway copy of the
repository. The stage runs with Python's `-X importtime` (PYTHONPROFILEIMPORTTIME), whose
report on stderr is summed over the top-level imports and kept out of the stage's stderr.
The record goes to $BENCH_STAGE_LOG/NAME.json; the exit code is the stage's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO


def replay_stderr(err: IO[str]) -> float:
    """Pass the stage's own stderr on; return the seconds its top-level imports took.

    An importtime line is `import time: <self us> | <cumulative us> | <name>`, the name
    indented by one space per nesting level beyond the first.
    """
    total_us = 0
    for line in err:
        if not line.startswith("import time:"):
            sys.stderr.write(line)
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and not name[1:].startswith(" "):
            total_us += int(cumulative)
    return total_us / 1e6


def main(argv: list[str]) -> int:
    name, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: stage_probe.py NAME -- CMD...")
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        err.seek(0)
        import_seconds = replay_stderr(err)
    child.returncode = os.waitstatus_to_exitcode(status)
    log_dir = os.environ.get("BENCH_STAGE_LOG")
    if log_dir:
        record = {
            "seconds": seconds,
            "import_seconds": import_seconds,
            "peak_rss_mib": usage.ru_maxrss / 1024,
        }
        Path(log_dir, f"{name}.json").write_text(json.dumps(record))
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
