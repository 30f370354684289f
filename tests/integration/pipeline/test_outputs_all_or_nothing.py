"""The real stages write all their outputs or none: a killed evaluate, a blocked last output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlpipeline.files.outputs import (
    read_json,
)
from tests.support.files import mode, tree_snapshot
from tests.support.repository import EVALUATE_OUTPUTS

# One output written all-or-nothing, as a stage with a single output would write it.

# --- the real evaluate stage


def evaluate_outputs(root: Path) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for name in EVALUATE_OUTPUTS:
        path = root / name
        if not path.exists():
            continue
        found[name] = None if path.is_dir() else path.read_bytes()
        if path.is_dir():
            found.update({f"{name}/{key}": value for key, value in tree_snapshot(path).items()})
    return found


def hidden_entries(root: Path) -> list[str]:
    return sorted(
        f"{folder}/{entry.name}"
        for folder in ("metrics", "plots")
        for entry in (root / folder).iterdir()
        if entry.name.startswith(".") and entry.name != ".gitignore"
    )


@pytest.mark.integration
def test_evaluate_replaces_all_its_outputs_or_none(built_project: Path, tmp_path: Path) -> None:
    from tests.support.repository import clone_built
    from tests.support.tools import run

    root = clone_built(built_project, tmp_path / "project")
    run(["python", "-m", "stages.train"], cwd=root)  # a run in this copy's own MLflow store
    evaluate = ["bash", "-c", "umask 022 && exec python -m stages.evaluate"]
    # Every output holds "old" bytes; a folder stands where feature_importance.csv must go,
    # so the move of that output fails after metrics.json and predictions.csv have moved.
    for name, content in evaluate_outputs(root).items():
        if content is not None:
            (root / name).write_bytes(b"old " + name.encode())
    (root / "metrics/metrics.json").chmod(0o640)
    blocked = root / "plots/feature_importance.csv"
    blocked.unlink()
    blocked.mkdir()
    (blocked / "in the way").write_text("")
    # What a killed evaluate leaves behind.
    (root / "plots/.images.k2j3h4g5.tmp").mkdir()
    (root / "plots/.predictions.csv.0a1b2c3d.tmp").write_text("half")
    (root / "metrics/.metrics.json.9f8e7d6c.tmp").write_text("half")
    before = evaluate_outputs(root)

    failed = run(evaluate, cwd=root, check=False)
    assert failed.returncode == 1, failed.stderr
    assert evaluate_outputs(root) == before
    assert hidden_entries(root) == []
    assert "plots/feature_importance.csv" in failed.stderr
    assert "previous outputs are left as they were" in failed.stderr
    assert "Traceback" not in failed.stderr

    for entry in blocked.iterdir():
        entry.unlink()
    blocked.rmdir()
    blocked.write_bytes(b"old plots/feature_importance.csv")
    shutil.rmtree(root / "plots/images")
    before = evaluate_outputs(root)
    run(evaluate, cwd=root)
    after = evaluate_outputs(root)
    assert all(after.get(name) != content for name, content in before.items() if content)
    assert read_json(root / "metrics/metrics.json")["accuracy"] > 0.5
    assert mode(root / "metrics/metrics.json") == 0o640  # the mode of the file it replaced
    assert mode(root / "plots/predictions.csv") == 0o644
    assert mode(root / "plots/images") == 0o755  # a new folder, as mkdir makes it
    assert {mode(png) for png in (root / "plots/images").iterdir()} == {0o644}
    assert hidden_entries(root) == []


SCALER = "models/scaler.pkl"


@pytest.fixture(scope="module")
def built_clone(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.repository import clone_built

    return clone_built(built_project, tmp_path_factory.mktemp("clone") / "project")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("stage", "outputs"),
    [
        ("preprocess", ["data/processed/train.parquet", "data/processed/test.parquet", SCALER]),
        ("train", ["models/classifier.pkl", "models/mlflow_run.json"]),
    ],
)
def test_a_stage_that_cannot_write_its_last_output_changes_none(
    built_clone: Path, stage: str, outputs: list[str]
) -> None:
    from tests.support.tools import run

    for name in outputs:
        (built_clone / name).write_bytes(b"old " + name.encode())
    blocked = built_clone / outputs[-1]
    blocked.unlink()
    blocked.mkdir()
    (blocked / "in the way").write_text("")
    folders = sorted({str(Path(name).parent) for name in outputs})
    before = {folder: tree_snapshot(built_clone / folder) for folder in folders}

    failed = run(["python", "-m", f"stages.{stage}"], cwd=built_clone, check=False)
    assert failed.returncode == 1, failed.stderr
    assert {folder: tree_snapshot(built_clone / folder) for folder in folders} == before
    assert outputs[-1] in failed.stderr

    (blocked / "in the way").unlink()
    blocked.rmdir()
    run(["python", "-m", f"stages.{stage}"], cwd=built_clone)
    assert all((built_clone / name).read_bytes() != b"old " + name.encode() for name in outputs)
