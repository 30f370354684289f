"""The MLflow edge of the champion's history (mlpipeline/domain/alias_history.py): record a
move as a registered-model tag, read them back. mlflow is imported only inside the functions.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
from typing import TYPE_CHECKING

from mlpipeline.domain.alias_history import AliasMove, moves_of, tag_key
from mlpipeline.tracking import lineage
from mlpipeline.tracking.runs import USERNAME_ENV

if TYPE_CHECKING:
    from mlflow import MlflowClient


def current_user() -> str:
    """Who moves the alias: the tracking account (MLFLOW_TRACKING_USERNAME), else the OS user."""
    username = os.environ.get(USERNAME_ENV)
    if username:
        return username
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        return f"uid {os.getuid()}"


def record_move(
    client: MlflowClient,
    model_name: str,
    alias: str,
    from_version: str | None,
    to_version: str,
    why: str,
    via: str,
) -> AliasMove:
    """Append a move of `alias` to the registered model's history; call it after the move."""
    now = dt.datetime.now(dt.UTC)
    move = AliasMove(
        alias=alias,
        from_version=from_version,
        to_version=str(to_version),
        who=current_user(),
        when=now.isoformat(timespec="seconds"),
        why=why,
        commit=lineage.git_commit(),
        via=via,
    )
    key = tag_key(alias, int(now.timestamp() * 1000), secrets.token_hex(2))
    client.set_registered_model_tag(model_name, key, move.tag_value())
    return move


def read_moves(
    client: MlflowClient, model_name: str, alias: str
) -> tuple[list[AliasMove], str | None]:
    """The recorded moves of `alias`, oldest first, and the version it is on now (or None)."""
    model = client.get_registered_model(model_name)
    current = model.aliases.get(alias)
    return moves_of(dict(model.tags), alias), None if current is None else str(current)
