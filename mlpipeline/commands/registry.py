"""`python -m mlpipeline.commands.registry`: list the registered versions, move the alias by hand,
and show who moved it.

python -m mlpipeline.commands.registry list                        # versions, scores, aliases
python -m mlpipeline.commands.registry promote 3 --reason "..."    # move @champion to version 3
python -m mlpipeline.commands.registry rollback --reason "..."     # back to the previous version
python -m mlpipeline.commands.registry history [--json]            # every move of @champion
python -m mlpipeline.commands.registry card 3                      # version 3's model card
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlpipeline.domain import alias_history
from mlpipeline.files import paths
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import exit_on_user_error
from mlpipeline.tracking import registry

log = logging.getLogger("mlpipeline.registry")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mlpipeline.commands.registry",
        description="List the registered versions or move the champion alias by hand. The "
        "store is the pipeline's (MLFLOW_TRACKING_URI, else <repo>/mlflow.db), from any folder.",
    )
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="default: %(default)s")
    model_help = "registered model (default: mlflow.registered_model_name)"
    parser.add_argument("--model", help=model_help)
    # --model also after the command (`registry history --model NAME`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", dest="command_model", help=model_help)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common], help="versions with their aliases and scores")
    promote_parser = commands.add_parser(
        "promote", parents=[common], help="move the alias to a version (recorded in its history)"
    )
    promote_parser.add_argument("version", help="the version number to promote")
    promote_parser.add_argument("--reason", help="why, for the history")
    rollback_parser = commands.add_parser(
        "rollback", parents=[common], help="move the alias back to where its last move took it from"
    )
    rollback_parser.add_argument("--reason", help="why, for the history")
    history_parser = commands.add_parser(
        "history", parents=[common], help="who moved the alias, when, from which version to which"
    )
    history_parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    card_parser = commands.add_parser(
        "card", parents=[common], help="print a version's model card (Markdown)"
    )
    card_parser.add_argument("version", help="the version number")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[registry] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        params = load_params(args.params)
        model_name = args.command_model or args.model or params.mlflow.registered_model_name
        alias = params.mlflow.champion_alias
        if args.command == "list":
            rows = registry.list_versions(model_name, params.save.champion_metric)
            print(_table(rows))
        elif args.command == "promote":
            before = registry.promote(model_name, alias, args.version, args.reason)
            log.info(
                "%s@%s: version %s (was %s)", model_name, alias, args.version, before or "unset"
            )
        elif args.command == "rollback":
            before, after = registry.rollback(model_name, alias, args.reason)
            log.info("%s@%s: version %s (was %s)", model_name, alias, after, before)
        elif args.command == "card":
            print(registry.model_card(model_name, args.version), end="")
        else:
            _print_history(model_name, alias, args.json)


def _print_history(model_name: str, alias: str, as_json: bool) -> None:
    moves, current, unrecorded = registry.alias_history(model_name, alias)
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
    if moves:
        print(_table(alias_history.table_rows(moves)))
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


if __name__ == "__main__":
    main()
