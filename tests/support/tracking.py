"""MLflow as the integration tests check it: clients on a store, the runs a process left
RUNNING, models that load and predict, the run a `dvc repro` tracked."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.iris import FEATURES
from tests.support.tools import run

EXPERIMENT = "iris_classification"
MODEL = "iris_classifier"
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5]]
RUN_OUTPUTS = ["models/classifier.pkl", "models/pipeline.pkl", "models/mlflow_run.json"]


def client_for(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def load_and_predict(uri: str, model_uri: str) -> list[str]:
    """Load a model (`runs:/...`, `models:/...`) from the store at `uri`; predict Iris rows."""
    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    finally:  # later tests must not inherit this store
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    return [str(label) for label in model.predict(pd.DataFrame(IRIS_ROWS, columns=FEATURES))]


def start_train(project: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(env["PATH"].split(os.pathsep)[0]) / "python"), "-m", "stages.train"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def running_runs(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=0.2) as connection:
            rows = connection.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")
            return [row[0] for row in rows]
    except sqlite3.OperationalError:  # schema not created yet, or a writer holds the lock
        return []


def snapshot(root: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in names}


# Rows of Iris and their species, which a tracked champion predicts.
PREDICTED_ROWS = {
    "setosa": [5.1, 3.5, 1.4, 0.2],
    "versicolor": [6.4, 3.2, 4.5, 1.5],
    "virginica": [6.3, 3.3, 6.0, 2.5],
}


def store_client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        registry_uri=f"sqlite:///{root / 'mlflow.db'}",
    )


def flatten(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def assert_tracked(client, root: Path, model_name: str = "iris_classifier") -> None:
    """The workspace's run holds the params, the metrics of metrics.json and the models."""
    import mlflow.pyfunc
    import pandas as pd

    run_id = json.loads((root / "models/mlflow_run.json").read_text())["run_id"]
    tracked = client.get_run(run_id)
    experiment = client.get_experiment(tracked.info.experiment_id)
    assert experiment.name == "iris_classification"
    assert tracked.info.status == "FINISHED"

    params = yaml.safe_load((root / "params.yaml").read_text())
    for key in ("n_estimators", "max_depth", "random_state"):
        assert tracked.data.params[key] == str(params["train"][key])
    assert tracked.data.params["preprocess.test_size"] == str(params["preprocess"]["test_size"])

    metrics = flatten(json.loads((root / "metrics/metrics.json").read_text()))
    assert metrics["accuracy"] >= 0.9
    numbers = {k: float(v) for k, v in metrics.items() if k != "average"}  # a tag in MLflow
    assert tracked.data.metrics == pytest.approx(numbers)
    assert tracked.data.tags["evaluate.average"] == metrics["average"]

    tags = tracked.data.tags
    head = run(["git", "rev-parse", "HEAD"], cwd=root).stdout.strip()
    assert tags["git_commit"] == head
    from mlpipeline.files.hashes import file_md5

    assert tags["train_data_md5"] == file_md5(root / "data/processed/train.parquet")
    artifacts = {item.path for item in client.list_artifacts(run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/roc.png"} <= artifacts

    # One model per training run: train logged the pipeline, save registered that model.
    run_info = json.loads((root / "models/mlflow_run.json").read_text())
    logged = client.search_logged_models(
        experiment_ids=[tracked.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
    )
    assert [f"models:/{model.model_id}" for model in logged] == [run_info["model_uri"]]
    champion = client.get_model_version_by_alias(model_name, "champion")
    assert champion.run_id == run_id
    assert champion.source == run_info["model_uri"]
    assert champion.tags["pipeline_md5"] == file_md5(root / "models/pipeline.pkl")
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    finally:  # later tests must not inherit this store
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    rows = pd.DataFrame(list(PREDICTED_ROWS.values()), columns=FEATURES)
    assert list(model.predict(rows)) == list(PREDICTED_ROWS)
