"""The shared edge of every stage script: logging setup, params, and clean failures."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from mlpipeline.domain.errors import PipelineError, StoppedError
from mlpipeline.files.paths import PARAMS
from mlpipeline.tracking.failures import cause, explain

if TYPE_CHECKING:
    # The params schema (pydantic, ~0.15 s) is imported by the stages that load params, not
    # by every command that only wants `exit_on_user_error`.
    from mlpipeline.domain.params import Params

log = logging.getLogger("mlpipeline")

# A full collection after this many collections of the middle generation (Python's default:
# 10). See `collect_less_often`.
FULL_COLLECTION_EVERY = 100


def run_stage(name: str, main: Callable[[Params], None], argv: list[str] | None = None) -> None:
    """Parse `--params`, validate params, run `main`; a PipelineError exits 1 with its message.

    Every stage does all its work before it writes anything, so a failure leaves the
    previous outputs in place (dvc.yaml marks them `persist` so DVC keeps them too).
    """
    collect_less_often()
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=main.__doc__)
    parser.add_argument(
        "--params", type=Path, default=PARAMS, help="params file (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(levelname)s %(message)s")
    from mlpipeline.files.params_yaml import load_params

    with exit_on_user_error(log):
        main(load_params(args.params))
    exit_without_final_collection(0)


def collect_less_often() -> None:
    """Make the garbage collector's full collections ten times rarer in this process.

    Importing MLflow (with SQLAlchemy's ORM), scikit-learn and skops creates ~350,000
    long-lived objects, and each full collection on the way walks all of them: six of them
    were ~0.6 s of the ~3 s those imports take in an MLflow stage (`gc.callbacks` timing;
    benchmarks/notes.md). The young generations are still collected as often as before,
    and a full collection still comes, after 100 middle-generation collections instead of 10,
    so garbage cycles are freed as before, later.
    """
    import gc

    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def exit_without_final_collection(status: int) -> NoReturn:
    """End a finished stage (or ZenML pipeline) process, skipping the last garbage collections.

    At exit the interpreter's collector walks every object MLflow (with SQLAlchemy's ORM),
    scikit-learn and pandas created, to free cycles nobody will use again: ~0.9 s of CPU per
    MLflow stage (benchmarks/notes.md). Freezing them first (a public `gc` call) skips that
    walk; exit handlers, stream flushing and thread joins still run as on any exit.
    """
    import gc

    gc.freeze()
    sys.exit(status)


@contextlib.contextmanager
def exit_on_user_error(logger: logging.Logger) -> Iterator[None]:
    """Errors the user can act on become one logged message and exit status 1."""
    # MLflow logs a database error with its whole traceback before raising it; the raised
    # error is reported below, in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    try:
        yield
    except PipelineError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    except Exception as exc:
        # A store or disk that fails (corrupt, locked, read-only, full) and MLflow's own
        # errors (a store that refuses a write, a server that died mid-run) are the user's to
        # act on too; anything else is a bug and keeps its traceback.
        mlflow = sys.modules.get("mlflow")
        store = f"MLflow store {mlflow.get_tracking_uri()}" if mlflow else "writing an output"
        message = explain(exc, store)
        if message is None:
            if not type(exc).__module__.startswith("mlflow"):
                raise
            message = f"{store}: {cause(exc)}"
        logger.error("%s", message)
        sys.exit(1)


# How often a command checks that the process that started it is still there (seconds).
PARENT_CHECK_S = 1.0


@contextlib.contextmanager
def stop_cleanly(what: str) -> Iterator[None]:
    """SIGTERM and SIGHUP, and the end of the process that started this one, stop the block
    with a `StoppedError`: its outputs are discarded and its run ends FAILED.

    `make score` runs the scorer under `uv run`; killing that (or the terminal) must not leave
    the scorer writing results nobody waits for. A watchdog thread notices the parent's end
    (this process is re-parented) and sends this process SIGTERM.
    """
    import signal
    import threading

    def interrupt(signum: int, _frame: object) -> None:
        raise StoppedError(f"{what} stopped by {signal.Signals(signum).name}; nothing was written")

    parent = os.getppid()
    done = threading.Event()

    def watch_parent() -> None:
        while not done.wait(PARENT_CHECK_S):
            if os.getppid() != parent:
                log.warning("the process that started %s (pid %d) is gone", what, parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
