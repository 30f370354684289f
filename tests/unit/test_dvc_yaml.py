"""dvc.yaml declares what each stage really depends on, so `dvc repro` reruns the right ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.support.repository import REPO

STAGES = ["load", "preprocess", "train", "evaluate", "save"]
DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())


def module_file(name: str) -> Path | None:
    path = REPO.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None  # a name imported from a module, not a module


def project_imports(module: str) -> set[str]:
    """The project files a module runs: itself and each `mlpipeline` module it imports,
    transitively, also inside functions (package `__init__` files hold only docstrings)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        source = module_file(name)
        if name in seen or source is None:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlpipeline"):
                todo += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("mlpipeline")]
    files = {module_file(name) for name in seen}
    return {f.relative_to(REPO).as_posix() for f in files if f and f.name != "__init__.py"}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_depends_on_every_module_it_imports(stage: str) -> None:
    code = {
        dep
        for dep in DVC_YAML["stages"][stage]["deps"]
        if dep.startswith(("stages/", "mlpipeline/"))
    }
    imported = project_imports(f"stages.{stage}")
    assert imported <= code, f"{stage}: add to deps: {sorted(imported - code)}"
    assert code <= imported, f"{stage}: not imported: {sorted(code - imported)}"


def test_package_inits_hold_no_code() -> None:
    # dvc.yaml leaves them out of the deps, so they must not change what a stage does.
    for init in REPO.glob("mlpipeline/**/__init__.py"):
        body = ast.parse(init.read_text()).body
        assert all(isinstance(node, ast.Expr) for node in body), init


@pytest.mark.parametrize("stage", STAGES)
def test_stage_runs_its_module(stage: str) -> None:
    assert DVC_YAML["stages"][stage]["cmd"] == f"python -m stages.{stage}"


def test_stages_holds_the_five_stage_scripts() -> None:
    scripts = sorted(path.stem for path in (REPO / "stages").glob("*.py"))
    assert scripts == sorted(["__init__", *STAGES])


def test_outputs_persist_so_failures_keep_them() -> None:
    for name, stage in DVC_YAML["stages"].items():
        for section in ("outs", "metrics"):
            for out in stage.get(section, []):
                path, options = next(iter(out.items()))
                assert options.get("persist") is True, f"{name}: {path} is not persist"


def test_dvc_lock_records_the_code_in_git() -> None:
    # A stale lock makes a fresh clone's first `make run` rewrite dvc.lock: the newcomer's
    # first commit would carry a lock change they did not make. Relock with `dvc commit`.
    from mlpipeline.files.hashes import file_md5

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    stale = sorted(
        f"{stage}: {dep['path']}"
        for stage, entry in lock["stages"].items()
        for dep in entry.get("deps", [])
        if dep["path"].startswith(("stages/", "mlpipeline/"))
        and file_md5(REPO / dep["path"]) != dep["md5"]
    )
    unlocked = sorted(
        f"{stage}: {dep}"
        for stage, entry in DVC_YAML["stages"].items()
        for dep in entry["deps"]
        if dep not in {locked["path"] for locked in lock["stages"][stage].get("deps", [])}
    )
    assert not stale + unlocked, f"dvc.lock is stale (relock: dvc commit -f): {stale + unlocked}"
