"""The team server's login check: MLflow's own, in the same time for unknown users.

MLflow's basic-auth app answers a login for an unknown user at once (it has no password hash
to check) and one for a known user only after a slow hash (~0.2-0.5 s): the difference tells
who has an account. `docker/mlflow-team-server.sh` names this function in MLflow's supported
`authorization_function` setting; for a user name with no account it first checks the
password against a hash of a random secret, the same kind of hash MLflow stores, so both
answers cost one hash. Everything else is MLflow's `authenticate_request_basic_auth`.
"""

from __future__ import annotations

import functools
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Response
    from werkzeug.datastructures import Authorization


@functools.cache
def _unknown_user_hash() -> str:
    """A hash no password matches, made as MLflow makes its users' (werkzeug's default)."""
    from werkzeug.security import generate_password_hash

    return generate_password_hash(secrets.token_urlsafe(32))


def authenticate_request() -> Authorization | Response:
    """MLflow's basic-auth check, after an equal-cost hash when the user has no account."""
    from flask import request
    from mlflow.server.auth import authenticate_request_basic_auth, store
    from werkzeug.security import check_password_hash

    login = request.authorization
    if login is not None and login.username and not store.has_user(login.username):
        check_password_hash(_unknown_user_hash(), login.password or "")
    return authenticate_request_basic_auth()
