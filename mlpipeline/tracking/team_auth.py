"""The team server's login check: MLflow's own, in the same time for unknown users, and the
protected aliases, which only the accounts named may set or delete.

MLflow's basic-auth app answers a login for an unknown user at once (it has no password hash
to check) and one for a known user only after a slow hash (~0.2-0.5 s): the difference tells
who has an account. `docker/mlflow-team-server.sh` names this function in MLflow's supported
`authorization_function` setting; when MLflow refuses a user name with no account it checks the
password against a hash of a random secret, the same kind of hash MLflow stores, so both
answers cost one hash. Everything else is MLflow's `authenticate_request_basic_auth`.

MLflow's permissions cannot say "may edit this model but not move @champion": EDIT on a
registered model allows both. So after MLflow's check, a set or delete of a protected alias by
any account but the admins and those named is refused with one line (403). Settings, from the
server's environment:

    MLFLOW_PROTECTED_ALIASES  aliases guarded (comma-separated; default: champion)
    MLFLOW_PIPELINE_ACCOUNT   the pipeline's account (its save gate), which may move them
    MLFLOW_ALIAS_MOVERS       the releasers (`mlpipeline model promote`) who may move them;
                              with both unset or empty, no alias is protected (MLflow's
                              permissions alone)
"""

from __future__ import annotations

import functools
import os
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
    """MLflow's basic-auth check, with an equal-cost hash when the user has no account.

    MLflow asks this several times per request (before the request, then in each
    permission check): the first answer is kept for the request (flask.g). A good login
    never asks the database whether the user exists, so one remembered by MLflow's login
    cache costs no query; only a refused one does (then pays the hash if MLflow did not).
    """
    from flask import g

    answer = g.get("team_auth_answer")
    if answer is None:
        answer = g.team_auth_answer = _authenticate()
    return answer


def _authenticate() -> Authorization | Response:
    from flask import request
    from mlflow.server.auth import authenticate_request_basic_auth, store
    from werkzeug.datastructures import Authorization
    from werkzeug.security import check_password_hash

    authorization = authenticate_request_basic_auth()
    login = request.authorization
    if (
        not isinstance(authorization, Authorization)
        and login is not None
        and login.username
        and not store.has_user(login.username)
    ):
        # MLflow refused at once (no hash to check): take the time a known user's takes.
        check_password_hash(_unknown_user_hash(), login.password or "")
    refusal = _protected_alias_refusal(authorization)
    return authorization if refusal is None else refusal


ALIAS_PATH = "/mlflow/registered-models/alias"


def _names(variable: str, default: str = "") -> set[str]:
    return {name.strip() for name in os.environ.get(variable, default).split(",") if name.strip()}


def _protected_alias_refusal(authorization: Authorization | Response) -> Response | None:
    """A 403 for a set or delete of a protected alias by an account not allowed to move it."""
    from flask import Response, request
    from mlflow.server.auth import store
    from werkzeug.datastructures import Authorization

    if not isinstance(authorization, Authorization):
        return None  # MLflow's own refusal stands
    if request.method not in ("POST", "DELETE") or not request.path.endswith(ALIAS_PATH):
        return None
    movers = _names("MLFLOW_ALIAS_MOVERS") | _names("MLFLOW_PIPELINE_ACCOUNT")
    body = request.get_json(silent=True) or {}
    model = body.get("name") or request.args.get("name")
    alias = body.get("alias") or request.args.get("alias")
    if not movers or alias not in _names("MLFLOW_PROTECTED_ALIASES", "champion"):
        return None
    username = authorization.username or ""
    if username in movers or store.get_user(username).is_admin:
        return None
    return Response(
        f"{model}@{alias} is protected: only the pipeline's save gate and releasers "
        f"(`mlpipeline model promote VERSION --reason ...`) move it, not {username}\n",
        status=403,
        mimetype="text/plain",
    )
