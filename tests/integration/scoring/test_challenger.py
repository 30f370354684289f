"""A challenger before the move: `mlpipeline model promote VERSION --challenger` sets
@challenger (checked as a promotion is, never moving @champion), and `make score
SCORE_ARGS=--with-challenger` scores a batch with both and says what the move would change,
with the real `dvc` CLI and the project's embedded MLflow store.

One copy of the built project holds a champion (version 1), a weak version (2: one tree of
depth 1, below save.min_score) and a version whose files are gone (3).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import clone_built, set_params
from tests.support.tools import make, run

# Two trainings and three scorings of real files: minutes, so `make test-slow`.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "iris_classifier"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
NO_CHALLENGER = (
    "--with-challenger: no models:/iris_classifier@challenger is set; set one with "
    "`mlpipeline model promote VERSION --challenger`"
)


def env_for(root: Path) -> dict[str, str]:
    return tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})


def mlpipeline(root: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    return run(["python", "-m", "mlpipeline", *args], cwd=root, env=env_for(root), check=check)


def aliases(root: Path) -> dict[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    found = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model(MODEL).aliases
    return {alias: str(version) for alias, version in found.items()}


def champion_moves(root: Path) -> list[dict[str, object]]:
    history = mlpipeline(root, "model", "history", "--json").stdout
    return json.loads(history)["moves"]


def one_error(proc: subprocess.CompletedProcess, name: str) -> str:
    """The command's one error line; no traceback."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"[{name}] ERROR")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return errors[0].removeprefix(f"[{name}] ERROR ")


def batch(root: Path, folder: Path, **shift: float) -> Path:
    """Iris's features as a new batch with an id column, a feature shifted by `shift`."""
    rows = pd.read_csv(root / "data" / "raw" / "dataset.csv").drop(columns=["target"])
    rows.insert(0, "id", [f"r{i:04d}" for i in range(len(rows))])
    for name, by in shift.items():
        rows[name] += by
    path = folder / "batch.csv"
    rows.to_csv(path, index=False)
    return path


@dataclass
class Story:
    root: Path
    unset: subprocess.CompletedProcess  # a scoring with the challenger before there is one
    unknown: subprocess.CompletedProcess  # promote 9 --challenger
    broken: subprocess.CompletedProcess  # promote 3 --challenger: its files are gone
    refused_aliases: dict[str, str]  # after both refusals
    moved: subprocess.CompletedProcess  # promote 2 --challenger
    moves_before: list[dict[str, object]]  # @champion's history before the challenger moved


@pytest.fixture(scope="module")
def story(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Story:
    folder = tmp_path_factory.mktemp("challenger")
    root = clone_built(built_project, folder / "project")
    set_params(root, train__n_estimators=50)
    run(["dvc", "repro"], cwd=root)  # version 1, @champion
    set_params(root, train__n_estimators=1, train__max_depth=1)
    run(["dvc", "repro"], cwd=root)  # version 2: at most two classes, below save.min_score
    empty = folder / "gone"
    empty.mkdir()
    register = (
        "from mlflow import MlflowClient\n"
        f"MlflowClient().create_model_version({MODEL!r}, source={empty.as_uri()!r})\n"
    )
    run(["python", "-c", register], cwd=folder, env=env_for(root))  # version 3
    assert aliases(root) == {"champion": "1"}

    unset = mlpipeline(
        root,
        "model",
        "score",
        batch(root, folder),
        "--with-challenger",
        "--output",
        folder / "unset",
        check=False,
    )
    unknown = mlpipeline(root, "model", "promote", "9", "--challenger", check=False)
    broken = mlpipeline(root, "model", "promote", "3", "--challenger", check=False)
    refused_aliases = aliases(root)
    moves_before = champion_moves(root)
    moved = mlpipeline(root, "model", "promote", "--challenger", "2", "--reason", "a try")
    return Story(root, unset, unknown, broken, refused_aliases, moved, moves_before)


def test_scoring_with_a_challenger_needs_one(story: Story, tmp_path: Path) -> None:
    assert one_error(story.unset, "score") == NO_CHALLENGER
    assert not (story.root / "unset").exists()


def test_a_challenger_must_exist_and_load(story: Story) -> None:
    assert one_error(story.unknown, "registry").startswith(
        "iris_classifier has no version 9; its newest versions are: 3, 2, 1 "
    )
    assert one_error(story.broken, "registry").startswith(
        "iris_classifier version 3 cannot be challenger: its files are gone ("
    )
    assert story.refused_aliases == {"champion": "1"}


def test_the_challenger_moves_and_the_champion_stays(story: Story) -> None:
    assert "iris_classifier@challenger: version 2 (was unset)" in story.moved.stderr
    assert aliases(story.root) == {"champion": "1", "challenger": "2"}
    # @champion's history has no new move: the challenger's is its own.
    assert champion_moves(story.root) == story.moves_before
    listing = mlpipeline(story.root, "model", "list").stdout.splitlines()
    rows = {line.split()[0]: line.split()[1] for line in listing[1:]}
    assert rows == {"3": "-", "2": "challenger", "1": "champion"}


def test_make_score_with_the_challenger_reports_what_the_move_changes(
    story: Story, tmp_path: Path
) -> None:
    root, out = story.root, tmp_path / "out"
    source = batch(root, tmp_path)
    args = f"SCORE_ARGS=--with-challenger --output {out}"
    proc = make(root, "score", f"INPUT={source}", args, env=env_for(root))

    # The champion's results are where a scoring alone puts them; the challenger's beside.
    champion = json.loads((out / "summary.json").read_text())
    challenger = json.loads((out / "challenger" / "summary.json").read_text())
    assert (champion["model_version"], challenger["model_version"]) == ("1", "2")
    assert champion["scoring_run_id"] != challenger["scoring_run_id"]
    for folder in (out, out / "challenger"):
        assert len(pd.read_csv(folder / "predictions.csv")) == 150
    # No feature drifted; the stump's predicted classes did, which tells against the move
    # and does not fail the scoring: only the champion's drift gates.
    assert json.loads((out / "drift.json").read_text())["drifted"] is False
    drift = json.loads((out / "challenger" / "drift.json").read_text())
    assert drift["drifted"] is True and drift["drifted_features"] == []
    assert drift["summary"].split(": ")[-1].startswith("predictions (PSI ")

    # The comparison is what the two prediction files say, row by row.
    both = pd.read_csv(out / "predictions.csv").merge(
        pd.read_csv(out / "challenger" / "predictions.csv"), on="row", suffixes=("", "_new")
    )
    agreed = int((both["prediction"] == both["prediction_new"]).sum())
    comparison = json.loads((out / "comparison.json").read_text())
    assert (comparison["compared_rows"], comparison["agreed_rows"]) == (150, agreed)
    assert 0 < agreed < 150  # one stump cannot tell three classes apart
    pairs = both.groupby(["prediction", "prediction_new"]).size()
    assert {
        (mine, theirs): count
        for mine, row in comparison["confusion"].items()
        for theirs, count in row.items()
        if count
    } == {pair: int(count) for pair, count in pairs.items()}
    counts = comparison["class_counts"]
    for side, summary in (("champion", champion), ("challenger", challenger)):
        shown = {label: c[side] for label, c in counts.items() if c[side]}
        assert shown == summary["class_counts"]
    assert champion["challenger"]["agreement"] == pytest.approx(agreed / 150)

    assert (
        f"champion version 1 vs challenger version 2: agreement {agreed / 150:.2%} "
        f"({agreed} of 150 rows both scored)"
    ) in proc.stdout
    assert "challenger's drift (not gated): drift over 150 rows" in proc.stderr
    assert "drift gate: no drift over 150 rows" in proc.stderr
    assert aliases(root) == {"champion": "1", "challenger": "2"}


def test_only_the_champions_drift_sets_the_exit_status(story: Story, tmp_path: Path) -> None:
    root, out = story.root, tmp_path / "out"
    source = batch(root, tmp_path, sepal_width=1.5)
    proc = mlpipeline(
        root, "model", "score", source, "--with-challenger", "--output", out, check=False
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    for folder in (out, out / "challenger"):
        assert json.loads((folder / "drift.json").read_text())["drifted_features"] == [
            "sepal_width"
        ]
    gate = [line for line in proc.stderr.splitlines() if "drift gate" in line]
    assert len(gate) == 1 and gate[0].startswith("[score] ERROR drift gate: drift over 150 rows")
    assert "[score] INFO challenger's drift (not gated): drift over 150 rows" in proc.stderr
