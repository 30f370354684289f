"""`python -m zenml_pipeline [--params PATH] [--set section.key=value ...] [--no-cache]
[--stack NAME [--image IMAGE]]`."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlpipeline.domain.errors import DataError, PipelineError
from mlpipeline.domain.params import Params
from mlpipeline.files import paths
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import (
    collect_less_often,
    exit_on_user_error,
    exit_without_final_collection,
)
from mlpipeline.tracking.failures import explain

if TYPE_CHECKING:
    from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
        MLFlowExperimentTrackerConfig,
    )

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
    parser.add_argument(
        "--stack",
        help="activate this ZenML stack first (`zenml stack set`); its MLflow experiment "
        "tracker, if it has one, is the MLflow store",
    )
    parser.add_argument(
        "--image",
        help="run the steps in this image as it is (the project's, docker/Dockerfile): ZenML "
        "builds none and the steps get the code from the artifact store",
    )
    return parser.parse_args(argv)


def use_stack(name: str) -> None:
    """Activate the ZenML stack `name`; its MLflow tracker's server and login become ours.

    The login comes from the tracker's secret references, resolved by ZenML here; the step
    containers get it from the secret attached to the tracker (`make zenml-stack`).
    """
    from zenml.client import Client

    from mlpipeline.tracking import runs as tracking

    client = Client()
    try:
        client.activate_stack(name)
    except KeyError:
        raise PipelineError(f"--stack {name}: no such ZenML stack (`zenml stack list`)") from None
    tracker = client.active_stack.experiment_tracker
    if tracker is None or tracker.flavor != "mlflow":
        return
    config = cast("MLFlowExperimentTrackerConfig", tracker.config)  # flavor "mlflow" above
    if config.tracking_uri:
        os.environ[tracking.TRACKING_URI_ENV] = config.tracking_uri
    for variable, value in (
        ("MLFLOW_TRACKING_USERNAME", config.tracking_username),
        ("MLFLOW_TRACKING_PASSWORD", config.tracking_password),
    ):
        if value:
            os.environ[variable] = value


def source_md5(params: Params) -> str | None:
    """The md5 of the user's CSV: a step parameter, so a changed file reruns load."""
    if params.load.source != "csv":
        return None
    from mlpipeline.files.hashes import file_md5

    csv_path = paths.ROOT / str(params.load.csv_path)
    if not csv_path.is_file():
        raise DataError(f"load.csv_path: {csv_path} does not exist")
    return file_md5(csv_path)


def let_zenml_find_uv() -> None:
    """Put the uv that started us (`uv run` sets UV) on PATH when PATH has none.

    ZenML records the run's installed packages with `uv pip freeze` (uv from PATH), else pip,
    which uv's venvs lack: with the uv `make` bootstraps into .tools/, it would warn "Failed to
    get list of installed Python packages" on every run.
    """
    import shutil

    uv = os.environ.get("UV")
    if uv and shutil.which("uv") is None and Path(uv).name == "uv" and Path(uv).is_file():
        os.environ["PATH"] = os.pathsep.join([str(Path(uv).parent), os.environ.get("PATH", "")])


def run_pipeline(params: Params, enable_cache: bool = True, image: str | None = None) -> None:
    """Run the pipeline on the active ZenML stack (the default local one unless set up)."""
    let_zenml_find_uv()
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
    if image is not None:
        from zenml.config import DockerSettings

        # The project image has every dependency (uv.lock); the code is uploaded to the
        # artifact store and fetched by each step container, so no registry is needed.
        options["settings"] = {"docker": DockerSettings(parent_image=image, skip_build=True)}
    try:
        with installed_packages_listed_once(), empty_local_stores(steps_keep_nothing_here()):
            run = training_pipeline.with_options(**options)(
                params=params, tracking_uri=uri, source_md5=csv_md5
            )
    except Exception as exc:
        message = container_failure(exc)
        if message is None:
            raise
        end_runs_of_failed_run(params.mlflow.experiment_name)
        raise PipelineError(message) from None
    if run is not None:
        steps = ", ".join(f"{name}: {step.status.value}" for name, step in run.steps.items())
        log.info("ZenML run %s (%s): %s [%s]", run.name, run.id, run.status.value, steps)


def steps_keep_nothing_here() -> bool:
    """Whether the active stack runs its steps in local_docker containers and keeps its
    artifacts elsewhere (S3): then they need nothing of ZenML's local stores folder."""
    from zenml.client import Client

    stack = Client().active_stack
    return stack.orchestrator.flavor == "local_docker" and not stack.artifact_store.config.is_local


@contextlib.contextmanager
def empty_local_stores(containers: bool) -> Iterator[None]:
    """With `containers`: ZenML's local stores folder is, for this run, a new empty one.

    The local_docker orchestrator mounts that folder read-write into every step container,
    after any volumes of its run_args, so it cannot be left out or made read-only
    (zenml/orchestrators/local_docker/local_docker_orchestrator.py, ZenML 0.98). The client's
    own (the default stack's artifacts, certificates) stays out of the containers: they get
    a folder only this user may open (700), removed after the run.
    """
    if not containers:
        yield
        return
    import shutil
    import tempfile

    from zenml.config.global_config import GlobalConfiguration
    from zenml.constants import ENV_ZENML_LOCAL_STORES_PATH

    config = Path(GlobalConfiguration().config_directory)
    folder = tempfile.mkdtemp(prefix="step-mount-", dir=config)  # mode 700
    previous = os.environ.get(ENV_ZENML_LOCAL_STORES_PATH)
    os.environ[ENV_ZENML_LOCAL_STORES_PATH] = folder
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV_ZENML_LOCAL_STORES_PATH, None)
        else:
            os.environ[ENV_ZENML_LOCAL_STORES_PATH] = previous
        shutil.rmtree(folder, ignore_errors=True)


def container_failure(error: Exception) -> str | None:
    """One line for a step container that exited non-zero (local_docker), else None.

    The step's own output, its error included, was streamed to the terminal above.
    """
    from docker.errors import ContainerError

    if not isinstance(error, ContainerError):
        return None
    command = [str(part) for part in error.command or []]
    step = command[command.index("--step_name") + 1] if "--step_name" in command else "?"
    why = " (killed)" if error.exit_status == 137 else ""
    return f"ZenML step {step}: its container exited {error.exit_status}{why}; see its log above"


def end_runs_of_failed_run(experiment_name: str) -> list[str]:
    """End KILLED the MLflow runs the failed ZenML run left RUNNING; their ids.

    A step container that died cannot end its run, and its process lived in the container's
    own pid namespace, so no later process can tell it is gone: the entry point, which saw
    the container die, settles the runs tagged with the failed ZenML run's id.
    """
    from mlflow import MlflowClient
    from zenml.client import Client

    from mlpipeline.tracking import store
    from zenml_pipeline.pipeline import PIPELINE_NAME

    failed = Client().get_pipeline(PIPELINE_NAME).last_run
    client = MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    left_running = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"attributes.status = 'RUNNING' and tags.zenml_pipeline_run_id = '{failed.id}'"
        ),
    )
    for run in left_running:
        client.set_terminated(run.info.run_id, status="KILLED")
        store.discard_pending_models(client, experiment.experiment_id, run.info.run_id)
        log.warning("MLflow run %s of ZenML run %s marked KILLED", run.info.run_id, failed.name)
    return [run.info.run_id for run in left_running]


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
            isinstance(error, PipelineError) or explain(error, "") is not None
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
    collect_less_often()
    args = parse_args(argv)
    configure_logging()
    with exit_on_user_error(log):
        params = load_params(args.params, args.overrides)
        if args.stack:
            use_stack(args.stack)
        run_pipeline(params, enable_cache=not args.no_cache, image=args.image)
    exit_without_final_collection(0)


if __name__ == "__main__":
    main()
