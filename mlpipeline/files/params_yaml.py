"""Reading params.yaml (and `section.key=value` overrides) into the validated schema."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from mlpipeline.domain.errors import ParamsError
from mlpipeline.domain.params import Params, apply_overrides, validate_params
from mlpipeline.files.paths import PARAMS


def load_params(path: Path = PARAMS, overrides: Iterable[str] = ()) -> Params:
    """Read, override and validate params.yaml."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    overrides = list(overrides)
    if overrides:
        if not isinstance(raw, Mapping):
            raise ParamsError(f"{path}: expected a mapping of sections")
        raw = apply_overrides(raw, overrides)
    return validate_params(raw, source=path.name)
