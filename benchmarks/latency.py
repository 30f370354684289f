"""Per-call latency of an MLflow server from its front door's access log (docker/proxy.conf's
`timed` format): p50/p99 per group of endpoints a pipeline stage calls, and overall.

A line reads `ADDR [TIME] "METHOD /path" STATUS BYTES rt=SECONDS urt=SECONDS`; any other line
(nginx's own messages, docker's) is not a request and is skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d{3}) \d+ '
    r"rt=(?P<seconds>\d+(?:\.\d+)?) urt=(?P<upstream>[-0-9., :]+)"
)
# In the order they are tried; a call in none of them is "other" (experiments/get-by-name,
# runs/update, logged-models/create, ...).
GROUPS = (
    "runs/create",
    "log-batch",
    "artifacts upload",
    "artifacts download",
    "registered-models/model-versions",
    "search",
)
OVERALL = "overall"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    status: int
    seconds: float  # what the client waited (nginx's $request_time)
    upstream_seconds: float | None  # MLflow's share; None when nginx answered alone


def parse_access_log(lines: Iterable[str]) -> list[Call]:
    """The requests of an access log, in order; the /health checks are left out."""
    calls = []
    for line in lines:
        found = LINE.search(line)
        if found is None or found["path"] == "/health":
            continue
        # Several upstream tries read "0.010, 0.020"; nginx alone writes "-".
        tries = [float(part) for part in re.findall(r"\d+(?:\.\d+)?", found["upstream"])]
        calls.append(
            Call(
                method=found["method"],
                path=found["path"],
                status=int(found["status"]),
                seconds=float(found["seconds"]),
                upstream_seconds=sum(tries) if tries else None,
            )
        )
    return calls


def endpoint_group(call: Call) -> str:
    """Which of GROUPS (or "other") a call belongs to."""
    path = call.path
    if "/mlflow-artifacts/" in path:
        return "artifacts upload" if call.method in ("PUT", "POST") else "artifacts download"
    if path.endswith("/runs/create"):
        return "runs/create"
    if path.endswith("/runs/log-batch"):
        return "log-batch"
    if "/registered-models/" in path or "/model-versions/" in path:
        return "registered-models/model-versions"
    if path.endswith("/search"):
        return "search"
    return "other"


def percentile(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value with `percent` % of them at or below.

    With fewer than 100 values p99 is the largest, which is what a stage waited for longest.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], not {percent}")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def latency_by_group(calls: Sequence[Call]) -> dict[str, dict[str, float | int]]:
    """Per group (those with calls, then "other" and "overall"): the count of calls, the
    errors (status ≥ 400) and p50/p99 of the client's wait in milliseconds."""
    grouped: dict[str, list[Call]] = {}
    for call in calls:
        grouped.setdefault(endpoint_group(call), []).append(call)
    order = [name for name in (*GROUPS, "other") if name in grouped]
    table = {name: _figures(grouped[name]) for name in order}
    if calls:
        table[OVERALL] = _figures(calls)
    return table


def _figures(calls: Sequence[Call]) -> dict[str, float | int]:
    seconds = [call.seconds for call in calls]
    return {
        "calls": len(calls),
        "errors": sum(call.status >= 400 for call in calls),
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
    }
