"""The study a sweep resumes, on a real Optuna SQLite database: drawing, stale trials, repeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpipeline.domain.errors import ParamsError
from mlpipeline.domain.search_space import Choice, FloatRange, IntRange
from mlpipeline.sweeps import study as studies


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sweeps.db'}"


def test_the_default_database_is_beside_params_yaml(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(studies.STORAGE_ENV, raising=False)
    assert studies.storage_url(None, tmp_path) == f"sqlite:///{tmp_path / 'sweeps.db'}"
    monkeypatch.setenv(studies.STORAGE_ENV, "postgresql://u:p@db/optuna")
    assert studies.storage_url(None, tmp_path) == "postgresql://u:p@db/optuna"
    assert studies.storage_url("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def test_draws_stay_in_the_space(url: str) -> None:
    study = studies.open_study(url, "s", "maximize")
    space = {
        "train.n_estimators": IntRange.model_validate({"int": [10, 500], "log": True}),
        "train.max_features": FloatRange.model_validate({"float": [0.2, 1.0], "step": 0.2}),
        "train.class_weight": Choice.model_validate({"choice": [None, "balanced"]}),
    }
    for _ in range(10):
        trial = study.ask()
        values = studies.suggest(trial, space)
        assert 10 <= values["train.n_estimators"] <= 500
        assert round(values["train.max_features"] * 5) == pytest.approx(
            values["train.max_features"] * 5
        )
        assert values["train.class_weight"] in (None, "balanced")
        study.tell(trial, 0.5)


def test_a_resumed_study_keeps_its_trials_and_fails_those_left_running(url: str) -> None:
    study = studies.open_study(url, "s", "maximize")
    study.tell(study.ask(), 0.9)
    study.ask()  # a sweep killed while this trial ran
    resumed = studies.open_study(url, "s", "maximize")
    assert studies.settle_stale_trials(resumed) == [1]
    assert [t.state.name for t in resumed.trials] == ["COMPLETE", "FAIL"]
    assert resumed.ask().number == 2


def test_a_study_made_to_maximize_is_not_resumed_to_minimize(url: str) -> None:
    studies.open_study(url, "s", "maximize")
    with pytest.raises(ParamsError, match="made to maximize, not minimize"):
        studies.open_study(url, "s", "minimize")


def test_a_repeat_of_a_finished_trial_is_found(url: str) -> None:
    study = studies.open_study(url, "s", "maximize")
    space = {"train.max_depth": IntRange.model_validate({"int": [3, 3]})}
    first = study.ask()
    studies.suggest(first, space)
    study.tell(first, 0.9)
    second = study.ask()
    values = studies.suggest(second, space)
    assert studies.tried_before(study, values, second.number) == first.number
    assert studies.tried_before(study, {"train.max_depth": 4}, second.number) is None
