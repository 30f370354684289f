"""The data each run used, in MLflow's own terms: dataset inputs with DVC's md5 as digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlpipeline.tool_env import tool_env
from tests.support.tools import run

pytestmark = pytest.mark.integration

READ_INPUTS = """
import json, mlflow
run = mlflow.get_run({run_id!r})
print(json.dumps([
    {{"name": i.dataset.name, "digest": i.dataset.digest, "source": json.loads(i.dataset.source),
      "columns": [c["name"] for c in json.loads(i.dataset.schema)["mlflow_colspec"]],
      "context": [t.value for t in i.tags if t.key == "mlflow.data.context"][0]}}
    for i in run.inputs.dataset_inputs
]))
"""


def inputs_of(project: Path, run_id: str) -> dict[str, dict]:
    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"})
    code = READ_INPUTS.format(run_id=run_id)
    proc = run(["python", "-c", code], cwd=project, env=env)
    return {item["context"]: item for item in json.loads(proc.stdout.strip().splitlines()[-1])}


def lock_md5s(project: Path) -> dict[str, str]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }


def test_the_training_run_logs_raw_training_and_testing_data(built_project: Path) -> None:
    run_id = json.loads((built_project / "models" / "mlflow_run.json").read_text())["run_id"]
    inputs = inputs_of(built_project, run_id)
    md5s = lock_md5s(built_project)
    expected = {
        "raw": "data/raw/dataset.csv",
        "training": "data/processed/train.parquet",
        "testing": "data/processed/test.parquet",
    }
    assert sorted(inputs) == sorted(expected)
    for context, path in expected.items():
        item = inputs[context]
        assert item["digest"] == md5s[path], context
        assert item["source"] == {"uri": path}
        assert item["name"] == Path(path).name
        assert "sepal_length" in item["columns"] and "target" in item["columns"]


def test_a_scoring_run_logs_its_input(built_project: Path, tmp_path: Path) -> None:
    import hashlib

    source = tmp_path / "batch.csv"
    rows = (built_project / "data" / "raw" / "dataset.csv").read_text().splitlines()
    header = rows[0].rsplit(",", 1)[0]
    source.write_text("\n".join([header, *(row.rsplit(",", 1)[0] for row in rows[1:])]) + "\n")
    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{built_project / 'mlflow.db'}"})
    out = tmp_path / "out"
    run(
        ["python", "-m", "mlpipeline", "model", "score", source, "--output", out],
        cwd=built_project,
        env=env,
    )
    summary = json.loads((out / "summary.json").read_text())
    [item] = inputs_of(built_project, summary["scoring_run_id"]).values()
    assert item["context"] == "scoring"
    assert item["digest"] == hashlib.md5(source.read_bytes()).hexdigest()
    assert item["source"] == {"uri": str(source.resolve())}
    assert item["columns"] == header.split(",")
