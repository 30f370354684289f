"""Batch scoring with the registered champion: `mlpipeline model score` on CSV
and Parquet files of new rows, against the built project's real MLflow store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpipeline.tool_env import tool_env
from tests.support.tools import run

# Each test scores real files with the champion and logs a run: minutes, so `make test-slow`.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]


def env_for(project: Path) -> dict[str, str]:
    return tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"})


def score(project: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(
        ["python", "-m", "mlpipeline", "model", "score", *args],
        cwd=project,
        env=env_for(project),
        check=check,
    )


def new_rows(project: Path) -> pd.DataFrame:
    """Iris as new data: an id column first, the label dropped, three rows broken."""
    rows = pd.read_csv(project / "data" / "raw" / "dataset.csv").drop(columns=["target"])
    rows.insert(0, "id", [f"r{i:04d}" for i in range(len(rows))])
    rows = rows.astype({"sepal_width": object})
    rows.loc[3, "sepal_width"] = "abc"
    rows.loc[5, "petal_length"] = np.nan
    rows.loc[7, "sepal_length"] = 1e300
    return rows


def champion_labels(project: Path, rows: pd.DataFrame, folder: Path) -> list[str]:
    """The champion's own `predict` on `rows`, in a process of its own."""
    rows.to_parquet(folder / "clean.parquet")
    code = (
        "import mlflow.sklearn, pandas as pd, json; "
        "m = mlflow.sklearn.load_model('models:/iris_classifier@champion'); "
        f"print(json.dumps(list(map(str, m.predict(pd.read_parquet({str(folder)!r} + "
        "'/clean.parquet'))))))"
    )
    proc = run(["python", "-c", code], cwd=folder, env=env_for(project))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def champion_version(project: Path, folder: Path) -> dict[str, str]:
    code = (
        "import mlflow, json; v = mlflow.MlflowClient().get_model_version_by_alias("
        "'iris_classifier', 'champion'); print(json.dumps({'version': str(v.version), "
        "'run_id': v.run_id}))"
    )
    proc = run(["python", "-c", code], cwd=folder, env=env_for(project))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scoring_runs(project: Path, folder: Path) -> list[dict[str, object]]:
    code = (
        "import mlflow, json; "
        "runs = mlflow.search_runs(experiment_names=['iris_classification-scoring'], "
        "output_format='list'); "
        "print(json.dumps([{'id': r.info.run_id, 'params': r.data.params, "
        "'metrics': r.data.metrics} for r in runs]))"
    )
    proc = run(["python", "-c", code], cwd=folder, env=env_for(project))
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_every_good_row_and_rejects_the_rest(
    built_project: Path, tmp_path: Path, suffix: str
) -> None:
    rows = new_rows(built_project)
    source = tmp_path / f"batch{suffix}"
    if suffix == ".csv":
        rows.to_csv(source, index=False)
    else:
        rows.astype({"sepal_width": str}).replace({"nan": None}).to_parquet(source)
    out = tmp_path / "out"
    # Chunks of 40 rows: the rejects fall in the first chunk, the rows span four.
    proc = score(built_project, source, "--output", out, "--chunk-rows", "40")

    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    predictions = read(out / f"predictions{suffix}")
    rejects = read(out / f"rejects{suffix}")
    assert list(predictions.columns) == ["row", "id", "prediction"] + [
        f"proba_{label}" for label in CLASSES
    ]
    bad = [4, 6, 8]
    assert list(predictions["row"]) == [n for n in range(1, 151) if n not in bad]
    assert list(predictions["id"]) == [f"r{n - 1:04d}" for n in predictions["row"]]
    probabilities = predictions[[f"proba_{label}" for label in CLASSES]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    good = rows.drop(index=[n - 1 for n in bad]).reset_index(drop=True)
    expected = champion_labels(built_project, good[FEATURES].astype(float), tmp_path)
    assert list(predictions["prediction"].astype(str)) == expected

    assert rejects.to_dict("records") == [
        {"row": 4, "id": "r0003", "reason": "sepal_width is not a number: 'abc'"},
        {"row": 6, "id": "r0005", "reason": "petal_length is missing"},
        {
            "row": 8,
            "id": "r0007",
            "reason": rejects["reason"][2],  # the range: checked below
        },
    ]
    assert rejects["reason"][2].startswith("sepal_length is out of the model's range [")
    assert rejects["reason"][2].endswith("]: 1e+300")

    summary = json.loads((out / "summary.json").read_text())
    # The session's project may have a newer champion than version 1 by now.
    champion = champion_version(built_project, tmp_path)
    assert summary["model_uri"] == "models:/iris_classifier@champion"
    assert summary["model_version"] == champion["version"]
    assert summary["model_run_id"] == champion["run_id"]
    assert summary["metrics"]["rows"] == 150
    assert summary["metrics"]["rejected_rows"] == 3
    assert sum(summary["class_counts"].values()) == 147
    assert f"version {champion['version']}, run {champion['run_id']}" in proc.stderr

    logged = {r["id"]: r for r in scoring_runs(built_project, tmp_path)}
    run_record = logged[summary["scoring_run_id"]]
    assert run_record["params"]["model_version"] == champion["version"]
    assert run_record["params"]["model_run_id"] == summary["model_run_id"]
    assert run_record["metrics"]["rows"] == 150
    assert run_record["metrics"]["rejected_rows"] == 3
    assert run_record["metrics"]["rows_per_second"] > 0
    shares = {k: v for k, v in run_record["metrics"].items() if k.startswith("class_share.")}
    assert sorted(shares) == [f"class_share.{label}" for label in CLASSES]
    assert sum(shares.values()) == pytest.approx(1.0)


def test_a_schema_mismatch_names_the_columns_and_writes_nothing(
    built_project: Path, tmp_path: Path
) -> None:
    source = tmp_path / "batch.csv"
    new_rows(built_project).drop(columns=["petal_width"]).to_csv(source, index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.csv").write_text("the previous results\n")
    (out / "summary.json").write_text("{}\n")
    proc = score(built_project, source, "--output", out, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"{source} lacks the model's feature column(s) petal_width" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "summary.json"]
    assert (out / "predictions.csv").read_text() == "the previous results\n"


def test_an_output_folder_of_other_files_is_refused(built_project: Path, tmp_path: Path) -> None:
    """The results replace their folder whole: `--output data/` must not take data/ with it."""
    source = tmp_path / "batch.csv"
    raw_features(built_project).to_csv(source, index=False)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    proc = score(built_project, source, "--output", out, check=False)
    assert proc.returncode == 1
    assert f"--output {out} holds files that are not scoring results" in proc.stderr
    assert (out / "notes.txt").read_text() == "keep me\n"


def test_fails_when_the_model_refuses_every_row(built_project: Path, tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    rows = new_rows(built_project).head(10).assign(petal_length=np.nan)
    rows.to_csv(source, index=False)
    out = tmp_path / "out"
    proc = score(built_project, source, "--output", out, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "the model refused all 10 row(s); the first: row 1: petal_length is missing" in (
        proc.stderr
    )
    assert not out.exists()


def test_an_unknown_model_is_named(built_project: Path, tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    new_rows(built_project).to_csv(source, index=False)
    proc = score(built_project, source, "--model", "models:/iris_classifier@nobody", check=False)
    assert proc.returncode == 1
    assert "no model version models:/iris_classifier@nobody in the MLflow registry" in (proc.stderr)


def raw_features(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data" / "raw" / "dataset.csv").drop(columns=["target"])


def test_an_unshifted_batch_passes_the_drift_gate(built_project: Path, tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    raw_features(built_project).to_csv(source, index=False)
    out = tmp_path / "out"
    proc = score(built_project, source, "--output", out)
    assert "drift gate: no drift over 150 rows" in proc.stderr
    drift = json.loads((out / "drift.json").read_text())
    assert drift["drifted"] is False and drift["drifted_features"] == []
    assert sorted(drift["features"]) == sorted(FEATURES)
    assert all(item["psi"] < 0.1 for item in drift["features"].values())
    assert (out / "drift.png").read_bytes().startswith(b"\x89PNG")
    assert "no drift over 150 rows" in (out / "drift.html").read_text()

    summary = json.loads((out / "summary.json").read_text())
    logged = {r["id"]: r for r in scoring_runs(built_project, tmp_path)}
    metrics = logged[summary["scoring_run_id"]]["metrics"]
    assert metrics["drift.drifted_features"] == 0
    assert set(metrics) >= {f"drift.psi.{name}" for name in FEATURES} | {"drift.prediction_psi"}


def test_a_shifted_feature_fails_the_gate_naming_it(built_project: Path, tmp_path: Path) -> None:
    source = tmp_path / "batch.parquet"
    rows = raw_features(built_project)
    rows.assign(sepal_width=rows["sepal_width"] + 1.5).to_parquet(source)
    out = tmp_path / "out"
    proc = score(built_project, source, "--output", out, check=False)
    assert proc.returncode == 3, proc.stderr
    gate = [line for line in proc.stderr.splitlines() if "drift gate" in line]
    assert len(gate) == 1 and "sepal_width (PSI " in gate[0], proc.stderr
    assert not any(f"{name} (PSI" in gate[0] for name in FEATURES if name != "sepal_width")
    drift = json.loads((out / "drift.json").read_text())
    assert drift["drifted_features"] == ["sepal_width"]
    assert drift["features"]["sepal_width"]["ks_statistic"] > 0.5
    # The scoring itself succeeded: its results are written.
    assert len(pd.read_parquet(out / "predictions.parquet")) == 150

    # monitor.fail_on_drift: false reports the same drift and exits 0.
    params = yaml.safe_load((built_project / "params.yaml").read_text())
    params["monitor"]["fail_on_drift"] = False
    report_only = tmp_path / "params.yaml"
    report_only.write_text(yaml.safe_dump(params))
    proc = score(built_project, source, "--output", out, "--params", report_only)
    assert "drift (monitor.fail_on_drift is false): drift over 150 rows" in proc.stderr


def test_a_second_scoring_to_the_same_folder_is_refused_naming_the_first(
    built_project: Path, tmp_path: Path
) -> None:
    """Issue 30, item 17: the second used to delete the first's staged folder as leftovers."""
    source = tmp_path / "batch.csv"
    raw_features(built_project).to_csv(source, index=False)
    out = tmp_path / "out"
    first = subprocess.Popen(  # a scoring in progress, as far as the folder's lock goes
        [
            "python",
            "-c",
            "import sys; from pathlib import Path; "
            "from mlpipeline.files.output_lock import output_lock\n"
            f"with output_lock(Path({str(out)!r})): print('held', flush=True); sys.stdin.read()",
        ],
        cwd=built_project,
        env=env_for(built_project),
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert first.stdout.readline().strip() == "held"
        staged = tmp_path / f".{out.name}.1234abcd.tmp"  # the first one's work in progress
        staged.mkdir()
        proc = score(built_project, source, "--output", out, check=False)
    finally:
        first.stdin.close()
        first.wait(timeout=60)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("[score] ERROR")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--output {out} is being written by another command (pid {first.pid} on" in errors[0]
    assert staged.is_dir() and not out.exists()
