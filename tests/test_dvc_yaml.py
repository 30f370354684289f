"""dvc.yaml declares what each stage really depends on, so `dvc repro` reruns the right ones."""

from __future__ import annotations

import ast

import pytest
import yaml

from tests.conftest import REPO

STAGES = ["load", "preprocess", "train", "evaluate", "save"]
DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())


def project_imports(module: str) -> set[str]:
    """`stages.*` modules a stage module imports, transitively, also inside functions."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((REPO / "stages" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module == "stages":
                todo += [alias.name for alias in node.names]
            elif node.module.startswith("stages."):
                todo.append(node.module.split(".")[1])
    return seen


@pytest.mark.parametrize("stage", STAGES)
def test_stage_depends_on_every_module_it_imports(stage: str) -> None:
    declared = {dep for dep in DVC_YAML["stages"][stage]["deps"] if dep.startswith("stages/")}
    imported = {f"stages/{name}.py" for name in project_imports(stage)}
    assert imported <= declared, f"{stage}: add to deps: {sorted(imported - declared)}"
    assert declared <= imported, f"{stage}: not imported: {sorted(declared - imported)}"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_runs_its_module(stage: str) -> None:
    assert DVC_YAML["stages"][stage]["cmd"] == f"python -m stages.{stage}"


def test_outputs_persist_so_failures_keep_them() -> None:
    for name, stage in DVC_YAML["stages"].items():
        for section in ("outs", "metrics"):
            for out in stage.get(section, []):
                path, options = next(iter(out.items()))
                assert options.get("persist") is True, f"{name}: {path} is not persist"
