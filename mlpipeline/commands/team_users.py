"""Accounts on the team's MLflow server (the basic-auth app of docker-compose.team.yml).

    python -m mlpipeline.commands.team_users pipeline        # MLFLOW_TRACKING_USERNAME/_PASSWORD
    python -m mlpipeline.commands.team_users reader alice    # may read runs and models only
    python -m mlpipeline.commands.team_users releaser carol  # may also move the champion alias

Runs as the admin (MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD) against
MLFLOW_TRACKING_URI, through MLflow's own auth REST API. A reader's or releaser's password
comes from TEAM_USER_PASSWORD, else one is generated and printed once. Idempotent: an
existing account gets the given password and its grants again.

The experiment and the registered model (names from params.yaml) are created here, by the
admin, so that no account owns them: the pipeline may log runs and register versions (EDIT),
nobody but the admin may delete them.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import TrackingError
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import exit_on_user_error

if TYPE_CHECKING:
    import requests

log = logging.getLogger("mlpipeline.team_users")

REQUEST_TIMEOUT_S = 15
# What each kind of account may do on the team's experiment and registered model. EDIT on
# the model is what creating versions and moving an alias need; no role may delete.
ROLE_PERMISSIONS: dict[str, dict[str, str]] = {
    "pipeline": {"experiment": "EDIT", "registered_model": "EDIT"},
    "releaser": {"experiment": "READ", "registered_model": "EDIT"},
    "reader": {"experiment": "READ", "registered_model": "READ"},
}


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


class AdminSession:
    """The MLflow REST API, called as the admin; every failure becomes a TrackingError."""

    def __init__(self, uri: str, username: str, password: str) -> None:
        import requests

        self.uri = uri.rstrip("/")
        self.session: requests.Session = requests.Session()
        self.session.auth = (username, password)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        import requests

        url = f"{self.uri}/api/{path}"
        try:
            response = self.session.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise TrackingError(f"MLflow server {self.uri} is unreachable ({exc})") from None
        if response.status_code == 401:
            raise TrackingError(
                f"MLflow server {self.uri} refused the admin's authentication: check "
                "MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD"
            )
        return response

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.call(method, path, **kwargs)
        if response.status_code != 200:
            raise TrackingError(
                f"MLflow server {self.uri}: {method} {path} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else {}


def ensure_experiment(api: AdminSession, name: str) -> str:
    """The experiment's id, created by the admin if missing."""
    found = api.call("GET", "2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
    if found.status_code == 200:
        return found.json()["experiment"]["experiment_id"]
    return api.ok("POST", "2.0/mlflow/experiments/create", json={"name": name})["experiment_id"]


def ensure_registered_model(api: AdminSession, name: str) -> None:
    found = api.call("GET", "2.0/mlflow/registered-models/get", params={"name": name})
    if found.status_code != 200:
        api.ok("POST", "2.0/mlflow/registered-models/create", json={"name": name})


def ensure_user(api: AdminSession, username: str, password: str) -> bool:
    """Create the account, or set its password; True when it is new."""
    found = api.call("GET", "2.0/mlflow/users/get", params={"username": username})
    if found.status_code == 200:
        api.ok(
            "PATCH",
            "2.0/mlflow/users/update-password",
            json={"username": username, "password": password},
        )
        return False
    api.ok("POST", "2.0/mlflow/users/create", json={"username": username, "password": password})
    return True


def grant(api: AdminSession, username: str, grants: list[Grant]) -> None:
    for item in grants:
        api.ok(
            "POST",
            "3.0/mlflow/users/permissions/grant",
            json={
                "username": username,
                "resource_type": item.resource_type,
                "resource_id": item.resource_id,
                "permission": item.permission,
            },
        )


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise TrackingError(f"{name} is not set (docs/deploy.md, Users and permissions)")
    return value


def main(argv: list[str] | None = None) -> None:
    """Create or update one account on the team's MLflow server and grant its role."""
    parser = argparse.ArgumentParser(
        prog="python -m mlpipeline.commands.team_users", description=main.__doc__
    )
    parser.add_argument("role", choices=sorted(ROLE_PERMISSIONS))
    parser.add_argument(
        "username", nargs="?", help="the account (pipeline: MLFLOW_TRACKING_USERNAME)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[team_users] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        if args.role == "pipeline":
            username = args.username or _required_env("MLFLOW_TRACKING_USERNAME")
            password, generated = _required_env("MLFLOW_TRACKING_PASSWORD"), False
        else:
            if not args.username:
                parser.error(f"{args.role} needs a username")
            username = args.username
            given = os.environ.get("TEAM_USER_PASSWORD")
            password, generated = given or secrets.token_urlsafe(18), not given
        uri = _required_env("MLFLOW_TRACKING_URI")
        api = AdminSession(
            uri,
            _required_env("MLFLOW_AUTH_ADMIN_USERNAME"),
            _required_env("MLFLOW_AUTH_ADMIN_PASSWORD"),
        )
        mlflow_params = load_params().mlflow
        experiment_id = ensure_experiment(api, mlflow_params.experiment_name)
        ensure_registered_model(api, mlflow_params.registered_model_name)
        created = ensure_user(api, username, password)
        grants = grants_for(args.role, experiment_id, mlflow_params.registered_model_name)
        grant(api, username, grants)
        summary = ", ".join(f"{g.permission} on {g.resource_type} {g.resource_id}" for g in grants)
        log.info("%s %s %s: %s", "created" if created else "updated", args.role, username, summary)
        if generated:
            # The admin hands this on; it is shown once and stored nowhere.
            print(f"password for {username}: {password}")


if __name__ == "__main__":
    main()
