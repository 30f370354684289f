"""`mlpipeline model sweep`: search params.yaml's `sweep:` space; Optuna chooses, Ray runs
each trial as a DVC experiment (docs/sweeps.md)."""

from __future__ import annotations

from pathlib import Path

import click

from mlpipeline.commands.console import command, params_option
from mlpipeline.files.params_yaml import load_params
from mlpipeline.sweeps.ray_sweep import SweepOptions, SweepOutcome, run_sweep


@command(
    "sweep",
    help="Run the sweep of params.yaml's `sweep:` section, each trial a DVC "
    "experiment under one MLflow parent run.",
)
@click.option("--trials", type=int, help="trials to add this time (default: sweep.trials)")
@click.option("--parallel", type=int, help="trials run at once (default: sweep.parallel)")
@click.option("--ray-address", envvar="RAY_ADDRESS", help="an existing Ray cluster [RAY_ADDRESS]")
@click.option("--storage", envvar="SWEEP_STORAGE", help="the study's database URL [SWEEP_STORAGE]")
@click.option(
    "--git-remote",
    default="origin",
    show_default=True,
    help="on a cluster: the git remote the workers clone and push to",
)
@click.option("--apply-best", is_flag=True, help="then `dvc exp apply` the best trial, `dvc repro`")
@params_option
def sweep(
    trials: int | None,
    parallel: int | None,
    ray_address: str | None,
    storage: str | None,
    git_remote: str,
    apply_best: bool,
    params: Path,
) -> None:
    options = SweepOptions(
        trials, parallel, ray_address or None, storage or None, git_remote, apply_best
    )
    outcome = run_sweep(load_params(params), options)
    click.echo(summary(outcome, applied=apply_best))


def summary(outcome: SweepOutcome, applied: bool) -> str:
    """What the sweep did, its best trial and how to make it the model."""
    lines = [
        f"study {outcome.study_name}: {len(outcome.finished)} trials finished, "
        f"{len(outcome.failed)} failed or pruned; MLflow parent run {outcome.parent_run_id}"
    ]
    if outcome.best_experiment is None:
        lines.append("no trial has finished yet")
        return "\n".join(lines)
    lines.append(
        f"best: trial {outcome.best_number} ({outcome.best_experiment}), "
        f"value {outcome.best_value:.4f}"
    )
    if applied:
        lines.append(f"applied {outcome.best_experiment} and ran the pipeline (save's line above)")
    else:
        lines += [
            "to make it the model:",
            f"  dvc exp apply {outcome.best_experiment}",
            "  make run",
        ]
    return "\n".join(lines)
