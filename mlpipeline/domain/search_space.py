"""The `sweep:` section of params.yaml: what a hyperparameter sweep may vary, and how it ends.

Pure: the schema and the `-S section.key=value` overrides of a trial; Optuna, Ray and DVC are
mlpipeline/sweeps/. Each searched key is a `section.key` of params.yaml with one of

    {int: [low, high]}                  # integers, bounds included; `log: true` for a log scale
    {float: [low, high], log: true}     # reals; `step: 0.05` for a grid
    {choice: [standard, minmax]}        # any YAML values, null included
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

# The sections a trial may vary: the ones the pipeline's stages read up to evaluate. save and
# mlflow decide where the results go, not what they are.
SEARCHABLE_SECTIONS = ("load", "preprocess", "train", "evaluate")
STUDY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_range(low: float, high: float, *, log: bool, stepped: bool, log_low: int | None) -> None:
    """A range's rules: ordered ends; a log scale starts at `log_low` (or above 0) and takes
    no step."""
    if low > high:
        raise ValueError(f"low {low} is above high {high}")
    if log and log_low is not None and low < log_low:
        raise ValueError(f"a log scale needs low >= {log_low}")
    if log and log_low is None and low <= 0:
        raise ValueError("a log scale needs low > 0")
    if log and stepped:
        raise ValueError("a log scale takes no step")


class IntRange(_Strict):
    # A YAML list is a fine pair (the field is lax); its members are integers, never 1.5 or "1".
    int_: tuple[Annotated[int, Strict()], Annotated[int, Strict()]] = Field(
        alias="int", strict=False
    )
    log: bool = False
    step: int = Field(default=1, ge=1)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        _check_range(*self.int_, log=self.log, stepped=self.step != 1, log_low=1)
        return self


class FloatRange(_Strict):
    # Lax: a YAML list is a fine pair and `[0, 1]` a fine float range.
    float_: tuple[float, float] = Field(alias="float", strict=False)
    log: bool = False
    step: float | None = Field(default=None, gt=0.0, strict=False)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        _check_range(*self.float_, log=self.log, stepped=self.step is not None, log_low=None)
        return self


class Choice(_Strict):
    choice: tuple[Any, ...] = Field(min_length=1, strict=False)

    @field_validator("choice")
    @classmethod
    def _plain_values(cls, values: tuple[Any, ...]) -> tuple[Any, ...]:
        for value in values:
            if not (value is None or isinstance(value, str | int | float | bool)):
                raise ValueError(
                    f"choices are plain values (str, number, bool, null), got {value!r}"
                )
        if len(set(map(json.dumps, values))) != len(values):
            raise ValueError("choices repeat a value")
        return values


Dimension = IntRange | FloatRange | Choice


class SweepParams(_Strict):
    """The sweep's search space and budget; `mlpipeline model sweep` options override them."""

    space: dict[str, Dimension] = Field(min_length=1)
    trials: int = Field(default=10, ge=1, le=10_000, description="trials added per sweep run")
    metric: str = Field(default="f1_score", min_length=1, description="a key of metrics.json")
    direction: Literal["maximize", "minimize"] = "maximize"
    parallel: int = Field(default=2, ge=1, le=1_000, description="trials run at once")
    study_name: str = "sweep"

    @field_validator("space", mode="before")
    @classmethod
    def _known_form(cls, space: object) -> object:
        # One clear message per key instead of pydantic's three union members' complaints.
        if not isinstance(space, Mapping):
            return space
        checked: dict[str, Any] = {}
        for key, dimension in space.items():
            parts = str(key).split(".")
            if len(parts) != 2 or parts[0] not in SEARCHABLE_SECTIONS or not parts[1]:
                raise ValueError(
                    f"{key!r}: a searched key is section.key, with section one of "
                    f"{', '.join(SEARCHABLE_SECTIONS)}"
                )
            kinds = [
                kind
                for kind in ("int", "float", "choice")
                if isinstance(dimension, Mapping) and kind in dimension
            ]
            if len(kinds) != 1:
                raise ValueError(
                    f"{key!r}: give exactly one of int: [low, high], "
                    "float: [low, high] or choice: [values]"
                )
            models: dict[str, type[_Strict]] = {
                "int": IntRange,
                "float": FloatRange,
                "choice": Choice,
            }
            model = models[kinds[0]]
            try:
                checked[key] = model.model_validate(dimension)
            except ValueError as exc:
                details = "; ".join(
                    error["msg"].removeprefix("Value error, ")
                    + (f" ({'.'.join(map(str, error['loc']))})" if error["loc"] else "")
                    for error in getattr(exc, "errors", lambda: [])()
                )
                raise ValueError(f"{key!r}: {details or exc}") from None
        return checked

    @field_validator("study_name")
    @classmethod
    def _usable_name(cls, name: str) -> str:
        # It names the DVC experiments (<study>-<n>: git ref names) and the MLflow parent run.
        if not STUDY_NAME.match(name):
            raise ValueError("a letter, then up to 63 letters, digits, '_' or '-'")
        return name


def overrides(values: Mapping[str, Any]) -> list[str]:
    """A trial's values as `section.key=value` overrides, values in YAML (as `dvc exp run -S`)."""
    return [f"{key}={_yaml_scalar(value)}" for key, value in sorted(values.items())]


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    # A string YAML would read as another type (`'1'`, `'null'`, `'true'`) stays a string.
    text = str(value)
    return json.dumps(text) if _reads_as_non_string(text) else text


def _reads_as_non_string(text: str) -> bool:
    import yaml

    try:
        return not isinstance(yaml.safe_load(text), str)
    except yaml.YAMLError:
        return True


def experiment_name(study_name: str, number: int) -> str:
    """The DVC experiment of a trial: `<study>-<n>`."""
    return f"{study_name}-{number}"


def better(direction: str, value: float, than: float | None) -> bool:
    """Whether `value` beats `than` in the study's direction."""
    if than is None:
        return True
    return value > than if direction == "maximize" else value < than
