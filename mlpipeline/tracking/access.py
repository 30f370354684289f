"""What the account in MLFLOW_TRACKING_USERNAME may do on a team server (MLflow's basic-auth app).

A stage calls `check_can_write` before it does any work, so a reader's `dvc repro` stops at
load with one line naming the server, the account and what it lacks, instead of at train with
MLflow's raw `403 != 200`. It also stops an account from creating the experiment or the
registered model itself: MLflow makes the creator of a resource its owner (MANAGE, which may
delete every run), and the pipeline account must never own what it writes to. The admin
creates both (`mlpipeline team users`, the compose `users` job).
Off the basic-auth app (the embedded store, a server without logins) it does nothing.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from mlpipeline.domain.errors import TrackingError
from mlpipeline.tracking import server
from mlpipeline.tracking.failures import PERMISSION_DENIED
from mlpipeline.tracking.registered import registered_model

if TYPE_CHECKING:
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

log = logging.getLogger(__name__)

# MLflow's permissions that allow writing (its Permission.can_update).
WRITE_PERMISSIONS = frozenset({"EDIT", "MANAGE"})
ASK_THE_ADMIN = (
    "the admin grants it: make team-users ROLE=pipeline NAME={username} (docs/deploy.md)"
)


def auth_client(uri: str) -> AuthServiceClient:
    """MLflow's client of its basic-auth app; it logs in as MLFLOW_TRACKING_USERNAME."""
    from mlflow.server import get_app_client

    return get_app_client("basic-auth", tracking_uri=uri)


def one_line(exc: MlflowException) -> str:
    """An MLflow client error in one line: the server's own message, no response dump."""
    text = exc.message if hasattr(exc, "message") else str(exc)
    return " ".join(text.split())[:300]


def check_can_write(uri: str, experiment_name: str, model_name: str) -> None:
    """Fail unless the logged-in account may log runs in the experiment and register
    versions of the model, both existing; a no-op without a login or off the auth app."""
    username = os.environ.get(server.USERNAME_ENV)
    if not username or not uri.startswith(("http://", "https://")):
        return
    server.check_reachable(uri)

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    auth = auth_client(uri)
    try:
        # Also tells whether the server runs the auth app at all (a plain server answers 404).
        model_permission = auth.get_user_permission(username, "registered_model", model_name)
    except MlflowException as exc:
        if exc.error_code == "ENDPOINT_NOT_FOUND":
            return
        raise TrackingError(f"MLflow server {uri}: {one_line(exc)}") from None
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        try:
            experiment = client.get_experiment_by_name(experiment_name)
        except MlflowException as exc:
            if exc.error_code != PERMISSION_DENIED:
                raise
            # A 403 here: the experiment exists and the account was granted nothing on it.
            raise TrackingError(
                f"MLflow server {uri}: user {username!r} may not read experiment "
                f"{experiment_name!r}; " + ASK_THE_ADMIN.format(username=username)
            ) from None
        if experiment is None or experiment.lifecycle_stage != "active":
            raise TrackingError(_missing(uri, username, "experiment", experiment_name))
        experiment_permission = auth.get_user_permission(
            username, "experiment", experiment.experiment_id
        ).permission
        if not _registered_model_exists(client, model_name):
            # MLflow's search leaves out what the account may not read: missing or hidden.
            raise TrackingError(
                _missing(uri, username, "registered model", model_name, hidden_maybe=True)
            )
        if experiment_permission not in WRITE_PERMISSIONS and not _is_admin(auth, username):
            raise TrackingError(
                f"MLflow server {uri}: user {username!r} may {experiment_permission} experiment "
                f"{experiment_name!r} but not write runs; "
                + ASK_THE_ADMIN.format(username=username)
            )
        if model_permission.permission not in WRITE_PERMISSIONS and not _is_admin(auth, username):
            raise TrackingError(
                f"MLflow server {uri}: user {username!r} may {model_permission.permission} "
                f"registered model {model_name!r} but not register versions; "
                + ASK_THE_ADMIN.format(username=username)
            )
    except MlflowException as exc:
        raise TrackingError(f"MLflow server {uri}: {one_line(exc)}") from None
    log.info(
        "user %r may write runs in %r (%s) and versions of %r (%s) on %s",
        username,
        experiment_name,
        experiment_permission,
        model_name,
        model_permission.permission,
        uri,
    )


def _missing(uri: str, username: str, kind: str, name: str, hidden_maybe: bool = False) -> str:
    missing = "does not exist"
    if hidden_maybe:
        missing += f" or user {username!r} may not read it"
    return (
        f"MLflow server {uri}: {kind} {name!r} (params.yaml, mlflow) {missing}; user "
        f"{username!r} will not create it, since its creator owns it (MANAGE: may delete every "
        "run). The admin creates it or grants it: make team-users ROLE=pipeline (docs/deploy.md)"
    )


def _registered_model_exists(client, name: str) -> bool:
    """One search, not `get_registered_model`, which reads every version (registered.py)."""
    return registered_model(client, name) is not None


def _is_admin(auth: AuthServiceClient, username: str) -> bool:
    return bool(auth.get_user(username).is_admin)
