"""The model card: rendered from a record, its structure pinned by a golden file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlpipeline.domain.drift import reference_profile
from mlpipeline.domain.model_card import (
    CardRecord,
    data_md5_from_tags,
    render_card,
    rows_per_class,
    structure,
    with_current_alias,
)

GOLDEN = Path(__file__).parent / "golden" / "model_card.md"


def record() -> CardRecord:
    features = pd.DataFrame({"sepal_length": [5.0, 6.0, 7.0, 5.5], "petal_width": [0.2] * 4})
    labels = pd.Series(["setosa", "setosa", "virginica", "versicolor"])
    return CardRecord(
        model_name="iris_classifier",
        version="3",
        registered="2026-12-02T14:00:00+00:00",
        run_id="0123456789abcdef",
        experiment_name="iris_classification",
        decision="registered iris_classifier version 3; now @champion: score 0.9667 beats 0.9333",
        commit="b759a10a93ee3596eccd3d7873ca4517ab330adc",
        dirty="false",
        orchestrator="dvc",
        data_md5=data_md5_from_tags(
            {
                "md5.data/raw/dataset.csv": "8013bac35f120430e98ec3c6d20bf499",
                "md5.data/processed/train.parquet": "94a2a433262ae168b34338db866a15cc",
                "md5.models/scaler.pkl": "c292617c9a5f7976a4f2c43c626ec3f5",
                "git_commit": "b759a10a93",
            }
        ),
        params={"n_estimators": "100", "max_depth": "5", "preprocess.test_size": "0.2"},
        metrics={
            "accuracy": 0.9666666666666667,
            "f1_score": 0.9665831244778613,
            "per_class.setosa.f1": 1.0,
            "per_class.setosa.support": 10.0,
            "per_class.versicolor.f1": 0.95,
            "per_class.versicolor.support": 10.0,
            "per_class.virginica.f1": 0.9473684210526316,
            "per_class.virginica.support": 10.0,
        },
        signature=[("sepal_length", "double"), ("petal_width", "double")],
        reference=reference_profile(features, labels),
    )


def test_the_card_matches_the_golden_file() -> None:
    """To accept a deliberate change: write render_card(record()) to the golden file."""
    assert render_card(record()) == GOLDEN.read_text()


def test_rows_per_class_join_the_training_reference_and_the_test_support() -> None:
    assert rows_per_class(record()) == {
        "setosa": (2, 10),
        "versicolor": (1, 10),
        "virginica": (1, 10),
    }


def test_a_card_without_reference_says_so() -> None:
    card = render_card(CardRecord(**{**record().__dict__, "reference": None}))
    assert "No drift reference was logged with this model." in card


@pytest.mark.parametrize(
    "expected",
    [
        "# Model card",
        "## Lineage",
        "## Data",
        "### Rows per class",
        "class|training|test",
        "row: setosa",
        "## Input signature",
        "feature|mean|std|min|p5|p50|p95|max",
    ],
)
def test_structure_keeps_headings_headers_and_row_names(expected: str) -> None:
    assert expected in structure(render_card(record()))


@pytest.mark.parametrize(
    ("holder", "row"),
    [
        ("3", "| @champion now | this version (read when printed;"),
        ("4", "| @champion now | version 4 (read when printed), not this one |"),
        (None, "| @champion now | no version (read when printed) |"),
    ],
)
def test_the_printed_card_says_who_holds_the_alias_now(holder: str | None, row: str) -> None:
    card = "# Model card\n\n| field | value |\n| --- | --- |\n| champion gate | now @champion |\n"
    printed = with_current_alias(card, "champion", "3", holder).splitlines()
    assert printed[4] == "| champion gate | now @champion |"
    assert printed[5].startswith(row)
