"""The DVC pipeline end to end: the real `dvc` CLI in a git copy, checked through MLflow."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from mlpipeline.tool_env import tool_env
from tests.support.repository import TRAINING_OUTPUTS, clone_built, set_params
from tests.support.tools import run, run_queue, stages_run
from tests.support.tracking import assert_tracked, store_client

pytestmark = pytest.mark.integration

# Outputs whose bytes depend only on params (the run-id file names a new MLflow run each time).
DETERMINISTIC_OUTPUTS = [
    *TRAINING_OUTPUTS,
    "metrics/metrics.json",
    "plots/predictions.csv",
    "plots/feature_importance.csv",
    "plots/roc/setosa.csv",
    "plots/precision_recall/virginica.csv",
    "plots/images/confusion_matrix.png",
]
ALL_OUTPUTS = [*DETERMINISTIC_OUTPUTS, "models/mlflow_run.json"]


def snapshot(root: Path, names: list[str] = ALL_OUTPUTS) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in names}


def test_full_repro_tracks_everything(built_project: Path) -> None:
    client = store_client(built_project)
    assert_tracked(client, built_project)
    versions = client.search_model_versions("name='iris_classifier'")
    assert [str(v.version) for v in versions] == ["1"]
    assert (built_project / "plots/images/roc.png").stat().st_size > 1000


def test_second_repro_runs_nothing(built_project: Path) -> None:
    out = run(["dvc", "repro"], cwd=built_project).stdout
    assert stages_run(out) == []
    assert "Data and pipelines are up to date." in out
    status = run(["dvc", "status"], cwd=built_project).stdout
    assert "up to date" in status


def test_forced_repro_is_byte_identical(built_project: Path) -> None:
    before = snapshot(built_project, DETERMINISTIC_OUTPUTS)
    out = run(["dvc", "repro", "--force"], cwd=built_project).stdout
    assert stages_run(out) == ["load", "preprocess", "train", "evaluate", "save"]
    assert snapshot(built_project, DETERMINISTIC_OUTPUTS) == before


def test_bad_param_fails_clearly_and_keeps_outputs(built_project: Path) -> None:
    before = snapshot(built_project)
    set_params(built_project, train__n_estimators=-3)
    try:
        proc = run(["dvc", "repro"], cwd=built_project, check=False)
        assert proc.returncode != 0
        assert "train.n_estimators" in proc.stderr + proc.stdout
        assert "greater than or equal to 1" in proc.stderr + proc.stdout
        assert snapshot(built_project) == before

        set_params(built_project, train__n_estimators=100)
        params = yaml.safe_load((built_project / "params.yaml").read_text())
        params["train"]["n_estimator"] = 10  # a typo'd key
        (built_project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        proc = run(["dvc", "repro"], cwd=built_project, check=False)
        assert proc.returncode != 0
        message = proc.stderr + proc.stdout
        assert "train.n_estimator: unknown key" in message
        assert "n_estimators" in message  # the allowed keys are listed
        assert snapshot(built_project) == before
    finally:
        run(["git", "checkout", "--", "params.yaml"], cwd=built_project)
    assert stages_run(run(["dvc", "repro"], cwd=built_project).stdout) == []


def test_bad_data_fails_clearly_and_keeps_outputs(built_project: Path) -> None:
    before = snapshot(built_project)
    table = built_project / "data/external/flowers.csv"
    table.write_text("a,b,label\n1.0,2.0,x\n3.0,,y\n5.0,6.0,x\n7.0,8.0,y\n")
    set_params(
        built_project,
        load__source="csv",
        load__csv_path="data/external/flowers.csv",
        load__target_column="label",
    )
    try:
        proc = run(["dvc", "repro"], cwd=built_project, check=False)
        assert proc.returncode != 0
        message = proc.stderr + proc.stdout
        assert "column 'b' has 1 missing value(s), first at data row 2" in message
        assert snapshot(built_project) == before

        table.write_text("a,b,label\n1.0,2.0,x\n3.0,oops,y\n5.0,6.0,x\n7.0,8.0,y\n")
        proc = run(["dvc", "repro"], cwd=built_project, check=False)
        assert proc.returncode != 0
        assert "feature column 'b' is not numeric: data row 2 holds 'oops'" in (
            proc.stderr + proc.stdout
        )
        assert snapshot(built_project) == before

        # A valid table of the user's: load and preprocess take it, label column renamed.
        rows = [f"{i}.0,{i % 3}.5,{'xy'[i % 2]}" for i in range(20)]
        table.write_text("a,b,label\n" + "\n".join(rows) + "\n")
        out = run(["dvc", "repro", "preprocess"], cwd=built_project).stdout
        assert stages_run(out) == ["load", "preprocess"]
        raw = (built_project / "data/raw/dataset.csv").read_text().splitlines()
        assert raw[0] == "a,b,target"
        assert len(raw) == 21
    finally:
        table.unlink()
        run(["git", "checkout", "--", "params.yaml"], cwd=built_project)
    # Back on Iris, the outputs are the ones we started from and nothing else is stale.
    run(["dvc", "repro", "preprocess"], cwd=built_project)
    assert snapshot(built_project) == before
    assert "up to date" in run(["dvc", "status"], cwd=built_project).stdout


def test_unreachable_tracking_server_fails_fast(built_project: Path) -> None:
    before = snapshot(built_project)
    uri = "http://127.0.0.1:9"  # discard port: nothing listens
    start = time.monotonic()
    proc = run(
        ["dvc", "repro", "--force", "--single-item", "train"],
        cwd=built_project,
        env=tool_env({"MLFLOW_TRACKING_URI": uri}),
        check=False,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert f"MLflow tracking server {uri} is unreachable" in proc.stderr + proc.stdout
    assert elapsed < 60, f"took {elapsed:.0f}s to give up"
    assert snapshot(built_project) == before


def test_experiments_rerun_only_what_changed(baseline: Path) -> None:
    project = baseline

    out = run(["dvc", "exp", "run", "--set-param", "train.n_estimators=7"], cwd=project).stdout
    assert stages_run(out) == ["train", "evaluate", "save"]
    diff = run(["dvc", "metrics", "diff", "--json"], cwd=project).stdout
    changes = json.loads(diff)["metrics/metrics.json"]
    assert changes, "dvc metrics diff shows no change"
    params_diff = json.loads(run(["dvc", "params", "diff", "--json"], cwd=project).stdout)
    assert params_diff["params.yaml"]["train.n_estimators"]["new"] == 7

    # An evaluate param that changes metrics.json: evaluate reruns, and save (which reads it).
    out = run(["dvc", "exp", "run", "-S", "evaluate.average=weighted"], cwd=project).stdout
    assert stages_run(out) == ["evaluate", "save"]
    assert json.loads((project / "metrics/metrics.json").read_text())["average"] == "weighted"
    # One that changes only a plot: evaluate reruns, save's inputs are unchanged.
    out = run(["dvc", "exp", "run", "-S", "evaluate.top_features=2"], cwd=project).stdout
    assert stages_run(out) == ["evaluate"]
    assert len((project / "plots/feature_importance.csv").read_text().splitlines()) == 3

    client = store_client(project)
    experiment = client.get_experiment_by_name("iris_classification")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # n_estimators=7; the evaluate-only changes reuse its run
    latest = json.loads((project / "models/mlflow_run.json").read_text())["run_id"]
    tags = client.get_run(latest).data.tags
    assert tags["dvc_experiment"]
    assert tags["evaluate.top_features"] == "2"
    exp_names = run(["dvc", "exp", "ls", "--name-only"], cwd=project).stdout.split()
    assert tags["dvc_experiment"] in exp_names

    # A bar the model cannot reach: save registers a new version but `champion` stays put.
    champion_before = client.get_model_version_by_alias("iris_classifier", "champion").version
    out = run(
        ["dvc", "exp", "run", "-S", "save.min_score=0.999", "-S", "train.max_depth=1"],
        cwd=project,
    )
    assert stages_run(out.stdout) == ["train", "evaluate", "save"]
    assert "not @champion: score" in out.stderr + out.stdout
    versions = client.search_model_versions("name='iris_classifier'")
    assert max(int(v.version) for v in versions) > int(champion_before)
    champion = client.get_model_version_by_alias("iris_classifier", "champion")
    assert champion.version == champion_before


def test_temp_and_queued_experiments_share_the_store(baseline: Path) -> None:
    project = baseline

    temp = run(["dvc", "exp", "run", "--temp", "-S", "train.n_estimators=11"], cwd=project)
    run(["dvc", "exp", "run", "--queue", "-S", "train.n_estimators=13"], cwd=project)
    run_queue(project)

    assert not (project / ".dvc/tmp/exps/mlflow.db").exists()
    client = store_client(project)
    experiment = client.get_experiment_by_name("iris_classification")
    by_trees = {
        r.data.params["n_estimators"]: r for r in client.search_runs([experiment.experiment_id])
    }
    assert set(by_trees) == {"11", "13"}
    for trees in ("11", "13"):
        tracked = by_trees[trees]
        assert tracked.data.tags.get("dvc_experiment"), f"no experiment name on {trees}"
        assert tracked.data.metrics["accuracy"] >= 0.8
        artifacts = {item.path for item in client.list_artifacts(tracked.info.run_id)}
        assert "plots" in artifacts
    # Experiments outside the workspace register their versions but leave the alias alone
    # (save.experiments_compete is false), and say how to promote one.
    versions = client.search_model_versions("name='iris_classifier'")
    assert {v.run_id for v in versions} == {r.info.run_id for r in by_trees.values()}
    assert client.get_registered_model("iris_classifier").aliases == {}
    assert "not @champion: experiment" in temp.stderr
    assert "mlpipeline model promote" in temp.stderr


def test_runs_land_on_a_real_mlflow_server(
    built_project: Path, tmp_path: Path, mlflow_server: str
) -> None:
    from mlflow import MlflowClient

    root = clone_built(built_project, tmp_path / "project")
    env = tool_env({"MLFLOW_TRACKING_URI": mlflow_server})
    # The workspace is up to date; --force makes it log to the new server.
    out = run(["dvc", "repro", "--force"], cwd=root, env=env).stdout
    assert stages_run(out) == ["load", "preprocess", "train", "evaluate", "save"]
    assert not (root / "mlflow.db").exists()
    assert_tracked(MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server), root)
