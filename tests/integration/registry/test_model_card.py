"""A model card per registered version: written by the save stage from MLflow's and DVC's
records, printed by `registry card N`, its structure pinned by a golden file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlpipeline.domain.model_card import structure
from mlpipeline.tool_env import tool_env
from tests.support.tools import run

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent / "golden" / "model_card_structure.txt"


def registry(project: Path, *args: str, check: bool = True):
    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"})
    return run(["python", "-m", "mlpipeline", "model", *args], cwd=project, env=env, check=check)


def test_the_card_holds_the_records_in_the_golden_structure(built_project: Path) -> None:
    card = registry(built_project, "card", "1").stdout
    assert structure(card) == GOLDEN.read_text().splitlines(), card

    lock = yaml.safe_load((built_project / "dvc.lock").read_text())
    raw_md5 = next(
        out["md5"]
        for out in lock["stages"]["load"]["outs"]
        if out["path"] == "data/raw/dataset.csv"
    )
    assert f"| data/raw/dataset.csv | {raw_md5} |" in card
    commit = run(["git", "rev-parse", "HEAD"], cwd=built_project).stdout.strip()
    assert f"| git commit | {commit} |" in card
    assert "| champion gate | registered iris_classifier version 1; now @champion: " in card
    assert "| @champion now | this version (read when printed;" in card
    assert "| setosa | 40 | 10 |" in card  # 120 training rows, 30 test rows, stratified
    assert "| sepal_length | double |" in card


def test_a_version_without_a_card_is_named(built_project: Path) -> None:
    proc = registry(built_project, "card", "99", check=False)
    assert proc.returncode == 1
    assert "iris_classifier has no version 99" in proc.stderr
