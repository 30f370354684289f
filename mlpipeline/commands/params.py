"""`python -m mlpipeline.commands.params`: validate params.yaml and print it resolved."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlpipeline.domain.errors import ParamsError
from mlpipeline.files.params_yaml import load_params
from mlpipeline.files.paths import PARAMS


def main(argv: list[str] | None = None) -> int:
    """Validate params.yaml and print the params the stages would run with."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m mlpipeline.commands.params",
        description="Validate a params file and print it resolved (defaults filled in); "
        "exit 1 with the offending keys if it is invalid.",
    )
    parser.add_argument(
        "--params", type=Path, default=PARAMS, help="params file (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        print(exc, file=sys.stderr)
        return 1
    resolved = params.model_dump(mode="json")
    if params.load.source == "synthetic":  # the defaults of omitted keys, spelled out
        resolved["load"]["synthetic"] = params.load.synthetic_shape().model_dump(mode="json")
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
