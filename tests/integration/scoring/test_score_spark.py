"""`mlpipeline model score --engine spark` on Spark in local mode (`local[2]`): the local
engine's results to the bit, and the failures that must be one clear line.

Each Spark scoring starts a JVM: the module runs one on `local[2]` (the failures before
Spark starts need none, and the unloadable model one more). The standalone cluster's tests
are in test_score_spark_cluster.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.servers import free_port
from tests.support.spark import assert_same_scores, seconds_after
from tests.support.tools import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# Every refusal of the guard: not a number, missing, infinite, out of the model's range.
BAD_ROWS = {3: ("sepal_width", "abc"), 5: ("petal_length", np.nan), 7: ("sepal_length", 1e300)}
BAD_ROWS |= {9: ("petal_width", np.inf), 11: ("sepal_length", -np.inf), 400: ("petal_length", None)}


def env_for(project: Path, **extra: str) -> dict[str, str]:
    return tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", **extra})


def score(
    project: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run(
        ["python", "-m", "mlpipeline", "model", "score", *args],
        cwd=project,
        env=env or env_for(project),
        check=False,
    )


@pytest.fixture(scope="module")
def batch(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 rows of Iris as new data with an id, bad rows of every kind and sepal_width
    shifted (the gate fails): a CSV of several Arrow batches."""
    rows = pd.read_csv(built_project / "data" / "raw" / "dataset.csv").drop(columns=["target"])
    rows = pd.concat([rows] * 10, ignore_index=True)
    rows["sepal_width"] = rows["sepal_width"] + 1.5
    rows.insert(0, "id", [f"r{i:05d}" for i in range(len(rows))])
    rows = rows.astype({"sepal_width": object})
    for index, (column, value) in BAD_ROWS.items():
        rows.loc[index, column] = value
    source = tmp_path_factory.mktemp("spark-batch") / "batch.csv"
    rows.to_csv(source, index=False)
    return source


def test_spark_gives_the_local_engines_results_to_the_bit(
    built_project: Path, batch: Path, tmp_path: Path
) -> None:
    local_out, spark_out = tmp_path / "local", tmp_path / "spark"
    local = score(built_project, batch, "--output", local_out, "--chunk-rows", "400")
    assert local.returncode == 3, local.stderr[-3000:]
    spark = score(
        built_project,
        batch,
        "--output",
        spark_out,
        "--chunk-rows",
        "250",
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
    )
    assert spark.returncode == 3, spark.stderr[-3000:]

    assert_same_scores(spark_out, local_out)
    assert len(pd.read_parquet(spark_out / "predictions.parquet")) == 1500 - len(BAD_ROWS)
    spark_rejects = pd.read_parquet(spark_out / "rejects.parquet").sort_values("row")
    assert list(spark_rejects["row"]) == [index + 1 for index in sorted(BAD_ROWS)]

    # The gate's line is the same too.
    drift = json.loads((spark_out / "drift.json").read_text())
    assert drift["drifted_features"] == ["sepal_width"]
    gate = [line for line in spark.stderr.splitlines() if "drift gate" in line]
    assert gate == [line for line in local.stderr.splitlines() if "drift gate" in line]

    summary = json.loads((spark_out / "summary.json").read_text())
    assert summary["metrics"]["rows"] == 1500
    assert (
        summary["class_counts"]
        == json.loads((local_out / "summary.json").read_text())["class_counts"]
    )
    assert summary["metrics"]["spark_startup_seconds"] > 0
    # Start-up's probe loaded the model in the Python workers the scoring's task then used:
    # loading it again cost tens of seconds a job (benchmarks/notes.md, issue #33).
    assert summary["metrics"]["spark_model_loads"] == 0
    assert not list(spark_out.glob("**/_attempts"))


def test_no_java_is_one_line_and_writes_nothing(
    built_project: Path, batch: Path, tmp_path: Path
) -> None:
    assert not (VENV_BIN / "java").exists()
    env = env_for(built_project, PATH=str(VENV_BIN))  # the project's tools, and no java
    env.pop("JAVA_HOME", None)
    started = time.monotonic()
    proc = score(built_project, batch, "--output", tmp_path / "out", "--engine", "spark", env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert time.monotonic() - started < 60
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Spark needs Java 17 or newer" in errors[0], proc.stderr[-3000:]
    assert "openjdk-17-jre-headless" in errors[0]
    assert not (tmp_path / "out").exists()


def test_an_unreachable_master_is_one_line(
    built_project: Path, batch: Path, tmp_path: Path
) -> None:
    master = f"spark://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = score(
        built_project,
        batch,
        "--output",
        tmp_path / "out",
        "--engine",
        "spark",
        env=env_for(built_project, SPARK_MASTER=master),
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert time.monotonic() - started < 60
    assert f"the Spark master {master} cannot be reached" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_executors_that_cannot_load_the_model_are_one_line(
    built_project: Path, batch: Path, tmp_path: Path
) -> None:
    """Executors on a Python without the project's environment (the system's)."""
    bare_python = shutil.which("python3", path="/usr/bin:/bin")
    assert bare_python and Path(bare_python).resolve() != Path(os.sys.executable).resolve()
    out = tmp_path / "out"
    args: list[str | Path] = ["python", "-m", "mlpipeline", "model", "score", batch]
    args += ["--output", out, "--engine", "spark", "--spark-master", "local[1]"]
    env = env_for(built_project, PYSPARK_PYTHON=bare_python)
    status, stderr, seconds = seconds_after("starting Spark on", args, built_project, env)
    assert status == 1, stderr[-3000:]
    assert seconds < 60
    errors = [line for line in stderr.splitlines() if "[score] ERROR" in line]
    assert len(errors) == 1, stderr[-3000:]
    assert "Spark's executors cannot load the model: ModuleNotFoundError" in errors[0]
    assert f"executors run {bare_python} (PYSPARK_PYTHON)" in errors[0]
    assert not out.exists()
