"""The registered champion behind a real `mlflow models serve`: good rows answered, bad ones
refused with a 400 that names the column (mlpipeline/domain/model_guard.py), in one line,
never a stack trace nor the request's rows.

The server runs outside the repository (its own working directory, no PYTHONPATH), so the
input guard must come with the model (`code_paths`) and be trusted by skops.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, stop, tool_env, wait_for

pytestmark = pytest.mark.integration

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def served(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow models serve models:/iris_classifier@champion --env-manager local`; its URL."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{built_project / 'mlflow.db'}"})
    env.pop("PYTHONPATH", None)
    log_path = folder / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                "mlflow", "models", "serve",
                "-m", "models:/iris_classifier@champion",
                "--env-manager", "local",
                "--host", "127.0.0.1",
                "--port", str(port),
            ],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(f"http://127.0.0.1:{port}/ping", server, log_path)
            yield f"http://127.0.0.1:{port}/invocations"
        finally:
            stop(server)


def invoke(url: str, body: str, content_type: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def split(rows: str) -> str:
    """A `dataframe_split` request; `rows` is JSON text (Python's json reads NaN, Infinity)."""
    return f'{{"dataframe_split": {{"columns": {json.dumps(COLUMNS)}, "data": {rows}}}}}'


def test_valid_rows_are_predicted(served: str) -> None:
    status, body = invoke(served, split("[[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]"))
    assert status == 200, body
    assert json.loads(body) == {"predictions": ["setosa", "virginica"]}


@pytest.mark.parametrize(
    ("request_body", "content_type", "message"),
    [
        (
            split("[[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, NaN, 0.2]]"),
            "application/json",
            "column 'petal_length' has 1 missing or infinite value(s), first in row 2",
        ),
        (
            split("[[5.1, 3.5, 1.4, null]]"),
            "application/json",
            "column 'petal_width' has 1 missing or infinite value(s), first in row 1",
        ),
        (
            split("[[5.1, Infinity, 1.4, 0.2]]"),
            "application/json",
            "column 'sepal_width' has 1 missing or infinite value(s)",
        ),
        (
            split("[[-Infinity, 3.5, 1.4, 0.2]]"),
            "application/json",
            "column 'sepal_length' has 1 missing or infinite value(s)",
        ),
        (
            ",".join(COLUMNS) + "\n5.1,,1.4,0.2\n",
            "text/csv",
            "column 'sepal_width' has 1 missing or infinite value(s)",
        ),
        (
            split("[[1e300, 3.5, 1.4, 0.2]]"),
            "application/json",
            "column 'sepal_length' has 1 value(s) out of the model's range, first in row 1 of "
            "the request (1e+300); every feature needs a finite number in [",
        ),
        (
            split("[[5.1, 3.5, 1.4, 0.2], [5.1, 3.4e38, 1.4, 0.2]]"),
            "application/json",
            "column 'sepal_width' has 1 value(s) out of the model's range, first in row 2 of "
            "the request (3.4e+38)",
        ),
        (
            ",".join(COLUMNS) + "\n5.1,3.5,1.4,-1e39\n",
            "text/csv",
            "column 'petal_width' has 1 value(s) out of the model's range, first in row 1",
        ),
        (split("[]"), "application/json", "the request has no rows; send rows of: sepal_length"),
        (",".join(COLUMNS) + "\n", "text/csv", "the request has no rows"),
    ],
    ids=[
        "nan",
        "null",
        "inf",
        "-inf",
        "csv-empty-cell",
        "1e300",
        "3.4e38",
        "csv-beyond-float32",
        "no-rows",
        "csv-no-rows",
    ],
)
def test_bad_rows_get_a_400_naming_the_column(
    served: str, request_body: str, content_type: str, message: str
) -> None:
    status, body = invoke(served, request_body, content_type)
    assert status == 400, body
    error = json.loads(body)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in error["message"]
    assert "stack_trace" not in error and "Traceback" not in body
    # One line, and none of the request's rows (MLflow would prefix them: "Failed to predict
    # data '<the request>'"); at most the first offending value.
    assert "\n" not in error["message"]
    assert "Failed to predict data" not in body and "5.1" not in body
