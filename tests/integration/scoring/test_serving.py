"""The registered champion behind a real `mlflow models serve`: good rows answered, bad ones
refused with a 400 that names the column (mlpipeline/domain/model_guard.py), in one line,
never a stack trace nor the request's rows.

The server runs outside the repository (its own working directory, no PYTHONPATH), so the
input guard must come with the model (`code_paths`) and be trusted by skops.

Then the same app behind `mlpipeline model serve`'s edge (`test_edge_*`): every
error answer one JSON line without a trace, a server path or the request; bodies over the
limit, foreign Host headers and FastAPI's pages refused.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.servers import free_port
from tests.support.servers import serving as server_process
from tests.support.tools import run

pytestmark = pytest.mark.integration

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@contextmanager
def serving(command: list[str], folder: Path, env: dict[str, str], port: int) -> Iterator[str]:
    """Start a scoring server in `folder` (its log: folder/serve.log), wait for /ping, yield
    its base URL, stop it."""
    url = f"http://127.0.0.1:{port}"
    with server_process(command, f"{url}/ping", folder / "serve.log", env, folder, timeout=120):
        yield url


@pytest.fixture(scope="module")
def served(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow models serve models:/iris_classifier@champion --env-manager local`; its URL."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{built_project / 'mlflow.db'}"})
    env.pop("PYTHONPATH", None)
    command = [
        "mlflow", "models", "serve",
        "-m", "models:/iris_classifier@champion",
        "--env-manager", "local",
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    with serving(command, folder, env, port) as url:
        yield f"{url}/invocations"


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


# ----------------------------------------------------------- mlpipeline model serve


Edge = tuple[str, Path]  # the server's base URL, its log


@pytest.fixture(scope="module")
def edge(
    built_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`mlpipeline model serve` on the champion, default limits; its URL, its log."""
    folder = tmp_path_factory.mktemp("edge")
    port = free_port()
    env = tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{built_project / 'mlflow.db'}"})
    for name in ("SERVE_MAX_BODY_BYTES", "SERVE_ALLOWED_HOSTS", "MLFLOW_MODELS_WORKERS"):
        env.pop(name, None)
    command = [
        "mlpipeline", "model", "serve",
        "--params", str(built_project / "params.yaml"),
        "--port", str(port),
    ]  # fmt: skip
    with serving(command, folder, env, port) as url:
        yield url, folder / "serve.log"


def get(url: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def assert_one_line_error(body: str) -> dict[str, str]:
    """The edge's error answer: one JSON line, two keys, no trace, no server path."""
    assert body.count("\n") == 1 and body.endswith("\n"), body
    error = json.loads(body)
    assert set(error) == {"error_code", "message"}, body
    for leak in ("Traceback", "site-packages", ".py", "/tmp", str(Path.home())):
        assert leak not in body, body
    return error


def test_edge_serves_the_champion_as_mlflow_does(edge: Edge) -> None:
    url, log_path = edge
    status, body = invoke(
        url + "/invocations", split("[[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]")
    )
    assert (status, json.loads(body)) == (200, {"predictions": ["setosa", "virginica"]})
    status, body = invoke(
        url + "/invocations", ",".join(COLUMNS) + "\n5.9,3.0,4.2,1.5\n", "text/csv"
    )
    assert (status, json.loads(body)) == (200, {"predictions": ["versicolor"]})
    assert get(url + "/ping")[0] == get(url + "/health")[0] == 200
    import mlflow

    assert get(url + "/version") == (200, mlflow.__version__)
    # The alias is resolved once, and the log says to which version.
    assert "serving models:/iris_classifier@champion (version " in log_path.read_text()


LONG_VALUE = "z" * 5000


@pytest.mark.parametrize(
    ("request_body", "content_type", "status", "message", "not_echoed"),
    [
        ("hello, this is not JSON", "application/json", 400, "valid JSON", "hello"),
        (b"\x80\x81{not utf-8", "application/json", 400, "valid JSON", "not utf"),
        ("[[5.1, 3.5, 1.4, 0.2]]", "application/json", 400, "Received a list", "5.1"),
        ('{"rows": [[5.1, 3.5, 1.4, 0.2]]}', "application/json", 400, "exactly one of", "5.1"),
        (
            split('[["abc", 3.5, 1.4, 0.2], ["second", 3.5, 1.4, 0.2]]'),
            "application/json",
            400,
            "could not convert string to float: 'abc'",
            "second",
        ),
        (
            '{"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length"], '
            '"data": [[5.1, 3.5, 1.4]]}}',
            "application/json",
            400,
            "Model is missing inputs ['petal_width']",
            "5.1",
        ),
        (
            "a,b\n1.25,2.75\n",
            "text/csv",
            400,
            "Model is missing inputs ['sepal_length', 'sepal_width'",
            "1.25",
        ),
        (
            split("[[1e300, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]"),
            "application/json",
            400,
            "column 'sepal_length' has 1 value(s) out of the model's range",
            "6.3",
        ),
        (f'{{"instances": "{LONG_VALUE}"}}', "application/json", 400, "Failed to convert", None),
        ("not parquet", "application/vnd.apache.parquet", 400, "Parquet", "not parquet"),
        (split("[[5.1, 3.5, 1.4, 0.2]]"), "text/plain", 415, "content types", "5.1"),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "list",
        "no-format-key",
        "wrong-type",
        "missing-column",
        "csv-wrong-columns",
        "1e300",
        "long-value",
        "bad-parquet",
        "content-type",
    ],
)
def test_edge_answers_bad_requests_in_one_line(
    edge: Edge,
    request_body: str | bytes,
    content_type: str,
    status: int,
    message: str,
    not_echoed: str | None,
) -> None:
    request = urllib.request.Request(
        edge[0] + "/invocations",
        data=request_body if isinstance(request_body, bytes) else request_body.encode(),
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=30)
        pytest.fail("a bad request was answered 2xx")
    except urllib.error.HTTPError as answer:
        got, body = answer.code, answer.read().decode()
    assert got == status, body
    error = assert_one_line_error(body)
    assert message in error["message"]
    if not_echoed is not None:
        assert not_echoed not in body
    # At most the first offending value, cut short: never the request.
    assert len(error["message"]) <= 300
    assert LONG_VALUE not in body


def raw_post(url: str, headers: bytes, body_parts: Iterable[bytes]) -> tuple[str, str]:
    """POST /invocations over a bare socket (urllib sends a whole body before it reads an
    answer); (status line, body) of the answer."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        for part in body_parts:
            conn.sendall(part)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
        head, body = answer.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])
        while len(body) < length:
            body += conn.recv(65536)
    return head.decode().splitlines()[0], body.decode()


def test_edge_refuses_a_huge_body_before_reading_it(edge: Edge) -> None:
    """44 MiB announced (issue #23's request took a worker from 297 MB to 1.39 GB), 64 KiB
    sent: the 413 comes back without the rest."""
    status, body = raw_post(
        edge[0],
        b"Content-Type: application/json\r\nContent-Length: 46137344\r\n",
        [b"[" * 65536],
    )
    assert status.startswith("HTTP/1.1 413"), status
    assert "SERVE_MAX_BODY_BYTES" in assert_one_line_error(body)["message"]


def test_edge_refuses_a_chunked_body_past_the_limit(edge: Edge) -> None:
    """No Content-Length to judge by: the edge counts the chunks as they come."""
    chunk = b"[" * 65536
    status, body = raw_post(
        edge[0],
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * 17,  # 1 MiB + 64 KiB
    )
    assert status.startswith("HTTP/1.1 413"), status
    assert_one_line_error(body)


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        (b"", b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', "415", "UNSUPPORTED_MEDIA_TYPE"),
        (
            b"Content-Type: application/json\r\n",
            b"[" * 50_000 + b"]" * 50_000,
            "400",
            "BAD_REQUEST",
        ),
    ],
    ids=["no-content-type", "nested-50k-deep"],
)
def test_edge_refuses_what_mlflow_answers_with_a_500(
    edge: Edge, headers: bytes, body: bytes, status: str, code: str
) -> None:
    """MLflow's app fails with AttributeError (no Content-Type) and RecursionError (deep
    JSON): the edge answers first (issue 30, item 18)."""
    line, answer = raw_post(edge[0], headers + b"Content-Length: %d\r\n" % len(body), [body])
    assert line.startswith(f"HTTP/1.1 {status}"), (line, answer)
    assert assert_one_line_error(answer)["error_code"] == code
    ok = split("[[5.1, 3.5, 1.4, 0.2]]").encode()  # and the server still answers
    line, _ = raw_post(
        edge[0], b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(ok), [ok]
    )
    assert line.startswith("HTTP/1.1 200"), line


def test_edge_answers_only_its_hosts_and_endpoints(edge: Edge) -> None:
    url = edge[0]
    status, body = get(url + "/ping", host="attacker.example:5001")
    assert status == 400 and "Host" in assert_one_line_error(body)["message"]
    assert "attacker" not in body
    for host in ("localhost:5001", "serve:5001", "127.0.0.1"):
        assert get(url + "/ping", host=host)[0] == 200, host
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/nowhere"):
        status, body = get(url + path)
        assert status == 404, path
        assert_one_line_error(body)
    status, body = get(url + "/invocations")  # GET where MLflow takes POST
    assert status == 405 and assert_one_line_error(body)["error_code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (
            ["--model-uri", "models:/iris_classifier@nowhere"],
            {},
            "no model version models:/iris_classifier@nowhere in the MLflow registry",
        ),
        ([], {"SERVE_MAX_BODY_BYTES": "1MB"}, "SERVE_MAX_BODY_BYTES must be a number of bytes"),
        ([], {"SERVE_ALLOWED_HOSTS": " , "}, "the allowed hosts list is empty"),
    ],
    ids=["unknown-model", "bad-limit", "no-hosts"],
)
def test_serve_refuses_to_start_in_one_line(
    built_project: Path,
    tmp_path: Path,
    arguments: list[str],
    environment: dict[str, str],
    message: str,
) -> None:
    env = tool_env(
        {"MLFLOW_TRACKING_URI": f"sqlite:///{built_project / 'mlflow.db'}", **environment}
    )
    command = ["python", "-m", "mlpipeline", "model", "serve", "--port", str(free_port())]
    params = ["--params", str(built_project / "params.yaml")]
    result = run([*command, *params, *arguments], cwd=tmp_path, env=env, check=False)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_serve_finds_the_project_store_under_a_path_with_spaces(
    built_project: Path, tmp_path: Path
) -> None:
    """No MLFLOW_TRACKING_URI: the project's store, not MLflow's default (which MLflow
    percent-encodes under such a path, creating an empty store elsewhere)."""
    project = tmp_path / "my dir ü" / "project"
    shutil.copytree(built_project, project, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    env = tool_env()
    port = free_port()
    command = ["python", "-m", "mlpipeline", "model", "serve", "--port", str(port)]
    with serving(command, project, env, port) as url:
        assert get(url + "/ping")[0] == 200
    log = (project / "serve.log").read_text()
    assert "serving models:/iris_classifier@champion (version" in log, log[-2000:]

    (project / "mlflow.db").rename(project / "moved.db")
    refused = run(command, cwd=project, env=env, check=False)
    assert refused.returncode == 1, refused.stderr
    assert f"no MLflow store at {project / 'mlflow.db'}" in refused.stderr, refused.stderr
    assert list(tmp_path.rglob("mlflow.db")) == [], "an empty store was created"
