"""`mlpipeline model list|promote|rollback|history|card`: the registered versions, the alias
moved by hand, and who moved it.

mlpipeline model list [--limit 20 --page 2]    # versions, scores, aliases; newest first
mlpipeline model list --before 5001            # versions 5000 and older (fast at any depth)
mlpipeline model promote 3 --reason "..."      # move @champion to version 3
mlpipeline model promote 4 --challenger        # move @challenger to version 4 (not @champion)
mlpipeline model rollback --reason "..."       # back to the previous version
mlpipeline model history [--page 2] [--json]   # the moves of @champion, newest first
mlpipeline model card 3                        # version 3's model card

The store is the pipeline's (MLFLOW_TRACKING_URI, else <repo>/mlflow.db), from any folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mlpipeline.commands.console import command, params_option
from mlpipeline.domain import alias_history
from mlpipeline.domain.params import Params
from mlpipeline.domain.promotion import CHALLENGER_ALIAS
from mlpipeline.files.params_yaml import load_params
from mlpipeline.tracking import model_versions

log = logging.getLogger("mlpipeline.registry")


model_option = click.option(
    "--model", help="registered model (default: params.yaml's mlflow.registered_model_name)"
)
limit_option = click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="rows a page"
)
page_option = click.option(
    "--page", type=click.IntRange(1), default=1, show_default=True, help="page, newest first"
)


def _names(params_file: Path, model: str | None) -> tuple[str, Params]:
    params = load_params(params_file)
    return model or params.mlflow.registered_model_name, params


@command("registry", help="Versions with their aliases, scores and runs, newest first.")
@limit_option
@page_option
@click.option(
    "--before",
    type=click.IntRange(1),
    help="only versions numbered below this one (as fast at any depth; --page reads the "
    "pages before it)",
)
@model_option
@params_option
def list_versions(
    limit: int, page: int, before: int | None, model: str | None, params: Path
) -> None:
    model_name, settings = _names(params, model)
    metric = settings.save.champion_metric
    found = model_versions.list_versions(model_name, metric, limit, page, before)
    print(_table(found.rows))
    if found.more:
        print(f"older versions: --page {page + 1} (or --before {found.oldest})")


@command("registry", help="Move the champion alias to a version (recorded in its history).")
@click.argument("version")
@click.option("--reason", help="why, for the history")
@click.option(
    "--challenger",
    is_flag=True,
    help=f"move @{CHALLENGER_ALIAS} instead (never @champion): the version "
    "`model score --with-challenger` compares with the champion",
)
@model_option
@params_option
def promote(
    version: str, reason: str | None, challenger: bool, model: str | None, params: Path
) -> None:
    model_name, settings = _names(params, model)
    if challenger:
        champion_alias = settings.mlflow.champion_alias
        before = model_versions.promote_challenger(model_name, champion_alias, version, reason)
        log.info(
            "%s@%s: version %s (was %s)", model_name, CHALLENGER_ALIAS, version, before or "unset"
        )
        return
    alias = settings.mlflow.champion_alias
    before = model_versions.promote(
        model_name, alias, version, reason, metric=settings.save.champion_metric
    )
    log.info("%s@%s: version %s (was %s)", model_name, alias, version, before or "unset")


@command("registry", help="Move the champion alias back to where its last move took it from.")
@click.option("--reason", help="why, for the history")
@model_option
@params_option
def rollback(reason: str | None, model: str | None, params: Path) -> None:
    model_name, settings = _names(params, model)
    alias = settings.mlflow.champion_alias
    before, after = model_versions.rollback(model_name, alias, reason)
    log.info("%s@%s: version %s (was %s)", model_name, alias, after, before)


@command("registry", help="Who moved the champion alias, when, from which version to which.")
@click.option("--json", "as_json", is_flag=True, help="print every move as JSON, oldest first")
@limit_option
@page_option
@model_option
@params_option
def history(as_json: bool, limit: int, page: int, model: str | None, params: Path) -> None:
    model_name, settings = _names(params, model)
    _print_history(model_name, settings.mlflow.champion_alias, as_json, limit, page)


@command("registry", help="Print a version's model card (Markdown).")
@click.argument("version")
@model_option
@params_option
def card(version: str, model: str | None, params: Path) -> None:
    model_name, settings = _names(params, model)
    print(model_versions.model_card(model_name, version, settings.mlflow.champion_alias), end="")


def _print_history(model_name: str, alias: str, as_json: bool, limit: int, page: int) -> None:
    moves, current, unrecorded = model_versions.alias_history(model_name, alias)
    if as_json:
        document = {
            "model": model_name,
            "alias": alias,
            "current_version": current,
            "moves": [asdict(move) for move in moves],
            "unrecorded_move": unrecorded,
        }
        print(json.dumps(document, indent=2))
        return
    print(f"{model_name}@{alias}: version {current or '(not set)'}")
    shown, more = alias_history.newest_first(moves, limit, page)
    if shown:
        print(_table(alias_history.table_rows(shown)))
        if more:
            print(f"older moves: --page {page + 1}")
    elif moves:
        print(f"no moves on page {page} ({len(moves)} recorded, {limit} a page)")
    else:
        print("no recorded moves")
    if unrecorded:
        print(unrecorded)


def _table(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0])
    cells = [header, *([str(row[key]) for key in header] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )
