"""What dvc.yaml says about each stage: the files it depends on and the files it writes.

One reader for everyone who needs it: lineage (what a rebuild must match), the ZenML steps
(their cache keys are the deps of the DVC stage of the same name) and the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipeline.files.paths import ROOT

OUTPUT_SECTIONS = ("outs", "metrics", "plots")


def stages(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """dvc.yaml's `stages:` mapping, stage name → its spec."""
    import yaml

    return yaml.safe_load((root / "dvc.yaml").read_text()).get("stages", {})


def _name(entry: str | dict[str, Any]) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def outputs(spec: dict[str, Any]) -> list[str]:
    """The paths a stage writes: its outs, metrics and plots, in dvc.yaml's order."""
    return [_name(entry) for section in OUTPUT_SECTIONS for entry in spec.get(section, [])]


def deps(spec: dict[str, Any]) -> list[str]:
    """The paths a stage depends on (code, data), in dvc.yaml's order."""
    return [str(dep) for dep in spec.get("deps", [])]


def params_files(spec: dict[str, Any]) -> list[str]:
    """Params files other than params.yaml that a stage names (`- other.yaml: [key]`)."""
    return [name for entry in spec.get("params", []) if isinstance(entry, dict) for name in entry]


def produced(root: Path = ROOT) -> set[str]:
    """Every path some stage writes."""
    return {name for spec in stages(root).values() for name in outputs(spec)}


def source_deps(stage: str, root: Path = ROOT) -> list[str]:
    """A stage's deps that no stage produces: the code and the user's data it reads."""
    made = produced(root)
    return [dep for dep in deps(stages(root)[stage]) if dep not in made]
