"""The champion's history: every move of an alias, who made it, when, from which version to
which, why, at which commit; and the moves made where nothing recorded them.

MLflow keeps no history of an alias. Each move the project's commands make (the save
stage's gate, `registry promote`, `registry rollback`) is stored as one tag of the
registered model, so the history lives in the registry, on the team server too, and a move
made elsewhere (the MLflow UI, another client) shows as the alias no longer matching the
last recorded move. Pure: events to and from tag keys and values, the table, the check.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# Tag keys: alias_history.<alias>.<epoch ms, 13 digits>.<nonce>; sorting them sorts by time.
TAG_PREFIX = "alias_history."
# A registered model tag's value holds at most 5000 characters (MLflow's limit).
MAX_REASON = 1000


@dataclass(frozen=True)
class AliasMove:
    alias: str
    from_version: str | None  # None: the alias was not set
    to_version: str
    who: str
    when: str  # ISO 8601, UTC, seconds
    why: str
    commit: str | None
    via: str  # save (dvc) | save (zenml) | promote | rollback

    def tag_value(self) -> str:
        data = asdict(self)
        data["why"] = self.why[:MAX_REASON]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_tag_value(cls, value: str) -> AliasMove:
        return cls(**json.loads(value))


def tag_key(alias: str, epoch_ms: int, nonce: str) -> str:
    return f"{TAG_PREFIX}{alias}.{epoch_ms:013d}.{nonce}"


def moves_of(tags: dict[str, str], alias: str) -> list[AliasMove]:
    """The recorded moves of `alias` among a registered model's tags, oldest first."""
    prefix = f"{TAG_PREFIX}{alias}."
    return [AliasMove.from_tag_value(tags[key]) for key in sorted(tags) if key.startswith(prefix)]


def unrecorded_move(moves: list[AliasMove], current: str | None) -> str | None:
    """Why the alias's current version does not follow from the history, or None if it does."""
    recorded = moves[-1].to_version if moves else None
    if current == recorded:
        return None
    if current is None:
        return (
            f"unrecorded move: the alias was removed; its last recorded move set it to "
            f"version {recorded}"
        )
    if recorded is None:
        return (
            f"unrecorded move: the alias is on version {current} but no move of it is recorded "
            "(set outside the project's commands: the MLflow UI or another client)"
        )
    return (
        f"unrecorded move: the alias is on version {current}, its last recorded move set it "
        f"to version {recorded} (moved outside the project's commands: the MLflow UI or "
        "another client)"
    )


def previous_version(moves: list[AliasMove], current: str | None) -> str | None:
    """The version a rollback returns to: the one the alias held before its last move."""
    if not moves or moves[-1].to_version != current:
        return None
    return moves[-1].from_version


def newest_first(moves: list[AliasMove], limit: int, page: int) -> tuple[list[AliasMove], bool]:
    """Page `page` of `moves` (oldest first), `limit` a page, newest first; and whether older
    moves follow."""
    start = (page - 1) * limit
    newest = moves[::-1]
    return newest[start : start + limit], len(newest) > start + limit


COLUMNS = ("when", "who", "from", "to", "via", "commit", "why")


def table_rows(moves: list[AliasMove]) -> list[dict[str, str]]:
    return [
        {
            "when": move.when,
            "who": move.who,
            "from": move.from_version or "-",
            "to": move.to_version,
            "via": move.via,
            "commit": (move.commit or "-")[:10],
            "why": move.why,
        }
        for move in moves
    ]
