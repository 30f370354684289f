"""Batch scoring's pure parts: the schema check, the id column, a chunk scored, the tally."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from mlpipeline.domain.chunk_scoring import (
    Tally,
    check_schema,
    choose_id_column,
    feature_columns,
    score_chunk,
    scoring_metrics,
)
from mlpipeline.domain.dataset import TARGET, load_iris_frame
from mlpipeline.domain.errors import DataError
from mlpipeline.domain.training import bundle_pipeline

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def pipeline(processed, model: Any) -> Any:
    return bundle_pipeline(processed[2], model)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["id", *FEATURES], None),
        (FEATURES[::-1], None),  # any order
        (
            ["id", "sepal_length", "petal_length"],
            "batch.csv lacks the model's feature column(s) sepal_width, petal_width",
        ),
        ([*FEATURES, "id", "id"], "batch.csv: column(s) appear more than once: id"),
    ],
)
def test_check_schema(columns: list[str], message: str | None) -> None:
    if message is None:
        check_schema("batch.csv", columns, FEATURES)
    else:
        with pytest.raises(DataError, match=re.escape(message)):
            check_schema("batch.csv", columns, FEATURES)


def test_choose_id_column() -> None:
    assert choose_id_column("f", ["id", *FEATURES], None) == "id"
    assert choose_id_column("f", FEATURES, None) is None
    assert choose_id_column("f", ["key", *FEATURES], "key") == "key"
    with pytest.raises(DataError, match="f has no id column 'key'"):
        choose_id_column("f", FEATURES, "key")


def test_a_chunk_keeps_its_order_ids_and_row_numbers(pipeline: Any) -> None:
    rows = load_iris_frame().drop(columns=[TARGET]).iloc[[0, 60, 120, 1]].reset_index(drop=True)
    rows = rows.astype(object)
    rows.insert(0, "id", ["a", "b", "c", "d"])
    rows.loc[2, "petal_width"] = np.inf
    scored = score_chunk(pipeline, rows, first_row=101, id_column="id")
    assert list(scored.predictions["row"]) == [101, 102, 104]
    assert list(scored.predictions["id"]) == ["a", "b", "d"]
    good = rows.drop(index=2)[FEATURES].astype(float)
    assert list(scored.predictions["prediction"]) == list(pipeline.predict(good))
    probabilities = scored.predictions.filter(like="proba_").to_numpy()
    assert np.allclose(probabilities, pipeline.predict_proba(good))
    assert scored.rejects.to_dict("records") == [
        {"row": 103, "id": "c", "reason": "petal_width is infinite: inf"}
    ]
    assert feature_columns(pipeline) == FEATURES


def test_a_chunk_of_rejects_only(pipeline: Any) -> None:
    rows = load_iris_frame().drop(columns=[TARGET]).head(2).assign(sepal_length=np.nan)
    scored = score_chunk(pipeline, rows, first_row=1, id_column=None)
    assert scored.predictions.empty
    assert list(scored.rejects["row"]) == [1, 2]


def test_the_tally_fails_on_no_rows_or_no_good_rows(pipeline: Any) -> None:
    rows = load_iris_frame().drop(columns=[TARGET]).head(3)
    tally = Tally()
    with pytest.raises(DataError, match=r"batch\.csv has no data rows"):
        tally.check_usable("batch.csv")
    tally.add(score_chunk(pipeline, rows.assign(petal_length="x"), 1, None))
    with pytest.raises(
        DataError, match=r"refused all 3 row\(s\); the first: row 1: petal_length is not"
    ):
        tally.check_usable("batch.csv")
    tally.add(score_chunk(pipeline, rows, 4, None))
    tally.check_usable("batch.csv")
    assert (tally.rows, tally.rejected, tally.scored) == (6, 3, 3)
    assert tally.class_shares() == {"setosa": 1.0}


def test_tallies_merged_from_parts_keep_the_first_reject_of_the_input(pipeline: Any) -> None:
    rows = load_iris_frame().drop(columns=[TARGET]).head(6)
    early = Tally()
    early.add(score_chunk(pipeline, rows.head(3).assign(petal_width=np.nan), 1, None))
    late = Tally()
    late.add(score_chunk(pipeline, rows.tail(3).assign(sepal_width="x"), 4, None))
    merged = Tally()
    merged.merge(late)
    merged.merge(early)
    assert (merged.rows, merged.rejected) == (6, 6)
    assert merged.first_reject == "row 1: petal_width is missing"


def test_scoring_metrics_count_rows_speed_and_class_shares() -> None:
    tally = Tally(rows=10, rejected=2)
    tally.classes.update({"setosa": 6, "virginica": 2})
    assert scoring_metrics(tally, 2.0) == {
        "rows": 10.0,
        "rejected_rows": 2.0,
        "scored_rows": 8.0,
        "seconds": 2.0,
        "rows_per_second": 5.0,
        "class_share.setosa": 0.75,
        "class_share.virginica": 0.25,
    }
    assert scoring_metrics(tally, 0.0)["rows_per_second"] == 0.0
