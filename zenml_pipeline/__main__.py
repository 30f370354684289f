"""`python -m zenml_pipeline [--params PATH] [--set section.key=value ...] [--no-cache]`."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpipeline.domain.errors import DataError, PipelineError
from mlpipeline.domain.params import Params
from mlpipeline.files import paths
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import exit_on_user_error, exit_without_final_collection, failure_message

log = logging.getLogger("zenml_pipeline")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m zenml_pipeline",
        description="Run load → preprocess → train → evaluate → save as a ZenML pipeline.",
    )
    parser.add_argument(
        "--params", type=Path, default=paths.PARAMS, help="params file (default: %(default)s)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a param, like `dvc exp run -S` (repeatable)",
    )
    parser.add_argument("--no-cache", action="store_true", help="run every step again")
    return parser.parse_args(argv)


def source_md5(params: Params) -> str | None:
    """The md5 of the user's CSV: a step parameter, so a changed file reruns load."""
    if params.load.source != "csv":
        return None
    from mlpipeline.files.hashes import file_md5

    csv_path = paths.ROOT / str(params.load.csv_path)
    if not csv_path.is_file():
        raise DataError(f"load.csv_path: {csv_path} does not exist")
    return file_md5(csv_path)


def run_pipeline(params: Params, enable_cache: bool = True) -> None:
    """Run the pipeline on the active ZenML stack (the default local one unless set up)."""
    from mlpipeline.tracking import access
    from mlpipeline.tracking import runs as tracking

    # Checked before ZenML starts, so a bad CSV path, a dead, refusing or broken MLflow
    # store, or an account that may not write to (or would own) the experiment or model
    # fail in seconds, with the one line the stages give.
    csv_md5 = source_md5(params)
    uri = tracking.tracking_uri()
    access.check_can_write(uri, params.mlflow.experiment_name, params.mlflow.registered_model_name)
    tracking.configure(params.mlflow.experiment_name)

    from zenml.utils import source_utils

    # Without a `zenml init` repository ZenML takes the entry point's folder as its source
    # root; step code imports `mlpipeline` and `zenml_pipeline`, which live at the repository root.
    source_utils.set_custom_source_root(str(paths.ROOT))
    from zenml_pipeline.pipeline import training_pipeline

    options: dict[str, Any] = {"enable_cache": enable_cache}
    if os.environ.get(tracking.TRACKING_URI_ENV):
        # Remote orchestrators start each step in a fresh container: hand on the store.
        options["environment"] = {tracking.TRACKING_URI_ENV: uri}
    with installed_packages_listed_once():
        run = training_pipeline.with_options(**options)(
            params=params, tracking_uri=uri, source_md5=csv_md5
        )
    if run is not None:
        steps = ", ".join(f"{name}: {step.status.value}" for name, step in run.steps.items())
        log.info("ZenML run %s (%s): %s [%s]", run.name, run.id, run.status.value, steps)


@contextlib.contextmanager
def installed_packages_listed_once() -> Iterator[None]:
    """Let the run list the installed distributions once, not once per artifact.

    For each artifact it stores, ZenML names the package its type comes from (pandas,
    scikit-learn) with `importlib.metadata.packages_distributions()`, which reads every
    installed distribution's metadata: ~0.12 s each time in this venv, ~1.1 s of CPU per run
    (measured, benchmarks/notes.md). What is installed does not change during a run, so the
    first answer is kept until the run ends. The one patch of a library function in the
    project; tests/unit/test_entry_points.py checks it is scoped to the run.
    """
    import importlib.metadata

    listing = importlib.metadata.packages_distributions
    importlib.metadata.packages_distributions = functools.cache(listing)
    try:
        yield
    finally:
        importlib.metadata.packages_distributions = listing


class _NoTracebackForReportedErrors(logging.Filter):
    """ZenML's local orchestrator logs a failed step with its traceback. For the errors this
    entry point reports in one line (bad data or params, a refusing or broken store) the
    traceback only buries that line, so it is left out; other errors keep it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and (
            isinstance(error, PipelineError) or failure_message(error, "") is not None
        ):
            record.exc_info = None
            record.exc_text = None
        return True


# Where ZenML logs a failed step with its traceback (`logger.exception("Step %s failed.")`).
ZENML_STEP_FAILURE_LOGGERS = ("zenml.orchestrators.local.local_orchestrator",)


def configure_logging() -> None:
    """Our logger only; it does not propagate, as ZenML puts its own handler on the root."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    for name in ZENML_STEP_FAILURE_LOGGERS:
        logging.getLogger(name).addFilter(_NoTracebackForReportedErrors())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging()
    with exit_on_user_error(log):
        params = load_params(args.params, args.overrides)
        run_pipeline(params, enable_cache=not args.no_cache)
    exit_without_final_collection(0)


if __name__ == "__main__":
    main()
