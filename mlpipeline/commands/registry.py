"""`python -m mlpipeline.commands.registry`: list the registered versions, move the alias by hand.

python -m mlpipeline.commands.registry list         # versions, scores, aliases
python -m mlpipeline.commands.registry promote 3    # move @champion to version 3 (or back)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

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
    parser.add_argument("--model", help="registered model (default: mlflow.registered_model_name)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions with their aliases and scores")
    promote_parser = commands.add_parser("promote", help="move the alias to a version")
    promote_parser.add_argument("version", help="the version number to promote")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[registry] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        params = load_params(args.params)
        model_name = args.model or params.mlflow.registered_model_name
        alias = params.mlflow.champion_alias
        if args.command == "list":
            rows = registry.list_versions(model_name, params.save.champion_metric)
            print(_table(rows))
        else:
            before = registry.promote(model_name, alias, args.version)
            log.info(
                "%s@%s: version %s (was %s)", model_name, alias, args.version, before or "unset"
            )


def _table(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0])
    cells = [header, *([str(row[key]) for key in header] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


if __name__ == "__main__":
    main()
