"""benchmarks/ labels the scale targets with the sizes it measured."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.bench import merge_into
from benchmarks.measuring import MLFLOW_STAGES
from benchmarks.rendering import render_team, team_measured
from benchmarks.targets import rows_label, verdicts


def scale_entry(rows: int, seconds: float) -> dict[str, Any]:
    stage = {"seconds": {"median": seconds / 5}, "peak_rss_mib": {"max": 300.0}}
    return {
        "rows": rows,
        "pipeline": {
            "seconds": {"median": seconds},
            "stages": dict.fromkeys(["load", "preprocess", "train", "evaluate", "save"], stage),
            "peak_rss_mib_bound": 400.0,
        },
        "floor": {"seconds": {"median": seconds / 4}},
    }


@pytest.mark.parametrize(
    ("sizes", "large", "growth"),
    [
        ([1_000, 10_000], "10k rows: pipeline", "1k → 10k rows: pipeline time growth"),
        ([10_000, 100_000, 1_000_000], "1M rows: pipeline", "100k → 1M rows: pipeline time growth"),
    ],
)
def test_scale_targets_name_the_measured_sizes(sizes: list[int], large: str, growth: str) -> None:
    results = {"scale": [scale_entry(rows, rows / 1000) for rows in sizes]}
    verdict = verdicts(results)
    assert verdict["scale_1m_vs_floor"]["what"] == large
    assert verdict["scale_1m_peak_rss_gib"]["what"] == large.replace(
        "pipeline", "peak RSS of any stage"
    )
    assert verdict["scale_growth_100k_1m"]["what"] == growth
    assert verdict["scale_growth_100k_1m"]["value"] == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("rows", "label"), [(1_000, "1k"), (250_000, "250k"), (2_000_000, "2M"), (1_500, "1,500")]
)
def test_rows_label(rows: int, label: str) -> None:
    assert rows_label(rows) == label


def stage_figures(seconds: float, imports: float) -> dict[str, Any]:
    return {"seconds": {"median": seconds}, "import_seconds": {"median": imports}}


def test_stage_work_target_is_judged_on_an_existing_store() -> None:
    """The cold repro's train also creates the store (once per repository); the target is
    judged on the stages rerun against it, and the note gives both."""
    cold = {"train": stage_figures(6.0, 3.0), "evaluate": stage_figures(4.0, 3.0)}
    warm = {"train": stage_figures(4.2, 3.0), "evaluate": stage_figures(3.9, 3.0)}
    results = {"repro_iris": {"seconds": {"median": 15.0}, "stages": cold, "stages_warm": warm}}
    verdict = verdicts(results)["stage_work_s"]
    assert verdict["value"] == pytest.approx(1.2)
    assert verdict["status"] == "PASS"


def scoring_entry(rows: int, score: float, predict: float, peak: float) -> dict[str, Any]:
    def stat(value: float) -> dict[str, float]:
        return {"median": value, "max": value}

    return {
        "rows": rows,
        "score_rows_per_s": stat(score),
        "predict_rows_per_s": stat(predict),
        "peak_rss_mib": stat(peak),
        "predict_peak_rss_mib": stat(peak * 2),
        "drift_seconds": stat(0.3),
        "seconds": stat(rows / score + 5),
    }


def test_scoring_targets_compare_with_predict_and_judge_memory() -> None:
    results = {
        "scoring": [
            scoring_entry(10_000_000, 150_000.0, 160_000.0, 600.0),
            scoring_entry(1_000_000, 200_000.0, 180_000.0, 400.0),
        ]
    }
    verdict = verdicts(results)
    assert verdict["scoring_vs_predict"]["what"] == "scoring 1M rows: time per row"
    assert verdict["scoring_vs_predict"]["value"] == pytest.approx(0.9)
    assert verdict["scoring_vs_predict"]["status"] == "PASS"
    assert verdict["scoring_peak_rss_gib"]["what"] == "scoring 10M rows: peak RSS"
    assert verdict["scoring_peak_rss_gib"]["value"] == pytest.approx(600 / 1024)
    assert verdict["scoring_rss_growth"]["value"] == pytest.approx(1.5)
    assert verdict["scoring_rss_growth"]["status"] == "PASS"
    slow = verdicts({"scoring": [scoring_entry(1_000_000, 100_000.0, 200_000.0, 400.0)]})
    assert slow["scoring_vs_predict"]["status"] == "MISS"
    assert slow["scoring_rss_growth"]["status"] == "n/a"


def test_merge_replaces_the_figures_measured_and_keeps_the_others() -> None:
    machine = {"date": "then", "load_average_start": [1.0, 1.0, 1.0]}
    report = {
        "machine": machine,
        "runs": 3,
        "noop": {"kept": True},
        "scoring": [scoring_entry(1_000_000, 1.0, 1.0, 1.0)],
        "load_average_end": [2.0, 2.0, 2.0],
        "total_seconds": 600.0,
        "targets": {"stale": {}},
    }
    partial = {
        "machine": {**machine, "date": "now", "load_average_start": [9.0, 8.0, 7.0]},
        "runs": 1,
        "scoring": [scoring_entry(1_000_000, 200_000.0, 180_000.0, 400.0)],
        "load_average_end": [13.0, 12.0, 11.0],
        "total_seconds": 420.0,
    }
    merged = merge_into(report, partial)
    assert merged["noop"] == {"kept": True} and merged["runs"] == 3
    assert merged["machine"]["date"] == "then" and "targets" not in merged
    assert merged["scoring"] == partial["scoring"]
    assert merged["merged"] == [
        {
            "figures": ["scoring"],
            "date": "now",
            "runs": 1,
            "load_average_start": [9.0, 8.0, 7.0],
            "load_average_end": [13.0, 12.0, 11.0],
            "minutes": 7.0,
        }
    ]
    # Measured again: the newer entry replaces the older one.
    assert merge_into(merged, partial)["merged"] == merged["merged"]


def test_the_team_figure_is_reported_without_a_target() -> None:
    """Its row in the Targets table says what was measured, never PASS or MISS; its section
    has a line per endpoint group and per MLflow stage."""
    stage = {"seconds": {"median": 2.0, "min": 2.0, "max": 2.0}}
    team = {
        "available": True,
        "server": "a server",
        "repro": {name: {"median": 9.0, "min": 9.0, "max": 9.0} for name in ("team", "embedded")},
        "stages": {name: dict.fromkeys(MLFLOW_STAGES, stage) for name in ("team", "embedded")},
        "overhead_s": {"train": 1.5, "evaluate": 0.25, "save": -0.5},
        "latency": {
            "runs/create": {"calls": 1, "errors": 0, "p50_ms": 40.0, "p99_ms": 40.0},
            "overall": {"calls": 3, "errors": 1, "p50_ms": 50.0, "p99_ms": 900.0},
        },
    }
    assert team_measured(team) == (
        "p50 50 ms, p99 900 ms; train +1.50 s, evaluate +0.25 s, save -0.50 s (see Team server)"
    )
    section = "\n".join(render_team(team))
    assert "| overall | n/a (reported) | 3 | 1 | 50.0 | 900.0 |" in section
    assert all(f"| {name} | n/a (reported) |" in section for name in MLFLOW_STAGES)
    failed = {"available": False, "reason": "the run failed: no docker"}
    assert team_measured(failed) == "not available: the run failed: no docker"
    assert render_team(failed) == []


def test_issue_32_targets_judge_make_run_cpu_and_the_team_server() -> None:
    stage = {"seconds": {"median": 2.0, "min": 2.0, "max": 2.0}}
    team = {
        "available": True,
        "repro": {
            "team": {"median": 26.0, "min": 26.0, "max": 26.0},
            "embedded": {"median": 20.0, "min": 20.0, "max": 20.0},
        },
        "stages": {name: dict.fromkeys(MLFLOW_STAGES, stage) for name in ("team", "embedded")},
        "overhead_s": dict.fromkeys(MLFLOW_STAGES, 0.0),
        "latency": {"overall": {"calls": 3, "errors": 0, "p50_ms": 12.0, "p99_ms": 95.0}},
    }
    make_run = {"ratio": {"median": 1.2}}
    verdict = verdicts({"team": team, "make_run_noop": make_run})
    assert verdict["make_run_vs_noop_cpu"]["status"] == "PASS"
    assert verdict["team_p50_ms"]["value"] == 12.0 and verdict["team_p50_ms"]["status"] == "PASS"
    assert verdict["team_p99_ms"]["status"] == "MISS"
    assert verdict["team_repro_vs_embedded"]["value"] == pytest.approx(1.3)
    assert verdict["team_repro_vs_embedded"]["status"] == "PASS"
    missing = verdicts({"team": {"available": False, "reason": "no docker"}})
    assert missing["team_p50_ms"]["status"] == "n/a"
    assert verdicts({})["make_run_vs_noop_cpu"]["status"] == "n/a"


def test_the_sweep_figure_reads_the_sweeps_log_and_judges_issue_34_targets() -> None:
    from benchmarks import sweep

    log = (
        "[sweep] INFO Ray ready in 4.2 s\n"
        "[sweep] INFO trial 0 (r0w1-0): f1_score = 0.9667 in 20.5 s on host, worker 41 "
        "(clone 0.1 s, checkout 0.2 s, data 3.0 s, exp run 15.0 s, push 0.1 s); Ray 0.30 s\n"
        "[sweep] INFO trial 1 (r0w1-1): f1_score = 1.0000 in 15.5 s on host, worker 41 "
        "(reset 0.1 s, exp run 15.0 s, push 0.1 s); Ray 0.02 s\n"
        "[sweep] INFO Ray's own cost: start 4.2 s, stop 1.2 s, 0.3 s between submitting 2 "
        "trials and having their results, beyond their own run: 2.85 s a trial\n"
    )
    assert sweep.finished_trials(log) == [
        {
            "seconds": 20.5,
            "worker": 41,
            "steps": {"clone": 0.1, "checkout": 0.2, "data": 3.0, "exp run": 15.0, "push": 0.1},
            "ray": 0.3,
        },
        {
            "seconds": 15.5,
            "worker": 41,
            "steps": {"reset": 0.1, "exp run": 15.0, "push": 0.1},
            "ray": 0.02,
        },
    ]
    one = {"seconds": 40.0, **sweep.read_sweep_log(log, 2)}
    assert one["ray_per_trial_s"] == pytest.approx((4.2 + 1.2 + 0.3) / 2)
    assert (one["workers"], one["copies"], one["task_seconds"]) == (1, 1, 36.0)
    two = {**one, "seconds": 20.0, "workers": 2, "copies": 2}
    figures = sweep.summarize(2, [{"loop": 34.0, 1: one, 2: two}])
    assert figures["ray_cost_per_trial_s"]["median"] == pytest.approx(2.85)
    # 40 s of wall: 36 s the trials' tasks, 5.7 s Ray's: the sweep's own is what is left.
    assert figures["sweep_other_per_trial_s"]["median"] == pytest.approx((40 - 36) / 2 - 2.85)
    assert figures["speedup_2_workers"]["median"] == pytest.approx(1.7)
    assert (figures["workers_2"], figures["copies_2"]) == (2, 2)
    verdict = verdicts({"sweep": figures})
    assert verdict["sweep_ray_cost_s"]["status"] == "MISS"
    assert verdict["sweep_2_vs_loop"]["what"] == "sweep of 2 trials on 2 Ray workers: wall time"
    assert verdict["sweep_2_vs_loop"]["value"] == pytest.approx(20 / 34)
    assert verdict["sweep_2_vs_loop"]["status"] == "PASS"
    section = "\n".join(sweep.render(figures))
    assert "| sweep, 2 workers | 20.0 s (20.0–20.0) | 10.0 s | 1.70× (1.70–1.70) |" in section
    with pytest.raises(RuntimeError, match="1 of 2 trials finished"):
        sweep.read_sweep_log(log.splitlines()[1], 2)
    assert verdicts({})["sweep_2_vs_loop"]["status"] == "n/a"
