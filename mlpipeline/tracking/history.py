"""The MLflow edge of the champion's history (mlpipeline/domain/alias_history.py): record a
move as a registered-model tag, read them back. mlflow is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlpipeline.domain.alias_history import AliasMove, moves_of, tag_key
from mlpipeline.domain.errors import TrackingError
from mlpipeline.tracking import lineage, store
from mlpipeline.tracking.failures import no_alias
from mlpipeline.tracking.registered import registered_model
from mlpipeline.tracking.server import USERNAME_ENV

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


# How long a move waits for another move of the same alias to finish (seconds).
MOVE_LOCK_TIMEOUT_S = 60


class AliasMovedError(TrackingError):
    """The alias is no longer where the command read it: someone else moved it meanwhile."""

    def __init__(self, message: str, current: str | None) -> None:
        super().__init__(message)
        self.current = current


def current_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version `alias` is on, or None when it is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if no_alias(exc):
            return None
        raise


@contextlib.contextmanager
def alias_lock(uri: str, model_name: str, alias: str) -> Iterator[None]:
    """One move of `model_name@alias` at a time among the processes using the SQLite store
    `uri` (a lock file beside it). A server's store has no lock a client can take: there the
    compare in `move_alias` narrows the window to one round trip."""
    path = store.sqlite_path(uri)
    if path is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(f"{path}.{model_name}@{alias}.lock", timeout=MOVE_LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise TrackingError(
            f"{model_name}@{alias}: another command has been moving it for "
            f"{MOVE_LOCK_TIMEOUT_S} s (lock {lock.lock_file}); is it stuck?"
        ) from None
    try:
        yield
    finally:
        lock.release()


def move_alias(
    client: MlflowClient,
    uri: str,
    model_name: str,
    alias: str,
    expected: str | None,
    to_version: str,
    why: str,
    via: str,
) -> AliasMove:
    """Compare-and-set: move `alias` to `to_version` only if it is still on `expected` (the
    version the caller read and decided on), and record the move; else an AliasMovedError
    and nothing changed. Moves of one alias are serialised, so two at once cannot both
    record the same "from"."""
    with alias_lock(uri, model_name, alias):
        current = current_version(client, model_name, alias)
        if current != expected:
            raise AliasMovedError(
                f"{model_name}@{alias} moved to {_version(current)} while this command "
                f"ran (it read {_version(expected)}); nothing was changed: check "
                "`mlpipeline model history` and retry",
                current,
            )
        client.set_registered_model_alias(model_name, alias, str(to_version))
        return record_move(client, model_name, alias, expected, str(to_version), why, via)


def _version(version: str | None) -> str:
    return "no version" if version is None else f"version {version}"


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
    model = registered_model(client, model_name)
    if model is None:
        raise TrackingError(f"model {model_name!r} has no registered versions in this store")
    current = model.aliases.get(alias)
    return moves_of(dict(model.tags), alias), None if current is None else str(current)
