"""docker-compose.yml's `spark` profile for real: a Spark master and worker on the project's
image, and `mlpipeline model score --engine spark` run from the stack's `app` container
against them, giving what the local engine gives in the same container.

Run by `make test-docker` (.ci/ci-setup.sh first). The stack runs on a git copy of the
repository, on free 127.0.0.1 ports, and is always taken down with its volumes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpipeline.tool_env import tool_env
from tests.support.compose import APP_UID, IMAGE, UP_TIMEOUT_S, ComposeProject, base_image
from tests.support.http import http
from tests.support.repository import copy_repository
from tests.support.servers import free_port
from tests.support.spark import assert_same_scores
from tests.support.team import COMPOSE
from tests.support.tools import run

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(1800)]

BATCH = "data/new/batch.csv"  # in the checkout the app and the worker both mount
# Every refusal of the guard: not a number, missing, infinite, out of the model's range.
BAD_ROWS = {3: ("sepal_width", "abc"), 5: ("petal_length", np.nan), 7: ("sepal_length", 1e300)}
BAD_ROWS |= {9: ("petal_width", np.inf), 11: ("sepal_length", -np.inf), 400: ("petal_length", None)}
MASTER = "spark://spark-master:7077"
# The cluster's spark.authenticate secret, for this module's stack only.
SPARK_AUTH_SECRET = "spark-auth-" + os.urandom(8).hex()


def write_batch(project: Path) -> None:
    """3,000 rows of Iris with an id, bad rows of every kind and sepal_width shifted."""
    rows = pd.read_csv(project / "data" / "raw" / "dataset.csv").drop(columns=["target"])
    rows = pd.concat([rows] * 20, ignore_index=True)
    rows["sepal_width"] = rows["sepal_width"] + 1.5
    rows.insert(0, "id", [f"r{i:05d}" for i in range(len(rows))])
    rows = rows.astype({"sepal_width": object})
    for index, (column, value) in BAD_ROWS.items():
        rows.loc[index, column] = value
    (project / BATCH).parent.mkdir(parents=True)
    rows.to_csv(project / BATCH, index=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    """MLflow with a champion (the app's `dvc repro`), and the spark profile's master and
    worker, on a git copy of the repository; taken down afterwards."""
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is not installed; run .ci/ci-setup.sh (make test-docker does)")
    project = copy_repository(tmp_path_factory.mktemp("spark-compose") / "project")
    for folder in ("cache", "tmp"):  # the app's writable mounts, as docs/deploy.md has them
        (project / ".dvc" / folder).mkdir(exist_ok=True)
    run(["chown", "-R", f"{APP_UID}:{APP_UID}", project], cwd=project)
    ports = {name: free_port() for name in ("MLFLOW_PORT", "SPARK_MASTER_PORT", "SPARK_UI_PORT")}
    env = tool_env(
        {
            "COMPOSE_PROJECT_NAME": f"mlopsspark{os.getpid()}",
            "COMPOSE_PROFILES": "spark",
            "IMAGE": IMAGE,
            "BASE_IMAGE": base_image(),
            "MLFLOW_WORKERS": "1",
            "SPARK_AUTH_SECRET": SPARK_AUTH_SECRET,
            **{name: str(port) for name, port in ports.items()},
        }
    )
    stack = ComposeProject(project=project, env=env)
    try:
        stack.compose("build", "app", timeout=1500)
        stack.compose("up", "-d", "mlflow", "spark-worker", timeout=UP_TIMEOUT_S)
        stack.compose("run", "--rm", "app", timeout=UP_TIMEOUT_S)  # the champion
        write_batch(project)  # from data/raw/, which the run wrote
        run(["chown", "-R", f"{APP_UID}:{APP_UID}", project / "data" / "new"], cwd=project)
        stack.wait_until_healthy("spark-worker", jobs=(), servers=("spark-master", "spark-worker"))
        wait_for_workers(f"http://127.0.0.1:{ports['SPARK_UI_PORT']}/json/", stack)
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)


def wait_for_workers(url: str, stack: ComposeProject, timeout: float = 180) -> None:
    """Until the master lists its worker as alive (the worker's own health is its UI)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http(url)
        if status == 200 and json.loads(body).get("aliveworkers") == 1:
            return
        time.sleep(1)
    pytest.fail(f"the Spark master lists no live worker after {timeout:.0f} s\n{stack.logs()}")


def score(stack: ComposeProject, output: str, *extra: str):
    """`mlpipeline model score` in a one-off app container (results under data/, which the
    app may write); the completed process."""
    command = ["python", "-m", "mlpipeline", "model", "score", BATCH, "--output", output]
    return stack.compose("run", "--rm", "app", *command, *extra, check=False, timeout=900)


def test_spark_ports_bind_to_loopback_only(stack: ComposeProject) -> None:
    for port in ("7077", "8080"):
        published = stack.compose("port", "spark-master", port).stdout.strip()
        assert published.startswith("127.0.0.1:"), (port, published)


def test_the_master_has_no_rest_port_and_the_worker_cannot_write_the_checkout(
    stack: ComposeProject,
) -> None:
    """Port 6066 (REST submissions, unauthenticated) is closed, 7077 answers; the worker
    writes data/ only: not .git (whose hooks run on the host), not the code."""
    code = (
        "import socket\n"
        "for port in (6066, 7077):\n"
        "    with socket.socket() as s:\n"
        "        print(port, s.connect_ex(('spark-master', port)) == 0)"
    )
    ports = stack.compose("exec", "-T", "spark-master", "python", "-c", code).stdout.split()
    assert ports == ["6066", "False", "7077", "True"], ports
    code = (
        "import os\n"
        "for path in ('.git', '.git/config', 'mlpipeline', 'dvc.yaml', 'data'):\n"
        "    print(path, os.access('/workspace/' + path, os.W_OK))"
    )
    # As the worker's processes run: the checkout's owner.
    worker = ("exec", "-T", "-u", str(APP_UID), "spark-worker")
    access = stack.compose(*worker, "python", "-c", code).stdout.split()
    expected = ".git False .git/config False mlpipeline False dvc.yaml False data True"
    assert access == expected.split(), access


def test_a_driver_without_the_clusters_secret_gets_no_executor(stack: ComposeProject) -> None:
    """spark.authenticate: the master refuses a driver with another secret (or none, as a
    Jupyter kernel has), so it cannot run code on the worker."""
    output = "data/scores/intruder"
    command = ["python", "-m", "mlpipeline", "model", "score", BATCH, "--output", output]
    command += ["--engine", "spark", "--spark-master", MASTER]
    other_secret = ("-e", "SPARK_AUTH_SECRET=not-the-secret")
    intruder = stack.compose(
        "run", "--rm", *other_secret, "app", *command, check=False, timeout=900
    )
    assert intruder.returncode not in (0, 3), intruder.stderr[-3000:]
    assert not (stack.project / output / "summary.json").exists()


def test_the_compose_cluster_scores_as_the_local_engine_does(stack: ComposeProject) -> None:
    local = score(stack, "data/scores/local", "--chunk-rows", "700")
    assert local.returncode == 3, local.stderr[-3000:]
    on_spark = ("--engine", "spark", "--spark-master", MASTER)
    spark = score(stack, "data/scores/spark", "--chunk-rows", "500", *on_spark)
    assert spark.returncode == 3, spark.stderr[-3000:] + stack.logs(tail=80)

    out = stack.project / "data" / "scores"
    assert_same_scores(out / "spark", out / "local")
    rejects = pd.read_parquet(out / "spark" / "rejects.parquet").sort_values("row")
    assert list(rejects["row"]) == [index + 1 for index in sorted(BAD_ROWS)]
    gate = [line for line in spark.stderr.splitlines() if "drift gate" in line]
    assert gate and gate == [line for line in local.stderr.splitlines() if "drift gate" in line]
    assert not list(out.glob("**/_attempts"))

    # The executors were the worker container's: the run records the master and one executor.
    run_id = json.loads((out / "spark" / "summary.json").read_text())["scoring_run_id"]
    code = f"import mlflow; print(mlflow.get_run({run_id!r}).data.params)"
    params = stack.compose("run", "--rm", "app", "python", "-c", code).stdout
    assert f"'spark_master': '{MASTER}'" in params, params
    assert "'spark_executors': '1'" in params, params
