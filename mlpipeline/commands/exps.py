"""`mlpipeline report exps [DVC OPTIONS]`: `dvc exp show` with the headline metrics and only
the params that differ between the rows.

Plain `dvc exp show` prints 70+ columns (every per-class score and dependency hash); this
keeps Experiment, Created and the headline metrics (mlpipeline/domain/metric_names.py) and
passes every other option to DVC (`-A --md`, `--json`, ...). DVC's exit status is its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from mlpipeline.commands.console import command
from mlpipeline.domain.metric_names import HEADLINE_METRICS
from mlpipeline.files.paths import ROOT


def show_command(dvc_options: tuple[str, ...]) -> list[str]:
    """The `dvc exp show` command line: headline metrics, changed params, DVC's options."""
    beside = Path(sys.executable).with_name("dvc")  # the venv's dvc, also off PATH
    dvc = str(beside) if beside.exists() else shutil.which("dvc") or "dvc"
    keep = "^(" + "|".join(("Experiment", "Created", *HEADLINE_METRICS)) + ")$"
    return [
        dvc,
        "exp",
        "show",
        "--only-changed",
        "--keep",
        keep,
        "--drop",
        r".*/|per_class\.",
        *dvc_options,
    ]


@command(
    "exps",
    help="Experiments (`dvc exp show`): headline metrics and the params that differ; other "
    "options go to dvc exp show (-A --md, --json, ...).",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("dvc_options", nargs=-1, type=click.UNPROCESSED)
def exps(dvc_options: tuple[str, ...]) -> int:
    return subprocess.run(show_command(dvc_options), cwd=ROOT, check=False).returncode
