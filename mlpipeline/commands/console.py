"""What every `mlpipeline` command shares: its logging, one-line failures and exit statuses.

A command's body is a plain function under `@command(...)`; an int it returns is its exit
status (docs/failures.md lists them), anything the user can act on becomes one logged line
and status 1 (mlpipeline.runner.exit_on_user_error).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlpipeline.files import paths
from mlpipeline.runner import exit_on_user_error

# Exit statuses users script against (docs/failures.md, "Exit statuses").
EXIT_OK = 0
EXIT_ERROR = 1  # the user can act on it; nothing was written
EXIT_USAGE = 2  # a wrong option or argument (click's own)
EXIT_DRIFT = 3  # `model score`: finished, and the batch drifted past the gate
EXIT_DIFFERS = 4  # `model reproduce`: rebuilt, and an output differs

Body = TypeVar("Body", bound=Callable[..., Any])

params_option = click.option(
    "--params",
    type=click.Path(dir_okay=False, path_type=Path),
    default=paths.PARAMS,
    show_default="params.yaml of the repository",
    help="params file",
)


def out_option(default: Path) -> Callable[[Body], Body]:
    """`-o/--out FOLDER`, the output folder of a command that writes files."""
    return click.option(
        "-o",
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help="output folder",
    )


def command(log_name: str, **settings: Any) -> Callable[[Body], click.Command]:
    """A click command whose body runs with the project's logging and one-line failures."""

    def decorate(body: Body) -> click.Command:
        @functools.wraps(body)
        def run(*args: Any, **kwargs: Any) -> None:
            log = configure_logging(log_name)
            # Our own progress bars are the ones to watch; MLflow's for a 5 kB model is noise.
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            with exit_on_user_error(log):
                status = body(*args, **kwargs)
            sys.exit(status or EXIT_OK)

        return click.command(**settings)(run)

    return decorate


def configure_logging(log_name: str) -> logging.Logger:
    """The project's loggers print `[name] LEVEL message` to stderr, once.

    The handler sits on the `mlpipeline` logger, not on the root one, and does not propagate:
    ZenML puts its own handler on the root logger, which would print every line twice.
    """
    logger = logging.getLogger("mlpipeline")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"[{log_name}] %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logging.getLogger(f"mlpipeline.{log_name}")
