"""`python -m mlpipeline.commands.serve`: serve the champion over HTTP, behind a hardened edge.

python -m mlpipeline.commands.serve --port 5001
python -m mlpipeline.commands.serve --model-uri models:/iris_classifier/3 --workers 2

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

import argparse
import logging
import os
import tempfile
from pathlib import Path

from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.serving_edge import DEFAULT_ALLOWED_HOSTS, DEFAULT_MAX_BODY_BYTES
from mlpipeline.files import paths
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import exit_on_user_error
from mlpipeline.tracking import scoring, serving

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
    model = scoring.resolve_model(model_uri)
    log.info("serving %s", model.describe())
    os.environ[serving.MODEL_PATH_ENV] = str(serving.download_model(model, folder))
    log.info(
        "refusing bodies over %d bytes and Host headers other than %s",
        limits.max_body_bytes,
        ", ".join(sorted(limits.allowed_hosts)),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mlpipeline.commands.serve",
        description="Serve a registered model with MLflow's scoring app, behind an edge that "
        "limits bodies and Host headers and answers errors in one line.",
    )
    parser.add_argument(
        "--model-uri",
        help="models:/<name>@<alias> or models:/<name>/<version> (default: the champion, "
        "models:/<mlflow.registered_model_name>@<mlflow.champion_alias>)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5001, help="default: %(default)s")
    parser.add_argument(
        "--workers",
        type=int,
        help="uvicorn workers, as `mlflow models serve -w` (default: MLFLOW_MODELS_WORKERS or 1)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        help=f"larger bodies get a 413 (default: {serving.MAX_BODY_ENV} or "
        f"{DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--allowed-hosts",
        help=f"comma-separated Host names answered (default: {serving.ALLOWED_HOSTS_ENV} or "
        f"{','.join(DEFAULT_ALLOWED_HOSTS)})",
    )
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="default: %(default)s")
    args = parser.parse_args(argv)
    workers = args.workers or os.environ.get("MLFLOW_MODELS_WORKERS") or "1"
    if not str(workers).isdigit() or int(workers) < 1:
        parser.error(f"--workers (or MLFLOW_MODELS_WORKERS) must be a whole number ≥ 1: {workers}")
    logging.basicConfig(level=logging.INFO, format="[serve] %(levelname)s %(message)s")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="serve-") as folder:
        with exit_on_user_error(log):
            model_uri = args.model_uri
            if model_uri is None:
                names = load_params(args.params).mlflow
                model_uri = f"models:/{names.registered_model_name}@{names.champion_alias}"
            prepare(model_uri, Path(folder), args.max_body_bytes, args.allowed_hosts)
        uvicorn.run(
            "mlpipeline.tracking.serving:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=int(workers),
        )


if __name__ == "__main__":
    main()
