"""The champion gate: score, threshold, comparable versions, an unloadable champion."""

from __future__ import annotations

import pytest

from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.promotion import (
    Candidate,
    Champion,
    champion_score,
    decide,
    lower_score_warning,
)
from tests.support.iris import FEATURES


def test_champion_score_reads_the_metric() -> None:
    metrics = {"accuracy": 0.95, "f1_score": 1, "per_class": {"a": {"f1": 0.5}}}
    assert champion_score(metrics, "accuracy") == 0.95
    assert champion_score(metrics, "f1_score") == 1.0


@pytest.mark.parametrize("metric", ["auc", "per_class", ""])
def test_champion_score_lists_the_available_metrics(metric: str) -> None:
    metrics = {"accuracy": 0.95, "f1_score": 0.9, "per_class": {"a": {"f1": 0.5}}}
    with pytest.raises(PipelineError) as caught:
        champion_score(metrics, metric)
    message = str(caught.value)
    assert f"save.champion_metric: {metric!r}" in message
    assert message.endswith("choose one of: accuracy, f1_score")


IRIS_INPUTS = [(name, "double") for name in FEATURES]
IRIS_DATA = "dataset_md5=abc;test_size=0.2;split_random_state=42"


@pytest.mark.parametrize(
    ("score", "min_score", "champion", "promoted", "reason"),
    [
        (0.85, 0.9, None, False, "below save.min_score"),
        (0.85, 0.9, 0.80, False, "below save.min_score"),
        (0.92, 0.9, 0.95, False, "worse than the champion's 0.9500"),
        (0.95, 0.9, 0.95, False, "ties the champion's 0.9500, and a tie keeps the alias"),
        (0.97, 0.9, 0.95, True, "reaches 0.9000 and beats 0.9500"),
        (0.93, 0.9, None, True, "no champion yet"),
        (0.90, 0.9, None, True, "reaches 0.9000"),
        (0.0, 0.0, None, True, "no champion yet"),
    ],
)
def test_promotion_by_score(
    score: float, min_score: float, champion: float | None, promoted: bool, reason: str
) -> None:
    candidate = Candidate("2", score, IRIS_INPUTS, IRIS_DATA)
    holder = None if champion is None else Champion("1", champion, IRIS_INPUTS, IRIS_DATA)
    decision = decide(candidate, holder, min_score)
    assert decision.promoted is promoted
    assert reason in decision.reason


def test_a_champion_that_cannot_be_loaded_gives_way_but_the_bar_stays() -> None:
    lost = Champion("1", None, (), None, loadable=False)
    decision = decide(Candidate("2", 0.91, IRIS_INPUTS, IRIS_DATA), lost, 0.9)
    assert decision.promoted
    assert "champion version 1's model cannot be loaded" in decision.reason
    below = decide(Candidate("2", 0.85, IRIS_INPUTS, IRIS_DATA), lost, 0.9)
    assert not below.promoted
    assert "below save.min_score" in below.reason


TABLE_INPUTS = [("a", "double"), ("b", "double")]


@pytest.mark.parametrize(
    ("candidate", "champion", "compete", "promoted", "reason"),
    [
        # A 2-column model with a perfect score on its own tiny table never replaces Iris.
        (
            Candidate(
                "2", 1.0, TABLE_INPUTS, "dataset_md5=def;test_size=0.2;split_random_state=42"
            ),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "its input columns (a, b) differ from champion version 1's (sepal_length, "
            "sepal_width, petal_length, petal_width), whose requests it would reject; "
            "register it under its own model name",
        ),
        # The same columns, typed differently, are another signature too.
        (
            Candidate("2", 1.0, [(n, "long") for n in FEATURES], IRIS_DATA),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "input columns",
        ),
        # Same columns, another test split: the scores are not compared.
        (
            Candidate(
                "2", 0.99, IRIS_INPUTS, "dataset_md5=abc;test_size=0.3;split_random_state=42"
            ),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "computed on other data (dataset or test split) than champion version 1's, so the "
            "two are not comparable; to serve it anyway, "
            "`mlpipeline model promote 2`",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, None),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "not comparable",
        ),
        # A champion whose evaluation data is unknown (registered by hand): not comparable.
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA),
            Champion("1", 0.93, IRIS_INPUTS, None),
            False,
            False,
            "not comparable",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA),
            Champion("1", 0.93, IRIS_INPUTS, None),
            False,
            False,
            "not comparable",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA),
            Champion("1", None, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "has no score for this metric",
        ),
        # --temp and queued experiments register but do not compete, unless told to.
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, temp_experiment="sappy-tuna"),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            False,
            "experiment sappy-tuna ran outside the workspace (--temp or queue) and "
            "save.experiments_compete is false; to serve it, `dvc exp apply sappy-tuna` and "
            "`mlpipeline model promote 2`",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, temp_experiment="sappy-tuna"),
            None,
            False,
            False,
            "save.experiments_compete is false",
        ),
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, temp_experiment="sappy-tuna"),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            True,
            True,
            "beats 0.9300",
        ),
        # A ZenML run is exploratory: it cannot be rebuilt, so it never takes the alias, not
        # on a tie, not as the first version, not when experiments compete.
        *[
            (
                Candidate("2", score, IRIS_INPUTS, IRIS_DATA, orchestrator="zenml"),
                champion,
                compete,
                False,
                "trained by the ZenML pipeline, an exploratory run that `mlpipeline model "
                "reproduce` cannot rebuild",
            )
            for score, champion, compete in [
                (0.93, Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA), False),
                (0.99, Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA), True),
                (0.99, None, False),
            ]
        ],
        (
            Candidate("2", 0.99, IRIS_INPUTS, IRIS_DATA, orchestrator="dvc"),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            True,
            "beats 0.9300",
        ),
        # A rerun of save for the version that already holds the alias keeps it.
        (
            Candidate("1", 0.5, IRIS_INPUTS, IRIS_DATA),
            Champion("1", 0.93, IRIS_INPUTS, IRIS_DATA),
            False,
            True,
            "version 1 already holds the alias",
        ),
    ],
)
def test_promotion_needs_comparable_versions(
    candidate: Candidate, champion: Champion | None, compete: bool, promoted: bool, reason: str
) -> None:
    decision = decide(candidate, champion, min_score=0.9, experiments_compete=compete)
    assert decision.promoted is promoted
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("score", "before", "before_score", "warned"),
    [
        (0.90, "4", 0.9333, True),  # below: said, with both scores
        (0.9333, "4", 0.9333, False),  # a tie
        (0.95, "4", 0.9333, False),  # better
        (0.90, None, None, False),  # nobody held the alias
        (None, "4", 0.9333, False),  # a version without a score
    ],
)
def test_a_move_to_a_lower_score_is_said(
    score: float | None, before: str | None, before_score: float | None, warned: bool
) -> None:
    warning = lower_score_warning("accuracy", "3", score, before, before_score)
    assert (warning is not None) == warned
    if warned:
        assert warning == (
            "version 3 scores 0.9000 (accuracy), below the 0.9333 of version 4, which held "
            "the alias"
        )
