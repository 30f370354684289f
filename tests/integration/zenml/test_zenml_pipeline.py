"""The ZenML pipeline on ZenML's default local stack, in one shared copy of the repository.

The copy gets `dvc repro` first, then `python -m zenml_pipeline` runs beside it, so the
parity and `dvc status` checks compare the two orchestrators in one workspace and one
MLflow store. ZenML's global config (its SQLite store and artifact store) lives in a temp
folder for the module; the tests read it back through the ZenML Client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from mlpipeline.tool_env import tool_env
from tests.support.repository import copy_repository
from tests.support.tools import run
from tests.support.zenml import RUN_LINE, STEPS, run_id, statuses, zenml_client_for

if TYPE_CHECKING:
    from zenml.client import Client
    from zenml.models import PipelineRunResponse

pytestmark = pytest.mark.integration


@dataclass
class Workspace:
    root: Path
    env: dict[str, str]
    dvc_status: str
    git_status: str
    first_run_id: str
    first_log: str

    def zenml(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, "-m", "zenml_pipeline", *args], self.root, self.env, check)

    def mlpipeline(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, "-m", "mlpipeline", *args], self.root, self.env, check)

    def state(self) -> tuple[str, str]:
        dvc = run(["dvc", "status"], self.root, self.env).stdout
        git = run(["git", "status", "--porcelain", "--untracked-files=all"], self.root, self.env)
        return dvc, git.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A repository copy after `dvc repro` and then one ZenML run, with its own ZenML config."""
    base = tmp_path_factory.mktemp("zenml")
    root = copy_repository(base / "project")
    env = tool_env(
        {
            "ZENML_CONFIG_PATH": str(base / "zenml_config"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_LOGGING_COLORS_DISABLED": "true",
            "ZENML_ENABLE_RICH_TRACEBACK": "false",
        }
    )
    run(["dvc", "repro"], root, env)
    dvc_status = run(["dvc", "status"], root, env).stdout
    git_status = run(["git", "status", "--porcelain", "--untracked-files=all"], root, env).stdout
    first = run([sys.executable, "-m", "zenml_pipeline"], root, env)
    return Workspace(root, env, dvc_status, git_status, run_id(first), first.stderr + first.stdout)


@pytest.fixture(scope="module")
def zenml_client(workspace: Workspace) -> Iterator[Client]:
    """A ZenML Client in this process, on the workspace's ZenML config."""
    with zenml_client_for(workspace.env, workspace.root) as client:
        yield client


def output(run: PipelineRunResponse, step: str, name: str) -> Any:
    return run.steps[step].outputs[name][0].load()


def mlflow_client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        registry_uri=f"sqlite:///{root / 'mlflow.db'}",
    )


def test_run_completes_with_browsable_outputs(workspace: Workspace, zenml_client: Client) -> None:
    run = zenml_client.get_pipeline_run(workspace.first_run_id)
    assert run.status.value == "completed"
    assert run.pipeline.name == "training_pipeline"
    assert statuses(run) == dict.fromkeys(STEPS, "completed")
    dvc_stages = list(yaml.safe_load((workspace.root / "dvc.yaml").read_text())["stages"])
    assert list(run.steps) == dvc_stages

    raw = output(run, "load", "raw_dataset")
    train_set = output(run, "preprocess", "train_set")
    test_set = output(run, "preprocess", "test_set")
    assert (len(raw), len(train_set), len(test_set)) == (150, 120, 30)
    classifier = output(run, "train", "classifier")
    assert len(classifier.estimators_) == 100
    metrics = output(run, "evaluate", "metrics")
    accuracy = (classifier.predict(test_set.drop(columns=["target"])) == test_set["target"]).mean()
    assert metrics["accuracy"] == pytest.approx(accuracy) and accuracy >= 0.9
    pipeline = output(run, "train", "pipeline")
    assert list(pipeline.predict(raw.drop(columns=["target"]).head(3))) == ["setosa"] * 3
    assert output(run, "save", "model_version").isdigit()


def test_metrics_and_mlflow_match_dvc_repro(workspace: Workspace, zenml_client: Client) -> None:
    run = zenml_client.get_pipeline_run(workspace.first_run_id)
    dvc_metrics = json.loads((workspace.root / "metrics" / "metrics.json").read_text())
    assert output(run, "evaluate", "metrics") == dvc_metrics

    client = mlflow_client(workspace.root)
    zenml_run = client.get_run(output(run, "train", "mlflow_run_id"))
    dvc_run_id = json.loads((workspace.root / "models" / "mlflow_run.json").read_text())["run_id"]
    dvc_run = client.get_run(dvc_run_id)
    assert zenml_run.info.experiment_id == dvc_run.info.experiment_id
    assert zenml_run.data.params == dvc_run.data.params
    assert zenml_run.data.metrics == dvc_run.data.metrics
    assert zenml_run.data.metrics["accuracy"] == dvc_metrics["accuracy"]
    tags = zenml_run.data.tags
    assert tags["orchestrator"] == "zenml"
    assert tags["zenml_pipeline"] == "training_pipeline"
    assert tags["zenml_pipeline_run_id"] == workspace.first_run_id
    assert tags["zenml_pipeline_run"] == run.name
    # The same training bytes as DVC's data/processed/train.parquet, and the same commit.
    assert tags["train_data_md5"] == dvc_run.data.tags["train_data_md5"]
    assert tags["git_commit"] == dvc_run.data.tags["git_commit"]
    artifacts = {item.path for item in client.list_artifacts(zenml_run.info.run_id, "plots")}
    assert artifacts == {item.path for item in client.list_artifacts(dvc_run_id, "plots")}

    # The same data as MLflow dataset inputs: DVC's md5s as digests, the same contexts.
    def inputs(run: object) -> dict[str, tuple[str, str]]:
        return {
            next(t.value for t in item.tags if t.key == "mlflow.data.context"): (
                item.dataset.name,
                item.dataset.digest,
            )
            for item in run.inputs.dataset_inputs  # type: ignore[attr-defined]
        }

    assert inputs(zenml_run) == inputs(dvc_run)
    assert sorted(inputs(zenml_run)) == ["raw", "testing", "training"]

    version = output(run, "save", "model_version")
    registered = client.get_model_version("iris_classifier", version)
    assert registered.run_id == zenml_run.info.run_id
    # A ZenML run is exploratory: `mlpipeline model reproduce` cannot rebuild it, so its
    # version never takes the alias (here it ties the DVC-built champion, which keeps it).
    assert str(client.get_model_version_by_alias("iris_classifier", "champion").version) != version
    # The save step says so, as the DVC save stage does.
    assert f"registered iris_classifier version {version}; not @champion: score" in (
        workspace.first_log
    )
    assert "trained by the ZenML pipeline, an exploratory run" in workspace.first_log
    # Its card lists the data it used (ZenML records no DVC outputs: its dataset inputs,
    # whose digests are DVC's md5s), as the DVC-built version's does.
    card = workspace.mlpipeline("model", "card", version).stdout
    raw_md5 = dvc_run.data.tags["md5.data/raw/dataset.csv"]
    assert f"| data/raw/dataset.csv | {raw_md5} |" in card, card
    assert f"| data/processed/train.parquet | {tags['train_data_md5']} |" in card, card
    # Nor can a hand-made promote give it the alias: one line, exit 1, the alias unmoved.
    promote = workspace.mlpipeline("model", "promote", version, check=False)
    assert promote.returncode == 1, promote.stderr
    refusal = f"iris_classifier version {version} cannot be champion: it was trained by the ZenML"
    assert refusal in promote.stderr
    assert str(client.get_model_version_by_alias("iris_classifier", "champion").version) != version


def test_rerun_is_cached_and_train_param_reruns_downstream(
    workspace: Workspace, zenml_client: Client
) -> None:
    first = zenml_client.get_pipeline_run(workspace.first_run_id)
    cached = zenml_client.get_pipeline_run(run_id(workspace.zenml()))
    assert statuses(cached) == dict.fromkeys(STEPS, "cached")
    # A cached train hands on the run id of the run that trained the cached classifier.
    assert output(cached, "train", "mlflow_run_id") == output(first, "train", "mlflow_run_id")

    changed = zenml_client.get_pipeline_run(
        run_id(workspace.zenml("--set", "train.n_estimators=30"))
    )
    assert statuses(changed) == {
        "load": "cached",
        "preprocess": "cached",
        "train": "completed",
        "evaluate": "completed",
        "save": "completed",
    }
    new_run_id = output(changed, "train", "mlflow_run_id")
    assert new_run_id != output(first, "train", "mlflow_run_id")
    mlflow_run = mlflow_client(workspace.root).get_run(new_run_id)
    assert mlflow_run.data.params["n_estimators"] == "30"
    assert mlflow_run.data.metrics["accuracy"] == output(changed, "evaluate", "metrics")["accuracy"]


def test_after_no_cache_a_change_reruns_what_dvc_repro_would(
    workspace: Workspace, zenml_client: Client
) -> None:
    """A `--no-cache` run (docs/zenml.md's example) leaves later runs' cache hits as before."""
    first = zenml_client.get_pipeline_run(workspace.first_run_id)
    uncached = zenml_client.get_pipeline_run(
        run_id(workspace.zenml("--set", "train.max_depth=3", "--no-cache"))
    )
    assert statuses(uncached) == dict.fromkeys(STEPS, "completed")

    cached = zenml_client.get_pipeline_run(run_id(workspace.zenml()))
    assert statuses(cached) == dict.fromkeys(STEPS, "cached")
    trained_by = output(first, "train", "mlflow_run_id")
    assert output(cached, "train", "mlflow_run_id") == trained_by

    save_only = zenml_client.get_pipeline_run(
        run_id(workspace.zenml("--set", "save.min_score=0.7"))
    )
    assert statuses(save_only) == {**dict.fromkeys(STEPS, "cached"), "save": "completed"}
    assert output(save_only, "train", "mlflow_run_id") == trained_by

    # As under DVC: top_features changes only the plot, so save's inputs stay the same.
    top = zenml_client.get_pipeline_run(run_id(workspace.zenml("--set", "evaluate.top_features=2")))
    assert statuses(top) == {**dict.fromkeys(STEPS, "cached"), "evaluate": "completed"}
    tags = mlflow_client(workspace.root).get_run(trained_by).data.tags
    assert tags["evaluate.top_features"] == "2"  # logged into the cached train's run


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.n_estimators=0", "train.n_estimators: Input should be greater than or equal to 1"),
        ("train.n_trees=10", "train.n_trees: unknown key; allowed here: n_estimators"),
        ("n_estimators=10", "override 'n_estimators=10': expected section.key=value"),
        ("model.depth=3", "override 'model.depth=3': unknown section 'model'"),
    ],
)
def test_bad_set_fails_with_the_dvc_paths_message(
    workspace: Workspace, override: str, message: str
) -> None:
    proc = workspace.zenml("--set", override, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not RUN_LINE.search(proc.stderr + proc.stdout)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "a,b,label\n1,2,x\n3,4,x\n5,6,x\n7,8,x\n",
            "label column 'label' needs at least two classes, found 1",
        ),
        (
            "a,b,a,label\n1,2,3,x\n3,4,5,x\n5,6,7,y\n7,8,9,y\n",
            "is not a readable CSV: column 'a' appears more than once in the header",
        ),
    ],
    ids=["one-class", "repeated-header"],
)
def test_bad_data_fails_in_its_step_with_the_stage_message(
    workspace: Workspace, tmp_path: Path, table: str, message: str
) -> None:
    # Outside the copy, so neither git nor DVC sees it (data/external is a DVC dependency).
    csv = tmp_path / "table.csv"
    csv.write_text(table)
    proc = workspace.zenml(
        "--set",
        "load.source=csv",
        "--set",
        f"load.csv_path={csv}",
        "--set",
        "load.target_column=label",
        check=False,
    )
    assert proc.returncode == 1
    assert f"[zenml_pipeline] ERROR load.csv_path: {csv} {message}" in proc.stderr or (
        f"[zenml_pipeline] ERROR {message}" in proc.stderr
    ), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_broken_store_is_one_line_before_zenml_starts(
    workspace: Workspace, tmp_path: Path
) -> None:
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"not a database, " * 200)
    uri = f"sqlite:///{broken}"
    proc = run(
        [sys.executable, "-m", "zenml_pipeline"],
        workspace.root,
        {**workspace.env, "MLFLOW_TRACKING_URI": uri},
        check=False,
    )
    assert proc.returncode == 1
    assert f"[zenml_pipeline] ERROR MLflow store {uri}: file is not a database" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Step load has started" not in proc.stderr + proc.stdout  # ZenML never started


def test_dvc_workspace_untouched(workspace: Workspace) -> None:
    """Runs last in this module: every ZenML run above has happened by now."""
    dvc_status, git_status = workspace.state()
    assert dvc_status == workspace.dvc_status
    assert "up to date" in dvc_status
    assert git_status == workspace.git_status
    assert not (workspace.root / ".zen").exists()


def library_modules(root: Path) -> list[str]:
    """The code a step can run: the stage scripts and every mlpipeline module."""
    return sorted(
        path.relative_to(root).as_posix()
        for folder in ("stages", "mlpipeline")
        for path in (root / folder).rglob("*.py")
        if path.name != "__init__.py"
    )


def dvc_stages_to_rerun(root: Path) -> set[str]:
    """The stages `dvc status` says a `dvc repro` would run now."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {name.split(":")[-1] for name in repo.status()}


@pytest.mark.slow
def test_an_edit_reruns_the_same_steps_under_both_orchestrators(
    workspace: Workspace, zenml_client: Client
) -> None:
    """Each step's cache key holds what dvc.yaml lists for the stage of the same name."""
    from zenml_pipeline import steps

    cache_keys = {
        step: set(getattr(steps, step).configuration.cache_policy.file_dependencies)
        for step in STEPS
    }
    assert dvc_stages_to_rerun(workspace.root) == set()
    for module in library_modules(workspace.root):
        path = workspace.root / module
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        try:
            dvc_reruns = dvc_stages_to_rerun(workspace.root)
        finally:
            path.write_bytes(original)
        zenml_reruns = {step for step in STEPS if module in cache_keys[step]}
        assert zenml_reruns == dvc_reruns, module

    # ZenML honours the key: an edit of the evaluation code reruns evaluate, and save stays
    # cached because the metrics it would get are the same (as DVC skips save).
    path = workspace.root / "mlpipeline" / "domain" / "evaluation.py"
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        edited = zenml_client.get_pipeline_run(run_id(workspace.zenml()))
    finally:
        path.write_bytes(original)
    assert statuses(edited) == {**dict.fromkeys(STEPS, "cached"), "evaluate": "completed"}
