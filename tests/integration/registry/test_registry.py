"""The registry under real use: a save that dies after registering, models that must not take
the alias, and moving the alias by hand, with the real `dvc` CLI and a real MLflow store.

One copy of the built project goes through the whole story once (module fixture `story`);
each test checks one chapter of what it recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.repository import clone_built, set_params
from tests.support.tools import decision, run, stages_run

pytestmark = pytest.mark.integration

MODEL = "iris_classifier"
# A user's table: two features, two classes, perfectly separable (accuracy 1.0).
TINY_TABLE = "a,b,label\n" + "".join(
    f"{i},{i % 3},{'big' if i >= 5 else 'small'}\n" for i in range(10)
)


@dataclass
class Story:
    root: Path
    crash: subprocess.CompletedProcess[str] | None = None
    after_crash: dict[str, object] = field(default_factory=dict)
    rerun: subprocess.CompletedProcess[str] | None = None
    after_rerun: dict[str, object] = field(default_factory=dict)
    other_split: subprocess.CompletedProcess[str] | None = None

    def client(self):
        from mlflow import MlflowClient

        uri = f"sqlite:///{self.root / 'mlflow.db'}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def versions(self, name: str = MODEL) -> dict[str, str]:
        """version → run id."""
        found = self.client().search_model_versions(f"name='{name}'")
        return {str(v.version): v.run_id for v in found}

    def aliases(self, name: str = MODEL) -> dict[str, str]:
        aliases = self.client().get_registered_model(name).aliases
        return {alias: str(version) for alias, version in aliases.items()}

    def run_id(self) -> str:
        return json.loads((self.root / "models/mlflow_run.json").read_text())["run_id"]


@contextlib.contextmanager
def alias_writes_fail(store: Path) -> Iterator[None]:
    """Make the store refuse to set any alias, as a save killed just before that would."""
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.execute(
            "CREATE TRIGGER injected_crash BEFORE INSERT ON registered_model_aliases "
            "BEGIN SELECT RAISE(ABORT, 'injected crash before the alias moves'); END"
        )
        db.commit()
    try:
        yield
    finally:
        with contextlib.closing(sqlite3.connect(store)) as db:
            db.execute("DROP TRIGGER injected_crash")
            db.commit()


@pytest.fixture(scope="module")
def story(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = clone_built(built_project, tmp_path_factory.mktemp("registry") / "project")
    story = Story(root)
    pipeline_file = root / "models/pipeline.pkl"
    previous_pipeline = pipeline_file.read_bytes()

    # 1. A new training run; then its save dies after registering, before the alias moves
    # (the store refuses the alias write) and before dvc.lock records the stage.
    # A low bar, so that only the rules under test keep a version from the alias.
    set_params(root, train__n_estimators=50, save__min_score=0.5)
    run(["dvc", "repro", "evaluate"], cwd=root)
    with alias_writes_fail(root / "mlflow.db"):
        story.crash = run([sys.executable, "-m", "stages.save"], cwd=root, check=False)
    story.after_crash = {"versions": story.versions(), "aliases": story.aliases()}
    story.rerun = run(["dvc", "repro"], cwd=root)
    story.after_rerun = {
        "versions": story.versions(),
        "aliases": story.aliases(),
        "run_id": story.run_id(),
        "status": run(["dvc", "status"], cwd=root).stdout,
        "pipeline_changed": pipeline_file.read_bytes() != previous_pipeline,
    }

    # 2. The same Iris columns, scored on another test split.
    set_params(root, preprocess__test_size=0.3)
    story.other_split = run(["dvc", "repro"], cwd=root)

    return story


@dataclass
class TableStory:
    story: Story
    other_columns: subprocess.CompletedProcess[str]
    own_name: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def table_story(story: Story) -> TableStory:
    """3. A user's two-column table under the default model name, then under its own name."""
    root = story.root
    (root / "data/external/tiny.csv").write_text(TINY_TABLE)
    set_params(
        root,
        load__source="csv",
        load__csv_path="data/external/tiny.csv",
        load__target_column="label",
    )
    other_columns = run(["dvc", "repro"], cwd=root)
    set_params(root, mlflow__registered_model_name="tiny_classifier")
    own_name = run(["dvc", "repro"], cwd=root)
    return TableStory(story, other_columns, own_name)


def test_a_save_that_dies_after_registering_has_not_moved_the_alias(story: Story) -> None:
    assert story.crash is not None and story.crash.returncode != 0
    assert "Created version '1'" in story.crash.stderr
    assert "injected crash before the alias moves" in story.crash.stderr
    run_id = story.after_rerun["run_id"]
    assert story.after_crash["versions"] == {"1": run_id}
    # The alias moves last: this save never got there.
    assert story.after_crash["aliases"] == {}


def test_the_rerun_reuses_the_version_of_its_training_run(story: Story) -> None:
    assert story.rerun is not None
    assert stages_run(story.rerun.stdout) == ["save"]
    line = decision(story.rerun)
    assert "registered iris_classifier version 1 (registered earlier from this run); " in line
    assert "now @champion: score" in line and "there is no champion yet" in line
    assert story.after_rerun["versions"] == {"1": story.after_rerun["run_id"]}
    assert story.after_rerun["aliases"] == {"champion": "1"}
    assert story.after_rerun["pipeline_changed"]
    assert "up to date" in str(story.after_rerun["status"])


def test_a_score_on_another_test_split_does_not_take_the_alias(story: Story) -> None:
    assert story.other_split is not None
    line = decision(story.other_split)
    assert "registered iris_classifier version 2; not @champion: score" in line
    assert "computed on other data (dataset or test split) than champion version 1's" in line
    assert "mlpipeline model promote 2" in line
    assert story.aliases()["champion"] == "1"


@pytest.mark.slow
def test_a_model_with_other_columns_does_not_take_the_alias(table_story: TableStory) -> None:
    line = decision(table_story.other_columns)
    assert "registered iris_classifier version 3; not @champion: its input columns (a, b)" in line
    assert "differ from champion version 1's (sepal_length, sepal_width" in line
    assert "mlflow.registered_model_name" in line
    assert table_story.story.aliases()["champion"] == "1"


@pytest.mark.slow
def test_under_its_own_name_it_becomes_that_models_champion(table_story: TableStory) -> None:
    story = table_story.story
    assert stages_run(table_story.own_name.stdout) == ["save"]
    assert "registered tiny_classifier version 1; now @champion" in decision(table_story.own_name)
    assert story.aliases("tiny_classifier") == {"champion": "1"}
    assert story.aliases()["champion"] == "1"


@pytest.mark.slow  # the table story's two dvc repro, which only slow tests share
def test_the_card_names_the_users_table_and_its_md5(table_story: TableStory) -> None:
    """The card's data table starts with the source under data/external/, then DVC's files."""
    root = table_story.story.root
    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    command = [sys.executable, "-m", "mlpipeline", "model", "card", "1", "--model"]
    card = run([*command, "tiny_classifier"], cwd=root, env=env).stdout
    table_md5 = hashlib.md5((root / "data/external/tiny.csv").read_bytes()).hexdigest()
    data = card.split("## Data\n\n")[1].split("\n\n")[0].splitlines()
    assert data[2] == f"| data/external/tiny.csv | {table_md5} |", card
    assert any(line.startswith("| data/raw/dataset.csv | ") for line in data[3:]), card


def test_registry_command_lists_and_moves_the_alias_from_a_subfolder(story: Story) -> None:
    """`mlpipeline model` finds the repository's store from notebooks/ too."""
    folder = story.root / "notebooks"
    env = tool_env({"PYTHONPATH": str(story.root)})

    def registry(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [VENV_BIN / "mlpipeline", "model", *args, "--model", MODEL]
        return run(command, cwd=folder, env=env, check=check)

    listing = registry("list").stdout.splitlines()
    header = ["version", "aliases", "accuracy", "run_id", "registered", "model"]
    assert listing[0].split() == header
    rows = {line.split()[0]: line.split() for line in listing[1:]}
    known = sorted(story.versions(), key=int)
    assert list(rows) == known[::-1] and len(known) >= 2  # newest first
    assert rows["1"][1] == "champion" and rows["2"][1] == "-"
    assert all(re.fullmatch(r"\d\.\d{4}", row[2]) for row in rows.values()), rows  # as save prints

    promoted = registry("promote", "2")
    assert "iris_classifier@champion: version 2 (was 1)" in promoted.stderr
    assert story.aliases()["champion"] == "2"
    registry("promote", "1")  # and back: a rollback
    assert story.aliases()["champion"] == "1"

    unknown = registry("promote", "9", check=False)
    assert unknown.returncode == 1
    newest = ", ".join(known[::-1])
    assert f"iris_classifier has no version 9; its newest versions are: {newest} " in (
        unknown.stderr
    )
    assert "Traceback" not in unknown.stderr
    assert story.aliases()["champion"] == "1"
    assert not (folder / "mlflow.db").exists()
    assert not (folder / "mlartifacts").exists()
    # Should some other tool make a store there, git does not offer to commit it.
    strays = ["notebooks/mlflow.db", "notebooks/mlartifacts/1/x", "notebooks/mlruns/0/x"]
    ignored = run(["git", "check-ignore", *strays], cwd=story.root).stdout.split()
    assert ignored == strays
