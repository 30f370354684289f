"""The shipped notebooks run top to bottom against a store the pipeline produced."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from nbclient import NotebookClient

from tests.support.repository import REPO

pytestmark = pytest.mark.integration

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_a_notebook_is_shipped() -> None:
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_against_the_pipeline_store(
    notebook: Path, built_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel inherits this environment: the tracking URI is passed the way the compose
    # stack passes it, here naming the SQLite store `dvc repro` filled in the copy.
    for name in [key for key in os.environ if key.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{built_project / 'mlflow.db'}")
    copy = built_project / "notebooks" / notebook.name
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(copy.parent)}}
    ).execute()

    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    texts = "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in outputs
    )
    assert f"sqlite:///{built_project / 'mlflow.db'}" in texts
    store = f"sqlite:///{built_project / 'mlflow.db'}"
    champion = MlflowClient(tracking_uri=store, registry_uri=store).get_model_version_by_alias(
        "iris_classifier", "champion"
    )
    assert f"iris_classifier@champion is version {champion.version}" in texts
    assert any("image/png" in output.get("data", {}) for output in outputs), "no plot drawn"
    assert any("text/html" in output.get("data", {}) for output in outputs), "no table shown"
    accuracy_line = next(line for line in texts.splitlines() if "champion accuracy" in line)
    assert float(accuracy_line.rsplit(" ", 1)[1]) >= 0.9
    # The run's names as specified: params.n_estimators, metrics.f1_score, the averaging.
    assert "trained with n_estimators=100, max_depth=5," in texts
    scored = next(line for line in texts.splitlines() if line.startswith("scored "))
    assert re.fullmatch(
        r"scored accuracy 0\.\d+, precision 0\.\d+, recall 0\.\d+, "
        r"f1_score 0\.\d+ \(macro average\)",
        scored,
    ), scored
    # No widget progress bar that needs ipywidgets.
    assert "IProgress" not in texts
