"""The sweep: section: its search space validated key by key, a trial's values as overrides."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from mlpipeline.domain.errors import ParamsError
from mlpipeline.domain.params import apply_overrides, validate_params
from mlpipeline.domain.search_space import (
    Choice,
    FloatRange,
    IntRange,
    better,
    experiment_name,
    overrides,
)
from tests.support.repository import IRIS_PARAMS

COMMITTED = yaml.safe_load(IRIS_PARAMS.read_text())


def with_sweep(**sweep: Any) -> dict[str, Any]:
    raw = copy.deepcopy(COMMITTED)
    raw["sweep"] = {"space": {"train.n_estimators": {"int": [10, 100]}}, **sweep}
    return raw


def test_the_section_is_optional_and_defaults_fill_in() -> None:
    assert validate_params(copy.deepcopy(COMMITTED)).sweep is None
    sweep = validate_params(with_sweep()).sweep
    assert sweep is not None
    assert (sweep.trials, sweep.metric, sweep.direction, sweep.parallel, sweep.study_name) == (
        10,
        "f1_score",
        "maximize",
        2,
        "sweep",
    )


@pytest.mark.parametrize(
    ("dimension", "kind"),
    [
        ({"int": [2, 16]}, IntRange),
        ({"int": [10, 500], "log": True}, IntRange),
        ({"float": [0, 1]}, FloatRange),
        ({"float": [0.001, 1.0], "log": True}, FloatRange),
        ({"float": [0.1, 1.0], "step": 0.1}, FloatRange),
        ({"choice": ["standard", "minmax"]}, Choice),
        ({"choice": [None, "balanced"]}, Choice),
    ],
)
def test_each_form_of_dimension_validates(dimension: dict, kind: type) -> None:
    raw = with_sweep()
    raw["sweep"]["space"] = {"train.x": dimension}
    assert isinstance(validate_params(raw).sweep.space["train.x"], kind)


@pytest.mark.parametrize(
    ("space", "named"),
    [
        ({"train.n": {"int": [500, 50]}}, "'train.n': low 500 is above high 50"),
        ({"train.n": {"int": [1.5, 3]}}, "'train.n': Input should be a valid integer"),
        ({"train.n": {"int": [0, 3], "log": True}}, "log scale needs low >= 1"),
        ({"train.x": {"float": [0, 1], "log": True}}, "log scale needs low > 0"),
        ({"save.min_score": {"float": [0, 1]}}, "'save.min_score': a searched key is section.key"),
        ({"n_estimators": {"int": [1, 2]}}, "'n_estimators': a searched key"),
        ({"train.x": {"range": [1, 2]}}, "give exactly one of int"),
        ({"train.x": {"int": [1, 2], "choice": [1]}}, "give exactly one of int"),
        ({"train.x": {"choice": []}}, "'train.x'"),
        ({"train.x": {"choice": [1, 1]}}, "choices repeat a value"),
        ({"train.x": {"choice": [[1]]}}, "choices are plain values"),
        ({}, "sweep.space"),
    ],
)
def test_a_bad_dimension_is_named(space: dict, named: str) -> None:
    raw = with_sweep()
    raw["sweep"]["space"] = space
    with pytest.raises(ParamsError) as caught:
        validate_params(raw)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("trials", 0, "sweep.trials"),
        ("parallel", 0, "sweep.parallel"),
        ("direction", "up", "sweep.direction"),
        ("study_name", "my study", "sweep.study_name"),
        ("study_name", "-x", "sweep.study_name"),
        ("trails", 3, "sweep.trails: unknown key"),
    ],
)
def test_bad_settings_are_named(key: str, value: Any, named: str) -> None:
    with pytest.raises(ParamsError) as caught:
        validate_params(with_sweep(**{key: value}))
    assert named in str(caught.value)


def test_overrides_read_back_as_the_values_drawn() -> None:
    values = {
        "train.max_depth": None,
        "train.max_features": 0.5,
        "train.bootstrap": False,
        "train.n_estimators": 30,
        "preprocess.scaler": "minmax",
        "train.class_weight": "null",
    }
    raw = apply_overrides(copy.deepcopy(COMMITTED), overrides(values))
    for key, value in values.items():
        section, name = key.split(".")
        assert raw[section][name] == value, key


def test_names_and_the_better_value() -> None:
    assert experiment_name("iris", 3) == "iris-3"
    assert better("maximize", 0.9, None) and better("maximize", 0.9, 0.8)
    assert not better("maximize", 0.8, 0.9)
    assert better("minimize", 0.1, 0.2) and not better("minimize", 0.2, 0.1)
