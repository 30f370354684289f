"""Accounts on the team's MLflow server (the basic-auth app of docker-compose.team.yml).

    mlpipeline team users pipeline        # MLFLOW_TRACKING_USERNAME/_PASSWORD
    mlpipeline team users reader alice    # may read runs and models only
    mlpipeline team users releaser carol  # may also move the champion alias
    mlpipeline team users pipeline bob    # a teammate who runs pipelines

Runs as the admin (MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD) against
MLFLOW_TRACKING_URI, through MLflow's own client of its auth app
(`mlflow.server.get_app_client("basic-auth")`). A reader's or releaser's password comes from
TEAM_USER_PASSWORD, else one is generated and printed once; so does a teammate's given the
pipeline's role under their own name.

Idempotent: every step sets a state rather than adding to one, so running it again (the
compose `users` job does on every `up`) changes nothing, sets a new password, or moves the
account's grants to its role's, a changed role included: an existing grant that differs is
replaced, never added beside. A run that fails half-way is finished by the next one.

The experiment and the registered model (names from params.yaml) are created here, by the
admin, so that no account owns them: MLflow gives the creator of a resource MANAGE (may
delete it and every run in it). The pipeline gets EDIT (log runs, register versions), and a
MANAGE it got earlier, by creating one of them itself, is taken back to EDIT. The stages
refuse to create either (mlpipeline.tracking.access), so a renamed experiment needs this
command run again, as the admin.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from mlpipeline.commands.console import command
from mlpipeline.domain.errors import AuthenticationError, TrackingError
from mlpipeline.files.params_yaml import load_params
from mlpipeline.tracking import access, runs, server

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

log = logging.getLogger("mlpipeline.team_users")

# What each kind of account may do on the team's experiment and registered model. EDIT on
# the model is what creating versions and moving an alias need; no role may delete.
ROLE_PERMISSIONS: dict[str, dict[str, str]] = {
    "pipeline": {"experiment": "EDIT", "registered_model": "EDIT"},
    "releaser": {"experiment": "READ", "registered_model": "EDIT"},
    "reader": {"experiment": "READ", "registered_model": "READ"},
}
# A server that does not answer should fail this within seconds, not after MLflow's minutes
# of retries; values the user set win.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


@dataclass(frozen=True)
class Grant:
    resource_type: str
    resource_id: str
    permission: str


def grants_for(role: str, experiment_id: str, model_name: str) -> list[Grant]:
    """The permissions an account of `role` gets on the team's experiment and model."""
    resource_ids = {"experiment": experiment_id, "registered_model": model_name}
    return [
        Grant(resource_type, resource_ids[resource_type], permission)
        for resource_type, permission in ROLE_PERMISSIONS[role].items()
    ]


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, created by the admin if missing (restored if deleted)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name)
    if experiment.lifecycle_stage != "active":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)


def ensure_user(auth: AuthServiceClient, username: str, password: str) -> bool:
    """Create the account, or set its password; True when it is new."""
    from mlflow.exceptions import MlflowException

    try:
        auth.get_user(username)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(username, password)
        return True
    auth.update_user_password(username, password)
    return False


def set_grant(auth: AuthServiceClient, username: str, grant: Grant) -> str:
    """Make `grant` the account's permission on its resource; what changed, in words."""
    from mlflow.exceptions import MlflowException

    args = (username, grant.resource_type, grant.resource_id)
    try:
        auth.grant_user_permission(*args, grant.permission)
        return f"granted {grant.permission}"
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    current = auth.get_user_permission(*args).permission
    if current == grant.permission:
        return f"{grant.permission} already"
    # MLflow's per-user grants have no update call: replace the grant (a moment at the
    # server's default permission, never above the old or the new one).
    auth.revoke_user_permission(*args)
    auth.grant_user_permission(*args, grant.permission)
    return f"{current} → {grant.permission}"


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise TrackingError(f"{name} is not set (docs/deploy.md, Users and permissions)")
    return value


def _as_admin(uri: str) -> None:
    """Make MLflow's clients in this process log in as the admin."""
    os.environ[server.USERNAME_ENV] = _required_env("MLFLOW_AUTH_ADMIN_USERNAME")
    os.environ[server.PASSWORD_ENV] = _required_env("MLFLOW_AUTH_ADMIN_PASSWORD")
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        server.check_reachable(uri)
    except AuthenticationError as exc:
        if exc.status in (401, 403):  # a 429 (turned away) says what to do itself
            raise TrackingError(
                f"MLflow server {uri} refused the admin's authentication: check "
                "MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD"
            ) from None
        raise


def set_account(uri: str, role: str, username: str, password: str) -> tuple[bool, list[str]]:
    """Create or update the account and its role's grants; (created, what each grant did)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow_params = load_params().mlflow
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    auth = access.auth_client(uri)
    try:
        experiment_id = ensure_experiment(client, mlflow_params.experiment_name)
        ensure_registered_model(client, mlflow_params.registered_model_name)
        created = ensure_user(auth, username, password)
        grants = grants_for(role, experiment_id, mlflow_params.registered_model_name)
        changes = [
            f"{grant.resource_type} {grant.resource_id}: {set_grant(auth, username, grant)}"
            for grant in grants
        ]
    except MlflowException as exc:
        raise TrackingError(f"MLflow server {uri}: {access.one_line(exc)}") from None
    return created, changes


@command(
    "team_users",
    help="Create or update one account on the team's MLflow server and "
    "grant its role (MLFLOW_TRACKING_URI, as the admin of MLFLOW_AUTH_ADMIN_PASSWORD).",
)
@click.argument("role", type=click.Choice(sorted(ROLE_PERMISSIONS)))
@click.argument("username", required=False)
def users(role: str, username: str | None) -> None:
    if role == "pipeline" and username in (None, os.environ.get(server.USERNAME_ENV)):
        # The pipeline's own account, as app, jupyter and serve log in.
        account = _required_env(server.USERNAME_ENV)
        password, generated = _required_env(server.PASSWORD_ENV), False
    else:
        # Anybody else (a teammate who runs pipelines too: ROLE=pipeline NAME=bob) gets a
        # password of their own, never the pipeline's from .env.
        if not username:
            raise click.UsageError(f"{role} needs a username")
        account = username
        given = os.environ.get("TEAM_USER_PASSWORD")
        password, generated = given or secrets.token_urlsafe(18), not given
    uri = _required_env(runs.TRACKING_URI_ENV)
    _as_admin(uri)
    created, changes = set_account(uri, role, account, password)
    log.info(
        "%s %s %s: %s",
        "created" if created else "updated",
        role,
        account,
        "; ".join(changes),
    )
    if generated:
        # The admin hands this on; it is shown once and stored nowhere.
        print(f"password for {account}: {password}")
