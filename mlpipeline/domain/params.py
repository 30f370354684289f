"""params.yaml as a typed, frozen schema: one section per stage, validated before any work.

Pure: a parsed document in, `Params` or a ParamsError naming every offending key out; reading
the file is mlpipeline/files/params_yaml.py.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from mlpipeline.domain.errors import ParamsError
from mlpipeline.domain.search_space import SweepParams


class _Section(BaseModel):
    # strict: no silent coercion, e.g. `n_estimators: true` is not 1 and `bootstrap: 1` is not true.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SyntheticParams(_Section):
    """Shape of the `synthetic` source (scikit-learn's make_classification)."""

    rows: int = Field(default=10_000, ge=4, le=100_000_000)
    features: int = Field(default=10, ge=1, le=10_000)
    classes: int = Field(default=3, ge=2, le=1_000)
    random_state: int = Field(default=42, ge=0)

    @model_validator(mode="after")
    def _classes_fit_features(self) -> SyntheticParams:
        # make_classification puts each class on a vertex of a hypercube in the informative
        # features; there must be at least as many vertices as classes.
        if self.classes > 2**self.features:
            needed = (self.classes - 1).bit_length()
            raise ValueError(f"{self.classes} classes need at least {needed} features")
        if self.rows < 2 * self.classes:
            raise ValueError(f"{self.rows} rows are too few for {self.classes} classes")
        return self


class LoadParams(_Section):
    source: Literal["iris", "csv", "synthetic"]
    # For source `csv`: a path relative to the repository root (keep it under data/external/,
    # which the load stage depends on) and the name of its label column.
    csv_path: str | None = None
    target_column: str | None = None
    # For source `synthetic`: rows, features, classes and seed; the defaults when omitted.
    synthetic: SyntheticParams | None = None

    @model_validator(mode="after")
    def _csv_needs_path_and_target(self) -> LoadParams:
        if self.source == "csv" and not (self.csv_path and self.target_column):
            raise ValueError("source 'csv' needs both load.csv_path and load.target_column")
        return self

    @model_serializer(mode="wrap")
    def _omit_unset_synthetic(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Runs that do not use the synthetic source log the same params as before it existed.
        dumped = handler(self)
        if dumped.get("synthetic", ...) is None:
            del dumped["synthetic"]
        return dumped

    def synthetic_shape(self) -> SyntheticParams:
        """The synthetic source's settings, defaults filled in."""
        return self.synthetic or SyntheticParams()


class PreprocessParams(_Section):
    test_size: float = Field(gt=0.0, lt=1.0)
    random_state: int = Field(ge=0)
    scaler: Literal["standard", "minmax"]


class TrainParams(_Section):
    n_estimators: int = Field(ge=1, le=10_000)
    max_depth: int | None = Field(ge=1)
    min_samples_split: int = Field(ge=2)
    min_samples_leaf: int = Field(ge=1)
    max_features: Literal["sqrt", "log2"] | float | None
    criterion: Literal["gini", "entropy", "log_loss"]
    class_weight: Literal["balanced", "balanced_subsample"] | None
    bootstrap: bool
    random_state: int = Field(ge=0)
    n_jobs: int = Field(ge=-1, description="-1 uses every core")

    @field_validator("max_features")
    @classmethod
    def _fraction_in_range(cls, value: object) -> object:
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError("a fraction must be in (0, 1]; or use sqrt, log2 or null")
        return value

    @field_validator("n_jobs")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (all cores) or a positive count")
        return value


class EvaluateParams(_Section):
    average: Literal["macro", "weighted"]
    top_features: int = Field(ge=1, description="features shown in the importance plot")


class SaveParams(_Section):
    champion_metric: str = Field(min_length=1, description="a key of metrics/metrics.json")
    min_score: float = Field(ge=0.0, le=1.0)
    # Whether `dvc exp run --temp` and queued experiments, which run outside the workspace,
    # may take the alias; they register their version either way.
    experiments_compete: bool = False


class MlflowParams(_Section):
    experiment_name: str = Field(min_length=1)
    registered_model_name: str = Field(min_length=1)
    champion_alias: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")

    @property
    def champion_uri(self) -> str:
        """The champion's model URI, what scoring, serving and reproducing default to."""
        return f"models:/{self.registered_model_name}@{self.champion_alias}"


class MonitorParams(_Section):
    """Batch scoring's drift gate (mlpipeline/domain/drift.py): a feature drifts when its PSI
    or its Kolmogorov-Smirnov statistic against the training split exceeds its threshold."""

    psi_threshold: float = Field(default=0.2, gt=0.0)
    ks_threshold: float = Field(default=0.2, gt=0.0, le=1.0)
    prediction_psi_threshold: float = Field(default=0.2, gt=0.0)
    # false: drift is reported (JSON, HTML, MLflow) but the scoring still exits 0.
    fail_on_drift: bool = True


class RetentionParams(_Section):
    """`mlpipeline model gc` (docs/retention.md): what it keeps besides every version that
    holds or ever held an alias and everything a kept version's lineage names."""

    keep_versions: int = Field(default=20, ge=1, description="the newest N versions per model")
    keep_days: int = Field(default=90, ge=0, description="and everything younger than this")


class Params(_Section):
    load: LoadParams
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams
    save: SaveParams
    mlflow: MlflowParams
    # Optional for params files written before it: every key has its default.
    monitor: MonitorParams = Field(default_factory=MonitorParams)
    # `mlpipeline model sweep` (docs/sweeps.md); no stage reads it.
    sweep: SweepParams | None = None
    # `mlpipeline model gc` (docs/retention.md); no stage reads it; every key has its default.
    retention: RetentionParams = Field(default_factory=RetentionParams)


def _describe(error: Mapping[str, Any], model: type[BaseModel] = Params) -> str:
    loc = _key_path(model, [str(part) for part in error["loc"] if not isinstance(part, int)])
    key = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"{key}: unknown key; allowed here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("input"), Mapping):  # a whole section: the message names the keys
        return f"{key}: {message}"
    return f"{key}: {message} (got {error.get('input')!r})"


def _key_path(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The params keys of an error location, without pydantic's union-member tags."""
    keys: list[str] = []
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:  # inside a plain field: the rest are union-member tags
            break
        keys.append(part)
        field = current.model_fields.get(part)
        if field is None:  # an unknown key
            break
        members = typing.get_args(field.annotation) or (field.annotation,)
        current = next(
            (m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None
        )
    return keys


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        # An optional section (`Section | None`) lists the keys of its section.
        annotation = next(
            (
                arg
                for arg in get_args(annotation)
                if isinstance(arg, type) and issubclass(arg, BaseModel)
            ),
            annotation,
        )
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def validate_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a parsed params document; ParamsError names every offending key."""
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  - {_describe(err)}" for err in exc.errors())
        raise ParamsError(f"{source} is invalid:\n{lines}") from None


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides (values parsed as YAML), like `dvc exp run -S`."""
    merged: dict[str, Any] = {name: dict(section) for name, section in raw.items()}
    for override in overrides:
        key, sep, value = override.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ParamsError(f"override {override!r}: expected section.key=value")
        section, name = parts
        if section not in merged:
            raise ParamsError(f"override {override!r}: unknown section {section!r}")
        try:
            merged[section][name] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ParamsError(f"override {override!r}: value is not valid YAML: {exc}") from None
    return merged
