"""benchmarks/latency.py: the front door's access log to p50/p99 per endpoint group."""

from __future__ import annotations

import pytest

from benchmarks.latency import Call, endpoint_group, latency_by_group, parse_access_log, percentile

# As `docker logs` shows docker/proxy.conf's `timed` lines, with nginx's own messages between.
LOG = """\
/docker-entrypoint.sh: Configuration complete; ready for start up
172.18.0.1 [2026-12-02T19:50:01+00:00] "GET /health" 200 2 rt=0.001 urt=0.001
172.18.0.1 [2026-12-02T19:50:02+00:00] "POST /api/2.0/mlflow/runs/create" 200 512 rt=0.120 urt=0.118
172.18.0.1 [2026-12-02T19:50:02+00:00] "POST /api/2.0/mlflow/runs/log-batch" 200 2 rt=0.040 urt=0.039
2026/12/02 19:50:02 [warn] 7#7: *12 an upstream response is buffered to a temporary file
172.18.0.1 [2026-12-02T19:50:03+00:00] "PUT /api/2.0/mlflow-artifacts/artifacts/1/a/model.pkl" 200 2 rt=0.300 urt=0.250, 0.010
172.18.0.1 [2026-12-02T19:50:03+00:00] "GET /api/2.0/mlflow-artifacts/artifacts/1/a/model.pkl" 200 900 rt=0.050 urt=0.049
172.18.0.1 [2026-12-02T19:50:04+00:00] "POST /api/2.0/mlflow/model-versions/create" 200 300 rt=0.200 urt=0.199
172.18.0.1 [2026-12-02T19:50:04+00:00] "POST /api/2.0/mlflow/registered-models/alias" 200 2 rt=0.080 urt=0.079
172.18.0.1 [2026-12-02T19:50:04+00:00] "POST /api/2.0/mlflow/runs/search" 200 2 rt=0.060 urt=0.059
172.18.0.1 [2026-12-02T19:50:05+00:00] "GET /api/2.0/mlflow/experiments/get-by-name" 404 80 rt=0.010 urt=0.010
172.18.0.1 [2026-12-02T19:50:05+00:00] "POST /api/2.0/mlflow/runs/update" 429 0 rt=0.000 urt=-
"""  # noqa: E501


def test_the_log_gives_each_request_once_without_health_checks_or_nginx_messages() -> None:
    calls = parse_access_log(LOG.splitlines())
    assert [call.path.rsplit("/", 1)[-1] for call in calls] == [
        "create",
        "log-batch",
        "model.pkl",
        "model.pkl",
        "create",
        "alias",
        "search",
        "get-by-name",
        "update",
    ]
    assert calls[0] == Call("POST", "/api/2.0/mlflow/runs/create", 200, 0.120, 0.118)
    # Two upstream tries add up; nginx answering alone has no upstream time.
    assert calls[2].upstream_seconds == pytest.approx(0.26)
    assert calls[-1].upstream_seconds is None


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        ("POST", "/api/2.0/mlflow/runs/create", "runs/create"),
        ("POST", "/api/2.0/mlflow/runs/log-batch", "log-batch"),
        ("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/x/model.pkl", "artifacts upload"),
        ("POST", "/api/2.0/mlflow-artifacts/mpu/create/1/x", "artifacts upload"),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts/1/x/model.pkl", "artifacts download"),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts", "artifacts download"),
        ("POST", "/api/2.0/mlflow/registered-models/create", "registered-models/model-versions"),
        ("GET", "/api/2.0/mlflow/model-versions/search", "registered-models/model-versions"),
        ("POST", "/api/2.0/mlflow/runs/search", "search"),
        ("POST", "/api/2.0/mlflow/logged-models/search", "search"),
        ("POST", "/api/2.0/mlflow/runs/update", "other"),
    ],
)
def test_each_call_lands_in_its_endpoint_group(method: str, path: str, group: str) -> None:
    assert endpoint_group(Call(method, path, 200, 0.1, 0.1)) == group


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([3.0], 50, 3.0),
        ([3.0], 99, 3.0),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 99, 4.0),
        (list(range(1, 201)), 50, 100),
        (list(range(1, 201)), 99, 198),
        (list(range(1, 201)), 100, 200),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], percent: float, expected: float):
    assert percentile(values, percent) == expected


@pytest.mark.parametrize(("values", "percent"), [([], 50), ([1.0], 0), ([1.0], 101)])
def test_percentile_refuses_what_has_none(values: list[float], percent: float) -> None:
    with pytest.raises(ValueError, match="percent"):
        percentile(values, percent)


def test_the_table_has_each_group_with_calls_then_other_and_overall() -> None:
    table = latency_by_group(parse_access_log(LOG.splitlines()))
    assert list(table) == [
        "runs/create",
        "log-batch",
        "artifacts upload",
        "artifacts download",
        "registered-models/model-versions",
        "search",
        "other",
        "overall",
    ]
    assert table["registered-models/model-versions"] == {
        "calls": 2,
        "errors": 0,
        "p50_ms": 80.0,
        "p99_ms": 200.0,
    }
    assert table["other"]["errors"] == 2
    assert table["overall"]["calls"] == 9
    assert table["overall"]["p50_ms"] == 60.0
    assert table["overall"]["p99_ms"] == 300.0


def test_no_calls_no_table() -> None:
    assert latency_by_group([]) == {}
