"""What users look at on a built project: `dvc plots show`, the run's figures, `make exps`."""

from __future__ import annotations

import csv
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.repository import REPO, clone_built
from tests.support.tools import run

pytestmark = pytest.mark.integration

CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def vega_specs(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The Vega-Lite specs of `dvc plots show`'s HTML page, by chart title."""
    out = tmp_path_factory.mktemp("plots_html")
    run(["dvc", "plots", "show", "-o", str(out)], cwd=built_project)
    html = (out / "index.html").read_text()
    specs = [json.loads(spec) for spec in re.findall(r"var spec = (\{.*\});\n", html)]
    return {spec["title"]["text"]: spec for spec in specs if "title" in spec}


def curve_layers(spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The layer that draws the data, and the others."""
    layers = spec["layer"]
    curve = [layer for layer in layers if "field" in layer["encoding"]["x"]]
    assert len(curve) == 1, layers
    return curve[0], [layer for layer in layers if layer is not curve[0]]


@pytest.mark.parametrize("folder", ["roc", "precision_recall"])
@pytest.mark.parametrize("label", CLASSES)
def test_curves_are_drawn_as_steps_in_point_order(
    vega_specs: dict[str, Any], built_project: Path, folder: str, label: str
) -> None:
    source = f"plots/{folder}/{label}.csv"
    spec = vega_specs[source]
    curve, _ = curve_layers(spec)
    # scikit-learn's points are the corners of a step function: a ROC point's tpr holds up to
    # the next fpr; a precision-recall point's precision holds from its recall down to the
    # next (smaller) recall, as average precision sums it. Both are "step-after" when the
    # line follows the points in the order the CSV has them (not re-sorted by x).
    assert curve["mark"]["type"] == "line"
    assert curve["mark"]["interpolate"] == "step-after"
    assert curve["encoding"]["order"] == {"value": None}
    x, y = curve["encoding"]["x"]["field"], curve["encoding"]["y"]["field"]
    drawn = pd.DataFrame(spec["data"]["values"])[[x, y]].astype(float)
    pd.testing.assert_frame_equal(drawn, pd.read_csv(built_project / source)[[x, y]])
    # A perfect curve runs along 0 and 1: the axes leave a margin so it is not the frame.
    for axis in ("x", "y"):
        low, high = curve["encoding"][axis]["scale"]["domain"]
        assert low < 0.0 and high > 1.0


@pytest.mark.parametrize("label", CLASSES)
def test_roc_charts_show_the_chance_diagonal(vega_specs: dict[str, Any], label: str) -> None:
    _, others = curve_layers(vega_specs[f"plots/roc/{label}.csv"])
    diagonals = [
        layer
        for layer in others
        if layer["mark"]["type"] == "rule"
        and [layer["encoding"][c]["datum"] for c in ("x", "y", "x2", "y2")] == [0, 0, 1, 1]
    ]
    assert len(diagonals) == 1, others


def test_the_run_holds_the_png_files_of_plots_images(built_project: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    run_id = json.loads((built_project / "models/mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{built_project / 'mlflow.db'}")
    logged = Path(client.download_artifacts(run_id, "plots", str(tmp_path)))
    images = built_project / "plots/images"
    assert sorted(path.name for path in logged.iterdir()) == sorted(
        path.name for path in images.iterdir()
    )
    for png in images.iterdir():
        assert (logged / png.name).read_bytes() == png.read_bytes(), png.name


def test_make_exps_shows_headline_metrics_and_the_params_that_differ(
    built_project: Path, tmp_path: Path
) -> None:
    project = clone_built(built_project, tmp_path / "project")
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "baseline outputs"], cwd=project)
    params = (project / "params.yaml").read_text()
    # The workspace row reads params.yaml, so an edit is enough to make a param differ.
    (project / "params.yaml").write_text(params.replace("n_estimators: 100", "n_estimators: 7"))
    exps = ["python", "-m", "mlpipeline", "report", "exps", "--csv"]  # what `make exps` runs
    table = run(exps, cwd=project).stdout
    header = next(csv.reader(table.splitlines()))
    shown = header[header.index("Created") + 1 :]
    assert shown == ["accuracy", "f1_score", "precision", "recall", "train.n_estimators"], table


def test_the_confusion_matrix_has_true_labels_on_rows_and_counts_like_the_png(
    vega_specs: dict[str, Any],
) -> None:
    # plots/images/confusion_matrix.png is scikit-learn's ConfusionMatrixDisplay: true labels
    # down the side, predicted along the bottom, the count written in every cell.
    spec = vega_specs["Confusion matrix"]["spec"]
    assert spec["encoding"]["y"]["field"] == "actual"
    assert spec["encoding"]["x"]["field"] == "predicted"
    marks = [layer["mark"] for layer in spec["layer"]]
    texts = [
        layer
        for layer, mark in zip(spec["layer"], marks, strict=True)
        if (mark if isinstance(mark, str) else mark["type"]) == "text"
    ]
    assert len(texts) == 1
    assert texts[0]["encoding"]["text"] == {"field": "count", "type": "quantitative"}
    # Always shown, not behind a checkbox a static image cannot tick.
    assert "condition" not in texts[0]["encoding"]["text"]


@pytest.mark.parametrize("folder", ["roc", "precision_recall"])
def test_in_a_diff_each_revision_has_its_own_dash(vega_specs: dict[str, Any], folder: str) -> None:
    # Identical curves would otherwise hide the first revision under the second's colour.
    curve, _ = curve_layers(vega_specs[f"plots/{folder}/setosa.csv"])
    dash = curve["encoding"]["strokeDash"]
    assert dash["field"] == "rev"
    assert dash["scale"]["range"][0] == [1, 0]  # the first revision solid, the next dashed
    assert all(len(pattern) == 2 for pattern in dash["scale"]["range"])
    # One legend, the colour's: a second one titled `rev` would label nothing of its own.
    assert "legend" in dash and dash["legend"] is None
    assert curve["encoding"]["color"]["field"] == "rev"


def test_feature_importance_ticks_are_few_enough_to_read(vega_specs: dict[str, Any]) -> None:
    # DVC's bar_horizontal_sorted ticks every 0.05 on Iris: the labels run together.
    spec = vega_specs["Feature importance"]
    assert spec["encoding"]["x"]["axis"]["tickCount"] <= 5
    assert spec["encoding"]["x"].get("scale", {}).get("zero", True)  # bars start at zero


def test_the_exps_args_make_help_suggests_list_branches_not_every_commit(
    built_project: Path, tmp_path: Path
) -> None:
    project = clone_built(built_project, tmp_path / "project")
    for number in range(3):
        run(["git", "commit", "-q", "--allow-empty", "-m", f"commit {number}"], cwd=project)
    help_text = run(["make", "help"], cwd=REPO).stdout
    suggested = re.search(r'EXPS_ARGS="([^"]+)"', help_text)
    assert suggested, help_text
    exps = [sys.executable, "-m", "mlpipeline", "report", "exps", *shlex.split(suggested[1])]
    table = run(exps, cwd=project).stdout  # what `make exps` runs
    rows = [line for line in table.splitlines() if line.startswith("|")][2:]  # past the header
    assert len(rows) == 2, table  # the workspace and the branch's tip
