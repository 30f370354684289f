"""`mlpipeline model serve`: serve the champion over HTTP, behind a hardened edge.

mlpipeline model serve --port 5001
mlpipeline model serve --model-uri models:/iris_classifier/3 --workers 2

MLflow's own scoring app (`mlflow models serve`'s: /ping, /health, /version, /invocations,
the same request formats and answers) run by uvicorn with `mlflow models serve`'s settings
(MLFLOW_MODELS_WORKERS workers, default 1; MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT), behind
mlpipeline/domain/serving_edge.py: bodies over SERVE_MAX_BODY_BYTES (default 1 MiB) get a
413 before they are read, Host headers not in SERVE_ALLOWED_HOSTS (default loopback and
`serve`) a 400, FastAPI's /docs, /redoc and /openapi.json a 404, and every error answer is
one JSON line without a stack trace or the request's rows. The alias is resolved once, at
start: the server logs the version it serves, and a later promotion takes a restart.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import click

from mlpipeline.commands.console import command, params_option
from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.serving_edge import DEFAULT_ALLOWED_HOSTS, DEFAULT_MAX_BODY_BYTES
from mlpipeline.files.params_yaml import load_params
from mlpipeline.tracking import runs, scoring_runs, serving

log = logging.getLogger("mlpipeline.serve")


def prepare(
    model_uri: str, folder: Path, max_body_bytes: int | None, allowed_hosts: str | None
) -> None:
    """Resolve and download the model into `folder` and put what the workers need in the
    environment; a PipelineError naming the culprit if the model or a limit is unusable.

    Args:
        max_body_bytes, allowed_hosts: the options; None keeps the environment's or default.
    """
    if max_body_bytes is not None:
        os.environ[serving.MAX_BODY_ENV] = str(max_body_bytes)
    if allowed_hosts is not None:
        os.environ[serving.ALLOWED_HOSTS_ENV] = allowed_hosts
    try:
        limits = serving.limits_from_env()
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    if model_uri.startswith(("models:/", "runs:/")):
        runs.use_store()
    model = scoring_runs.resolve_model(model_uri)
    log.info("serving %s", model.describe())
    os.environ[serving.MODEL_PATH_ENV] = str(serving.download_model(model, folder))
    log.info(
        "refusing bodies over %d bytes and Host headers other than %s",
        limits.max_body_bytes,
        ", ".join(sorted(limits.allowed_hosts)),
    )


@command(
    "serve",
    help="Serve a registered model with MLflow's scoring app, behind an edge "
    "that limits bodies and Host headers and answers errors in one line.",
)
@click.option(
    "--model-uri",
    help="models:/<name>@<alias> or models:/<name>/<version> (default: the champion, "
    "models:/<mlflow.registered_model_name>@<mlflow.champion_alias>)",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="bind address")
@click.option("--port", type=int, default=5001, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="MLFLOW_MODELS_WORKERS",
    default=1,
    help="uvicorn workers, as `mlflow models serve -w` (default: MLFLOW_MODELS_WORKERS or 1)",
)
@click.option(
    "--max-body-bytes",
    type=int,
    help=f"larger bodies get a 413 (default: {serving.MAX_BODY_ENV} or {DEFAULT_MAX_BODY_BYTES})",
)
@click.option(
    "--allowed-hosts",
    help=f"comma-separated Host names answered (default: {serving.ALLOWED_HOSTS_ENV} or "
    f"{','.join(DEFAULT_ALLOWED_HOSTS)})",
)
@params_option
def serve(
    model_uri: str | None,
    host: str,
    port: int,
    workers: int,
    max_body_bytes: int | None,
    allowed_hosts: str | None,
    params: Path,
) -> None:
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="serve-") as folder:
        uri = model_uri or load_params(params).mlflow.champion_uri
        prepare(uri, Path(folder), max_body_bytes, allowed_hosts)
        uvicorn.run(
            "mlpipeline.tracking.serving:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
        )
