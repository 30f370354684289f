"""The champion against the challenger: their labels matched by row, chunk after chunk."""

from __future__ import annotations

import pandas as pd
import pytest

from mlpipeline.domain.challenger import Comparison


def predictions(rows: dict[int, str]) -> pd.DataFrame:
    """A scorer's predictions: row numbers and labels (probabilities play no part)."""
    return pd.DataFrame(
        {"row": list(rows), "id": "x", "prediction": list(rows.values()), "proba_a": 0.5}
    )


@pytest.mark.parametrize(
    ("champion", "challenger", "agreement", "only_champion", "only_challenger"),
    [
        ({1: "a", 2: "b"}, {1: "a", 2: "b"}, 1.0, 0, 0),
        ({1: "a", 2: "b", 3: "b", 4: "c"}, {1: "a", 2: "c", 3: "b", 4: "b"}, 0.5, 0, 0),
        # Row 2 refused by the challenger's guard, row 5 by the champion's: not compared.
        ({1: "a", 2: "b", 3: "c"}, {1: "a", 3: "a", 5: "c"}, 0.5, 1, 1),
        ({1: "a"}, {2: "a"}, None, 1, 1),
        ({}, {}, None, 0, 0),
    ],
)
def test_agreement_counts_only_the_rows_both_scored(
    champion: dict[int, str],
    challenger: dict[int, str],
    agreement: float | None,
    only_champion: int,
    only_challenger: int,
) -> None:
    comparison = Comparison()
    comparison.add(predictions(champion), predictions(challenger))
    assert comparison.agreement == agreement
    assert (comparison.only_champion, comparison.only_challenger) == (
        only_champion,
        only_challenger,
    )


def test_class_counts_and_confusion_add_up_over_chunks() -> None:
    comparison = Comparison()
    comparison.add(predictions({1: "a", 2: "a", 3: "b"}), predictions({1: "a", 2: "b", 3: "b"}))
    comparison.add(predictions({4: "c", 5: "a"}), predictions({4: "b", 5: "a"}))
    assert comparison.class_counts() == {
        "a": {"champion": 3, "challenger": 2, "change": -1},
        "b": {"champion": 1, "challenger": 3, "change": 2},
        "c": {"champion": 1, "challenger": 0, "change": -1},
    }
    document = comparison.as_dict()
    assert document["confusion"] == {
        "a": {"a": 2, "b": 1, "c": 0},
        "b": {"a": 0, "b": 1, "c": 0},
        "c": {"a": 0, "b": 1, "c": 0},
    }
    assert (document["compared_rows"], document["agreed_rows"]) == (5, 3)
    assert document["agreement"] == pytest.approx(0.6)


def test_labels_are_compared_as_text() -> None:
    """A CSV read back gives 1 where the model said "1": both count as the label "1"."""
    comparison = Comparison()
    comparison.add(predictions({1: 1, 2: 0}), predictions({1: "1", 2: "1"}))  # type: ignore[dict-item]
    assert comparison.agreement == 0.5
    assert comparison.labels() == ["0", "1"]


def test_the_report_names_both_versions_the_changes_and_the_confusion() -> None:
    comparison = Comparison()
    comparison.add(predictions({1: "a", 2: "b", 3: "b"}), predictions({1: "a", 2: "a", 4: "b"}))
    lines = comparison.report("version 1", "version 2").splitlines()
    assert lines[0] == (
        "champion version 1 vs challenger version 2: agreement 50.00% (1 of 2 rows both scored)"
    )
    assert lines[1] == (
        "scored by one only: 1 by the champion, 1 by the challenger (the other's guard "
        "refused them)"
    )
    assert [line.split() for line in lines[3:6]] == [
        ["class", "champion", "challenger", "change"],
        ["a", "1", "2", "+1"],
        ["b", "1", "0", "-1"],
    ]
    assert [line.split() for line in lines[7:]] == [
        ["champion", "\\", "challenger", "a", "b"],
        ["a", "1", "0"],
        ["b", "1", "0"],
    ]
