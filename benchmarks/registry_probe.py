"""The registry commands' own seconds, imports excluded: run in a built project, prints JSON.

`python -m benchmarks.registry_probe MODEL VERSION RUNS` (cwd and PYTHONPATH: the project)
times, in one process after the imports, what `mlpipeline model list`, `list --page LAST`,
`list --before 21`, `history` and `card VERSION` do, each RUNS times; the `registry` figure
of benchmarks/bench.py runs it before and after seeding the store.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from mlpipeline.tracking import model_versions


def seconds(call: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    model_name, newest, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    last_page = max(1, -(-int(newest) // 20))
    calls: dict[str, Callable[[], object]] = {
        "list": lambda: model_versions.list_versions(model_name, "accuracy"),
        "list_last_page": lambda: model_versions.list_versions(
            model_name, "accuracy", 20, last_page
        ),
        "list_before": lambda: model_versions.list_versions(model_name, "accuracy", before=21),
        "history": lambda: model_versions.alias_history(model_name, "champion"),
        "card": lambda: model_versions.model_card(model_name, newest),
    }
    print(json.dumps({name: seconds(call, runs) for name, call in calls.items()}))


if __name__ == "__main__":
    main()
