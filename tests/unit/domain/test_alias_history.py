"""The champion's history: events as tags, the unrecorded-move check, the rollback target."""

from __future__ import annotations

import pytest

from mlpipeline.domain.alias_history import (
    AliasMove,
    moves_of,
    previous_version,
    table_rows,
    tag_key,
    unrecorded_move,
)


def move(to: str, before: str | None, when: str = "2026-01-01T00:00:00+00:00") -> AliasMove:
    return AliasMove("champion", before, to, "carol", when, "why " * 400, "abc123" * 7, "promote")


def test_tags_round_trip_in_time_order_and_per_alias() -> None:
    tags = {
        tag_key("champion", 1_700_000_000_500, "beef"): move("2", "1").tag_value(),
        tag_key("champion", 1_700_000_000_000, "cafe"): move("1", None).tag_value(),
        tag_key("staging", 1_700_000_000_100, "0000"): move("3", None).tag_value(),
        "owner": "team",
    }
    moves = moves_of(tags, "champion")
    assert [(m.from_version, m.to_version) for m in moves] == [(None, "1"), ("1", "2")]
    assert len(moves[0].why) == 1000  # cut to fit a tag value
    assert all(len(value) < 5000 for value in tags.values())


@pytest.mark.parametrize(
    ("recorded", "current", "expected"),
    [
        ([], None, None),
        ([move("1", None)], "1", None),
        ([move("1", None), move("2", "1")], "1", "the alias is on version 1, its last recorded"),
        ([], "4", "the alias is on version 4 but no move of it is recorded"),
        ([move("1", None)], None, "the alias was removed"),
    ],
)
def test_unrecorded_move(recorded: list[AliasMove], current: str | None, expected: str | None):
    found = unrecorded_move(recorded, current)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.startswith(f"unrecorded move: {expected}")


def test_rollback_goes_back_only_along_the_record() -> None:
    history = [move("1", None), move("3", "1")]
    assert previous_version(history, "3") == "1"
    assert previous_version(history, "2") is None  # moved elsewhere since
    assert previous_version(history[:1], "1") is None  # nothing before the first
    assert previous_version([], "1") is None


def test_table_rows_shorten_the_commit() -> None:
    [row] = table_rows([move("2", None)])
    assert row["from"] == "-" and row["to"] == "2" and row["commit"] == "abc123abc1"
