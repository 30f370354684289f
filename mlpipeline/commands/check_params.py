"""`mlpipeline check params`: validate params.yaml and print it resolved."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from mlpipeline.commands.console import EXIT_ERROR, params_option
from mlpipeline.domain.errors import ParamsError
from mlpipeline.files.params_yaml import load_params


@click.command(
    help="Validate a params file and print it resolved (defaults filled in); exit "
    "1 with the offending keys if it is invalid."
)
@params_option
def check_params(params: Path) -> None:
    try:
        checked = load_params(params)
    except ParamsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_ERROR)
    resolved = checked.model_dump(mode="json")
    if checked.load.source == "synthetic":  # the defaults of omitted keys, spelled out
        resolved["load"]["synthetic"] = checked.load.synthetic_shape().model_dump(mode="json")
    click.echo(yaml.safe_dump(resolved, sort_keys=False), nl=False)
