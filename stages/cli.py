"""The shared edge of every stage script: logging setup, params, and clean failures."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from stages.errors import PipelineError
from stages.params import Params, load_params
from stages.paths import PARAMS

log = logging.getLogger("stages")


def run_stage(name: str, main: Callable[[Params], None], argv: list[str] | None = None) -> None:
    """Parse `--params`, validate params, run `main`; a PipelineError exits 1 with its message.

    Every stage does all its work before it writes anything, so a failure leaves the
    previous outputs in place (dvc.yaml marks them `persist` so DVC keeps them too).
    """
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=main.__doc__)
    parser.add_argument(
        "--params", type=Path, default=PARAMS, help="params file (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        main(load_params(args.params))


@contextlib.contextmanager
def exit_on_user_error(logger: logging.Logger) -> Iterator[None]:
    """Errors the user can act on become one logged message and exit status 1."""
    try:
        yield
    except PipelineError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    except Exception as exc:
        # MLflow's own errors (a store that refuses a write, a server that died mid-run) are
        # the user's to act on too; anything else is a bug and keeps its traceback.
        if not type(exc).__module__.startswith("mlflow"):
            raise
        import mlflow  # already imported: the error came from it

        logger.error("MLflow store %s: %s", mlflow.get_tracking_uri(), exc)
        sys.exit(1)
