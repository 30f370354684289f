"""The targets: each figure's limit, the measured value against it, and a note on where the
time went."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks.measuring import MLFLOW_STAGES

# The anchor ("script") is benchmarks/mlflow_script.py: the whole job as one MLflow script with
# the same tracking, what a user would write instead of the pipeline.
TARGETS = {
    "repro_vs_script": ("full dvc repro on Iris", "≤ 2.5× one-process MLflow script", 2.5),
    "exp_vs_script": ("`dvc exp run -S train.n_estimators=…`", "≤ 1.6× the script", 1.6),
    "noop_vs_status": ("no-op dvc repro", "≤ 1.3× dvc status", 1.3),
    # CPU seconds (user + system of the whole process tree), the project's own venv built by
    # `uv sync --compile-bytecode` as `make setup` does: issue #32.
    "make_run_vs_noop_cpu": (
        "`make run` with nothing to do (CPU)",
        "≤ 1.3× a no-op `dvc repro`'s CPU",
        1.3,
    ),
    # Through the team stack's TLS front door, a stage's calls (access log): issue #32.
    "team_p50_ms": ("team server: per call through the front door, p50", "≤ 20 ms", 20.0),
    "team_p99_ms": ("team server: per call through the front door, p99", "≤ 80 ms", 80.0),
    "team_repro_vs_embedded": (
        "team server: `dvc repro --force`",
        "≤ 1.3× on the embedded store",
        1.3,
    ),
    "stage_work_s": (
        "MLflow stage (train, evaluate, save) minus its imports, worst",
        "≤ 1.5 s",
        1.5,
    ),
    "zenml_cached_vs_repro": ("cached ZenML run", "≤ 0.5× full repro", 0.5),
    "zenml_cold_vs_script": ("cold ZenML run", "≤ 1.5× the script", 1.5),
    # The targets are set for 100k and 1M rows; the labels name the sizes measured
    # (--quick: 1k and 10k), whose figures these keys keep in results.json.
    "scale_1m_vs_floor": ("{large} rows: pipeline", "≤ 1.5× floor", 1.5),
    "scale_1m_peak_rss_gib": ("{large} rows: peak RSS of any stage", "≤ 1 GiB", 1.0),
    "scale_growth_100k_1m": ("{small} → {large} rows: pipeline time growth", "≤ 12×", 12.0),
    # Scoring: throughput as time per row against the plain predict (≥ 0.8× its rows per
    # second is ≤ 1.25× its time), at the smaller size (1M); memory at the larger (10M).
    "scoring_vs_predict": (
        "scoring {score_small} rows: time per row",
        "≤ 1.25× `model.predict` (≥ 0.8× its rows/s)",
        1.25,
    ),
    "scoring_peak_rss_gib": ("scoring {score_large} rows: peak RSS", "≤ 1 GiB", 1.0),
    "scoring_rss_growth": (
        "scoring {score_small} → {score_large} rows: peak RSS growth",
        "≤ 1.5× (flat)",
        1.5,
    ),
    # Issue #34: the sweep's fixed costs per trial and what a second worker buys on 2 cores.
    "sweep_ray_cost_s": ("sweep, 1 Ray worker: Ray's own cost per trial", "≤ 2 s", 2.0),
    "sweep_2_vs_loop": (
        "sweep of {sweep_trials} trials on 2 Ray workers: wall time",
        "≤ 0.625× the `dvc exp run` loop (≥ 1.6× faster)",
        0.625,
    ),
}
# The sweep's trials (--quick: 2).


def rows_label(rows: int | None) -> str:
    """1000 → 1k, 1000000 → 1M: how the tables name a size."""
    if rows is None:
        return "?"
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{unit}"
    return f"{rows:,}"


def stage_work(repro: Mapping[str, Any], key: str = "stages") -> dict[str, float]:
    """Per MLflow stage: median seconds minus the median seconds of its imports.

    `stages`: in the cold repro; `stages_warm`: rerun on the store that repro created.
    """
    stages = repro.get(key, {})
    return {
        name: stages[name]["seconds"]["median"] - stages[name]["import_seconds"]["median"]
        for name in MLFLOW_STAGES
        if "import_seconds" in stages.get(name, {})
    }


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the measured value (medians), the limit, PASS or MISS."""
    values: dict[str, float | None] = {}
    script = results.get("script_iris", {}).get("seconds", {}).get("median")
    repro_iris = results.get("repro_iris", {})
    repro = repro_iris.get("seconds", {}).get("median")
    values["repro_vs_script"] = repro / script if repro and script else None
    values["noop_vs_status"] = results.get("noop", {}).get("ratio", {}).get("median")
    values["make_run_vs_noop_cpu"] = results.get("make_run_noop", {}).get("ratio", {}).get("median")
    team = results.get("team") or {}
    overall = team.get("latency", {}).get("overall") if team.get("available") else None
    if overall:
        values["team_p50_ms"], values["team_p99_ms"] = overall["p50_ms"], overall["p99_ms"]
    if team.get("available"):
        repro_team = team["repro"]["team"]["median"]
        values["team_repro_vs_embedded"] = repro_team / team["repro"]["embedded"]["median"]
    exp = results.get("experiment", {}).get("seconds", {}).get("median")
    values["exp_vs_script"] = exp / script if exp and script else None
    work = stage_work(repro_iris, "stages_warm") or stage_work(repro_iris)
    values["stage_work_s"] = max(work.values()) if work else None
    cached = results.get("zenml", {}).get("cached", {}).get("median")
    values["zenml_cached_vs_repro"] = cached / repro if cached and repro else None
    cold = results.get("zenml", {}).get("cold", {}).get("median")
    values["zenml_cold_vs_script"] = cold / script if cold and script else None
    by_rows = {entry["rows"]: entry for entry in results.get("scale", [])}
    big = by_rows.get(max(by_rows)) if by_rows else None
    if big is not None:
        values["scale_1m_vs_floor"] = (
            big["pipeline"]["seconds"]["median"] / big["floor"]["seconds"]["median"]
        )
        values["scale_1m_peak_rss_gib"] = (
            max(
                max(s["peak_rss_mib"]["max"] for s in big["pipeline"]["stages"].values()),
                big["pipeline"]["peak_rss_mib_bound"],
            )
            / 1024
        )
    sizes = sorted(by_rows)
    if len(sizes) >= 2:
        small, large = by_rows[sizes[-2]], by_rows[sizes[-1]]
        values["scale_growth_100k_1m"] = (
            large["pipeline"]["seconds"]["median"] / small["pipeline"]["seconds"]["median"]
        )
    scored = sorted(results.get("scoring", []), key=lambda entry: entry["rows"])
    if scored:
        first, last = scored[0], scored[-1]
        values["scoring_vs_predict"] = (
            first["predict_rows_per_s"]["median"] / first["score_rows_per_s"]["median"]
        )
        values["scoring_peak_rss_gib"] = last["peak_rss_mib"]["max"] / 1024
        if len(scored) >= 2:
            growth = last["peak_rss_mib"]["max"] / first["peak_rss_mib"]["max"]
            values["scoring_rss_growth"] = growth
    sweep = results.get("sweep")
    if sweep:
        values["sweep_ray_cost_s"] = sweep["ray_cost_per_trial_s"]["median"]
        values["sweep_2_vs_loop"] = 1 / sweep["speedup_2_workers"]["median"]
    labels = {
        "sweep_trials": str(sweep["trials"]) if sweep else "N",
        "large": rows_label(sizes[-1] if sizes else None),
        "small": rows_label(sizes[-2] if len(sizes) >= 2 else None),
        "score_small": rows_label(scored[0]["rows"] if scored else None),
        "score_large": rows_label(scored[-1]["rows"] if scored else None),
    }
    out = {}
    for key, (what, target, limit) in TARGETS.items():
        value = values.get(key)
        status = "n/a" if value is None else ("PASS" if value <= limit else "MISS")
        what = what.format(**labels)
        out[key] = {"what": what, "target": target, "value": value, "status": status}
    return out


def per_stage(seconds: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {sec:.2f} s" for name, sec in seconds.items())


def auto_notes(results: dict[str, Any]) -> dict[str, str]:
    """One line per target naming where the time went, from the measured figures."""
    notes: dict[str, str] = {}
    repro, script = results.get("repro_iris"), results.get("script_iris")
    if repro and script:
        stage_sum = sum(s["seconds"]["median"] for s in repro["stages"].values())
        imports = sum(
            s["import_seconds"]["median"] for s in repro["stages"].values() if "import_seconds" in s
        )
        notes["repro_vs_script"] = (
            f"5 stage processes {stage_sum:.1f} s, of which imports {imports:.1f} s (the script "
            f"imports once); DVC between stages {repro['seconds']['median'] - stage_sum:.1f} s"
        )
    exp = results.get("experiment")
    if exp and script:
        notes["exp_vs_script"] = f"ran {', '.join(exp['stages_ran'])}; load and preprocess skipped"
    if repro:
        work, cold = stage_work(repro, "stages_warm"), stage_work(repro)
        if work:
            notes["stage_work_s"] = (
                f"on an existing store: {per_stage(work)}; "
                f"in the cold repro, whose train also creates the store: {per_stage(cold)}"
            )
        elif cold:
            notes["stage_work_s"] = per_stage(cold)
    noop = results.get("noop")
    if noop:
        notes["noop_vs_status"] = (
            "no stage runs, nothing of ours: repro also imports networkx, builds the stage "
            "graph, collects the stages a second time and takes stage locks (DVC's own work)"
        )
    make_run = results.get("make_run_noop")
    if make_run:
        notes["make_run_vs_noop_cpu"] = (
            f"`make run` {make_run['make_run_cpu']['median']:.2f} s vs `dvc repro` "
            f"{make_run['repro_cpu']['median']:.2f} s of CPU: the check finds its stamp unchanged "
            "(no MLflow import), plus two `uv run` and make"
        )
    zenml = results.get("zenml")
    if zenml and not zenml.get("available"):
        notes["zenml_cached_vs_repro"] = f"not measured: {zenml['reason']}"
        notes["zenml_cold_vs_script"] = notes["zenml_cached_vs_repro"]
    elif zenml and repro:
        notes["zenml_cached_vs_repro"] = (
            "every step cached: ZenML only starts, checks its store and logs the run"
        )
        notes["zenml_cold_vs_script"] = (
            "one process like the script, plus ZenML's start-up and store (a fully cached "
            f"run alone takes {zenml['cached']['median']:.1f} s) and its artifact writes"
        )
        if "store" in zenml:
            notes["zenml_cold_vs_script"] += (
                f"; ZenML's own store, created once per machine before the first run "
                f"({zenml['store']['median']:.1f} s), is not in it"
            )
    scale = sorted(results.get("scale", []), key=lambda entry: entry["rows"])
    if scale:
        small, big = scale[0], scale[-1]
        fixed = small["pipeline"]["seconds"]["median"] - small["floor"]["seconds"]["median"]
        fit = big["pipeline"]["stages"]["train"]["seconds"]["median"]
        floor_fit = big["floor"]["phases"]["train"]["median"]
        notes["scale_1m_vs_floor"] = (
            f"fixed costs that do not grow with rows (start-up, MLflow, log_model, DVC): "
            f"~{fixed:.0f} s, the pipeline-minus-floor gap at {small['rows']:,} rows; "
            f"train stage {fit:.0f} s vs floor fit {floor_fit:.0f} s"
        )
        heaviest = max(
            big["pipeline"]["stages"],
            key=lambda n: big["pipeline"]["stages"][n]["peak_rss_mib"]["max"],
        )
        notes["scale_1m_peak_rss_gib"] = f"heaviest stage: {heaviest}"
        second = rows_label(scale[-2]["rows"] if len(scale) > 1 else None)
        notes["scale_growth_100k_1m"] = f"fixed costs dominate up to {second} rows; fit ~n log n"
    scored = sorted(results.get("scoring", []), key=lambda entry: entry["rows"])
    if scored:
        first = scored[0]
        score, predict = first["score_rows_per_s"]["median"], first["predict_rows_per_s"]["median"]
        drift = first["drift_seconds"]["median"]
        notes["scoring_vs_predict"] = (
            f"{score:,.0f} vs {predict:,.0f} rows/s; of the scoring, the drift computation "
            f"{drift:.2f} s"
        )
    sweep = results.get("sweep")
    if sweep:
        steps = sweep["steps_per_trial_1_worker"]
        made = sum(steps[name]["median"] for name in ("clone", "checkout", "data") if name in steps)
        notes["sweep_ray_cost_s"] = (
            f"Ray's start {sweep['ray_start_s']['median']:.1f} s and stop "
            f"{sweep['ray_stop_s']['median']:.1f} s once per sweep, "
            f"{sweep['ray_dispatch_per_trial_s']['median']:.2f} s per task"
            if "ray_stop_s" in sweep
            else "see Sweep"
        )
        notes["sweep_2_vs_loop"] = (
            f"a trial's task {sweep['sweep_1_task_s']['median']:.1f} s against the loop's "
            f"{sweep['loop_per_trial_s']['median']:.1f} s: its working copy (once per worker) "
            f"{made:.1f} s, `dvc exp run` {steps.get('exp run', {}).get('median', 0):.1f} s, the "
            f"push {steps.get('push', {}).get('median', 0):.1f} s per trial; 2 trials share 2 cores"
        )
    return notes
