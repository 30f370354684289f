"""params.yaml schema: the user's file and the Iris defaults validate; bad values are named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mlpipeline.domain.errors import ParamsError
from mlpipeline.domain.params import Params, apply_overrides, validate_params
from mlpipeline.files.params_yaml import load_params
from tests.support.repository import IRIS_PARAMS

# The template's defaults, whatever the user's params.yaml holds now.
COMMITTED = yaml.safe_load(IRIS_PARAMS.read_text())


@pytest.fixture
def raw() -> dict[str, Any]:
    """A private copy of the committed params document."""
    return copy.deepcopy(COMMITTED)


def error_of(raw: Any) -> str:
    with pytest.raises(ParamsError) as caught:
        validate_params(raw)
    return str(caught.value)


def test_committed_params_validate() -> None:
    """The user's params.yaml, whatever task it sets up, passes the schema."""
    assert isinstance(load_params(), Params)


def test_iris_defaults_validate() -> None:
    params = load_params(IRIS_PARAMS)
    assert (params.train.n_estimators, params.train.max_depth, params.train.random_state) == (
        100,
        5,
        42,
    )
    assert params.load.source == "iris"
    assert params.mlflow.experiment_name == "iris_classification"
    assert params.mlflow.registered_model_name == "iris_classifier"
    assert params.mlflow.champion_alias == "champion"


def test_params_are_frozen() -> None:
    params = validate_params(COMMITTED)
    with pytest.raises(ValidationError):
        params.train.n_estimators = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        # wrong type
        ("train", "n_estimators", "many", ["train.n_estimators", "valid integer", "'many'"]),
        ("train", "n_estimators", 1.5, ["train.n_estimators", "valid integer", "1.5"]),
        ("train", "n_estimators", True, ["train.n_estimators", "valid integer"]),
        ("train", "bootstrap", "maybe", ["train.bootstrap", "valid boolean"]),
        ("train", "bootstrap", 1, ["train.bootstrap", "valid boolean"]),
        ("preprocess", "test_size", "a fifth", ["preprocess.test_size", "valid number"]),
        ("save", "min_score", [0.9], ["save.min_score", "valid number"]),
        # out of range
        ("train", "n_estimators", 0, ["train.n_estimators", "greater than or equal to 1"]),
        ("train", "n_estimators", 10_001, ["train.n_estimators", "less than or equal to 10000"]),
        ("train", "max_depth", 0, ["train.max_depth", "greater than or equal to 1"]),
        (
            "train",
            "min_samples_split",
            1,
            ["train.min_samples_split", "greater than or equal to 2"],
        ),
        ("train", "random_state", -1, ["train.random_state", "greater than or equal to 0"]),
        ("train", "max_features", 1.5, ["train", "max_features", "(0, 1]"]),
        ("train", "n_jobs", 0, ["train", "n_jobs", "-1"]),
        ("train", "n_jobs", -2, ["train.n_jobs", "greater than or equal to -1"]),
        ("preprocess", "test_size", 1.0, ["preprocess.test_size", "less than 1"]),
        ("preprocess", "test_size", 0, ["preprocess.test_size", "greater than 0"]),
        ("save", "min_score", 1.5, ["save.min_score", "less than or equal to 1"]),
        ("evaluate", "top_features", 0, ["evaluate.top_features", "greater than or equal to 1"]),
        ("mlflow", "experiment_name", "", ["mlflow.experiment_name", "at least 1 character"]),
        ("mlflow", "champion_alias", "1st place", ["mlflow.champion_alias", "pattern"]),
        ("monitor", "psi_threshold", 0, ["monitor.psi_threshold", "greater than 0"]),
        ("monitor", "ks_threshold", 1.5, ["monitor.ks_threshold", "less than or equal to 1"]),
        ("monitor", "fail_on_drift", "yes", ["monitor.fail_on_drift", "valid boolean"]),
        # a value outside a fixed set: the message lists what is allowed
        ("load", "source", "parquet", ["load.source", "'iris'", "'csv'", "'parquet'"]),
        ("preprocess", "scaler", "robust", ["preprocess.scaler", "'standard'", "'minmax'"]),
        ("train", "criterion", "mse", ["train.criterion", "'gini'", "'entropy'", "'log_loss'"]),
        ("train", "class_weight", "auto", ["train.class_weight", "'balanced'"]),
        ("train", "max_features", "all", ["train.max_features", "'sqrt'", "'log2'"]),
        ("evaluate", "average", "micro", ["evaluate.average", "'macro'", "'weighted'"]),
    ],
)
def test_bad_value_is_named(
    raw: dict[str, Any], section: str, key: str, value: Any, expected: list[str]
) -> None:
    raw[section][key] = value
    message = error_of(raw)
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize(
    ("section", "key", "allowed"),
    [
        ("train", "n_estimator", ["n_estimators", "max_depth", "criterion", "n_jobs"]),
        ("preprocess", "seed", ["test_size", "random_state", "scaler"]),
        ("save", "threshold", ["champion_metric", "min_score"]),
    ],
)
def test_unknown_key_lists_allowed_keys(
    raw: dict[str, Any], section: str, key: str, allowed: list[str]
) -> None:
    raw[section][key] = 1
    message = error_of(raw)
    assert f"{section}.{key}: unknown key" in message
    for name in allowed:
        assert name in message.split("allowed here:")[1]


def test_unknown_section_lists_sections(raw: dict[str, Any]) -> None:
    raw["model"] = {"depth": 3}
    message = error_of(raw)
    assert "model: unknown key" in message
    allowed = message.split("allowed here:")[1]
    for section in ("load", "preprocess", "train", "evaluate", "save", "mlflow"):
        assert section in allowed


@pytest.mark.parametrize(
    ("section", "key"),
    [("train", "n_estimators"), ("preprocess", "scaler"), ("mlflow", "champion_alias")],
)
def test_missing_key_is_named(raw: dict[str, Any], section: str, key: str) -> None:
    del raw[section][key]
    assert f"{section}.{key}: required key is missing" in error_of(raw)


def test_missing_section_is_named(raw: dict[str, Any]) -> None:
    del raw["save"]
    assert "save: required key is missing" in error_of(raw)


def test_section_that_is_not_a_mapping(raw: dict[str, Any]) -> None:
    raw["train"] = 5
    assert "train:" in error_of(raw)


@pytest.mark.parametrize("document", [None, [1, 2], "load: iris"])
def test_document_that_is_not_a_mapping(document: Any) -> None:
    assert "expected a mapping of sections" in error_of(document)


def test_every_problem_is_reported(raw: dict[str, Any]) -> None:
    raw["train"]["n_estimators"] = 0
    raw["preprocess"]["scaler"] = "robust"
    raw["evaluate"]["colour"] = "red"
    message = error_of(raw)
    for key in ("train.n_estimators", "preprocess.scaler", "evaluate.colour"):
        assert key in message


@pytest.mark.parametrize(
    "load",
    [
        {"source": "csv"},
        {"source": "csv", "csv_path": "data/external/table.csv"},
        {"source": "csv", "target_column": "species"},
        {"source": "csv", "csv_path": "", "target_column": "species"},
    ],
)
def test_csv_source_needs_path_and_target(raw: dict[str, Any], load: dict[str, Any]) -> None:
    raw["load"] = load
    message = error_of(raw)
    assert "load.csv_path" in message
    assert "load.target_column" in message


def test_csv_source_with_path_and_target(raw: dict[str, Any]) -> None:
    raw["load"] = {"source": "csv", "csv_path": "data/external/t.csv", "target_column": "y"}
    params = validate_params(raw)
    assert (params.load.csv_path, params.load.target_column) == ("data/external/t.csv", "y")


def test_max_features_fraction_and_integer_one(raw: dict[str, Any]) -> None:
    raw["train"]["max_features"] = 1  # the fraction 1.0 (all features), not "one feature"
    assert validate_params(raw).train.max_features == 1.0
    raw["train"]["max_features"] = 0.5
    assert validate_params(raw).train.max_features == 0.5


# --- overrides, as `dvc exp run -S section.key=value` gives them


@pytest.mark.parametrize(
    ("override", "section", "key", "expected"),
    [
        ("train.n_estimators=50", "train", "n_estimators", 50),
        ("train.max_depth=null", "train", "max_depth", None),
        ("train.max_depth=", "train", "max_depth", None),
        ("train.max_features=0.5", "train", "max_features", 0.5),
        ("train.max_features=log2", "train", "max_features", "log2"),
        ("train.bootstrap=false", "train", "bootstrap", False),
        ("preprocess.test_size=0.3", "preprocess", "test_size", 0.3),
        ("load.csv_path=data/external/t.csv", "load", "csv_path", "data/external/t.csv"),
        ("mlflow.experiment_name=my runs", "mlflow", "experiment_name", "my runs"),
        ("mlflow.experiment_name='123'", "mlflow", "experiment_name", "123"),
        (" train.n_estimators =7", "train", "n_estimators", 7),
    ],
)
def test_override_values_are_yaml(override: str, section: str, key: str, expected: Any) -> None:
    merged = apply_overrides(COMMITTED, [override])
    assert merged[section][key] == expected
    assert type(merged[section][key]) is type(expected)


def test_overrides_leave_the_input_alone_and_the_last_one_wins(raw: dict[str, Any]) -> None:
    merged = apply_overrides(raw, ["train.n_estimators=10", "train.n_estimators=20"])
    assert merged["train"]["n_estimators"] == 20
    assert raw == COMMITTED
    assert {k: v for k, v in merged["train"].items() if k != "n_estimators"} == {
        k: v for k, v in COMMITTED["train"].items() if k != "n_estimators"
    }


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.n_estimators", "expected section.key=value"),
        ("n_estimators=5", "expected section.key=value"),
        ("train.n_estimators.max=5", "expected section.key=value"),
        (".n_estimators=5", "expected section.key=value"),
        ("train.=5", "expected section.key=value"),
        ("=5", "expected section.key=value"),
        ("model.depth=3", "unknown section 'model'"),
        ("train.max_features=[", "not valid YAML"),
    ],
)
def test_malformed_override_is_rejected(override: str, expected: str) -> None:
    with pytest.raises(ParamsError) as caught:
        apply_overrides(COMMITTED, [override])
    assert repr(override) in str(caught.value)
    assert expected in str(caught.value)


# --- load_params: reading, overriding and validating a file


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(IRIS_PARAMS.read_text())
    return path


def test_load_params_applies_overrides(params_file: Path) -> None:
    params = load_params(params_file, ["train.n_estimators=7", "evaluate.average=weighted"])
    assert params.train.n_estimators == 7
    assert params.evaluate.average == "weighted"
    assert params.train.max_depth == 5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.n_estimators=0", "train.n_estimators: Input should be greater than or equal to 1"),
        ("train.depth=3", "train.depth: unknown key"),
        ("train.n_estimators=ten", "train.n_estimators"),
    ],
)
def test_load_params_validates_overridden_values(
    params_file: Path, override: str, expected: str
) -> None:
    with pytest.raises(ParamsError, match=r"params\.yaml is invalid") as caught:
        load_params(params_file, [override])
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping of sections"),
    ],
)
def test_load_params_bad_file(params_file: Path, text: str, expected: str) -> None:
    params_file.write_text(text)
    with pytest.raises(ParamsError, match=expected):
        load_params(params_file)


def test_load_params_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ParamsError, match="file not found") as caught:
        load_params(missing)
    assert str(missing) in str(caught.value)


def test_monitor_section_may_be_left_out(raw: dict[str, Any]) -> None:
    """params files written before batch scoring still load, with the default thresholds."""
    del raw["monitor"]
    monitor = validate_params(raw).monitor
    assert (monitor.psi_threshold, monitor.ks_threshold, monitor.fail_on_drift) == (0.2, 0.2, True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"keep_versions": 0}, ["retention.keep_versions", "greater than or equal to 1"]),
        ({"keep_days": -1}, ["retention.keep_days", "greater than or equal to 0"]),
        ({"keep_days": "90d"}, ["retention.keep_days", "valid integer", "'90d'"]),
        ({"keep_last": 3}, ["retention.keep_last", "unknown key", "keep_versions, keep_days"]),
    ],
)
def test_bad_retention_is_named(raw: dict[str, Any], value: Any, expected: list[str]) -> None:
    raw["retention"] = value
    message = error_of(raw)
    assert len(message.splitlines()) == 2  # the heading and one line naming the key
    for fragment in expected:
        assert fragment in message


def test_retention_defaults_when_absent() -> None:
    retention = validate_params(COMMITTED).retention
    assert (retention.keep_versions, retention.keep_days) == (20, 90)
