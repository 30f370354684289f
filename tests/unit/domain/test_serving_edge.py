"""The serving edge's error rewriting and Host parsing, on MLflow's own messages (MLflow
3.17's scoring server; tests/integration/scoring/test_serving.py drives the real server)."""

from __future__ import annotations

import json

import pytest

from mlpipeline.domain.serving_edge import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_CHARS,
    EdgeLimits,
    ServingEdge,
    body_problem,
    error_answer,
    error_message,
    host_name,
    json_depth,
)


@pytest.mark.parametrize(
    ("mlflow_message", "expected"),
    [
        (
            "Invalid input. Ensure that input is a valid JSON formatted string. Error: "
            "'JSONDecodeError('Expecting value: line 1 column 1 (char 0)')'\nInput: \nb'hello'\n",
            "Invalid input. Ensure that input is a valid JSON formatted string. Error: "
            "'JSONDecodeError('Expecting value: line 1 column 1 (char 0)')'",
        ),
        (
            "Invalid input. Ensure that input is a valid JSON formatted string. Error: "
            "'UnicodeDecodeError('utf-8', b'\\x80 the body', 0, 1, 'invalid start byte')'",
            "Invalid input. Ensure that input is a valid JSON formatted string. Error: "
            "'UnicodeDecodeError('utf-8', <the request body>, 0, 1, 'invalid start byte')'",
        ),
        (
            "Failed to predict data '   sepal_length\n0           5.1'. \nError: Failed to "
            "enforce schema of data '   sepal_length\n0           5.1' with schema "
            "'['sepal_length': double (required)]'. Error: Model is missing inputs "
            "['petal_width']. Note that there were extra inputs: ['b', 'a'].",
            "Model is missing inputs ['petal_width'].",
        ),
        (
            "The input must be a JSON dictionary with exactly one of the input fields "
            "{'inputs'}. Received dictionary with input fields: []. IMPORTANT: The MLflow Model "
            "scoring protocol has changed in MLflow version 2.0. If you are seeing this error",
            "The input must be a JSON dictionary with exactly one of the input fields "
            "{'inputs'}. Received dictionary with input fields: [].",
        ),
        (
            "column 'sepal_width' has 1 missing value(s)",
            "column 'sepal_width' has 1 missing value(s)",
        ),
    ],
    ids=["not-json", "not-utf8", "schema", "protocol-notice", "guard"],
)
def test_error_message_keeps_the_reason_only(mlflow_message: str, expected: str) -> None:
    assert error_message(mlflow_message) == expected


def test_error_message_is_capped() -> None:
    message = error_message("Failed to convert data `" + "z" * 5000 + "` to type")
    assert len(message) == MAX_MESSAGE_CHARS and message.endswith("…")


@pytest.mark.parametrize(
    ("status", "body", "answer"),
    [
        (
            400,
            json.dumps({"error_code": "BAD_REQUEST", "message": "m", "stack_trace": "Traceback"}),
            ("BAD_REQUEST", "m"),
        ),
        (405, '{"detail":"Method Not Allowed"}', ("METHOD_NOT_ALLOWED", "Method Not Allowed")),
        (415, "Only CSV, JSON", ("UNSUPPORTED_MEDIA_TYPE", "Only CSV, JSON")),
        (504, "Too slow", ("DEADLINE_EXCEEDED", "Too slow")),
        (502, "", ("INTERNAL_ERROR", "HTTP 502")),
        (418, "[1, 2]", ("BAD_REQUEST", "HTTP 418")),
    ],
)
def test_error_answer(status: int, body: str, answer: tuple[str, str]) -> None:
    assert error_answer(status, body.encode()) == answer


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:5001", "127.0.0.1"),
        ("Serve:5001", "serve"),
        ("[::1]:5001", "::1"),
        ("localhost", "localhost"),
        ("::1", "::1"),
        ("", ""),
    ],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("max_body", "hosts", "error"),
    [(0, ["serve"], "positive number of bytes"), (10, [" ", ""], "allowed hosts list is empty")],
)
def test_limits_refuse_unusable_settings(max_body: int, hosts: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        EdgeLimits.parse(max_body, hosts)


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"5", 0),
        (b'{"inputs": [[5.1, 3.5], [1.4, 0.2]]}', 3),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets in strings do not count
        (b'["\\"[", "]"]', 1),  # nor after an escaped quote
        (b"[" * 50_000 + b"]" * 50_000, 50_000),
    ],
)
def test_json_depth(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status"),
    [
        ("POST", "/invocations", None, b"{}", 415),
        ("POST", "/invocations", "", b"{}", 415),
        ("POST", "/invocations", "application/json", b"[" * (MAX_JSON_DEPTH + 1), 400),
        ("POST", "/invocations", "application/json; charset=utf-8", b"[" * 50_000, 400),
        ("POST", "/invocations", "application/json", b"[" * MAX_JSON_DEPTH, None),
        ("POST", "/invocations", "text/csv", b"[" * 50_000, None),  # MLflow's CSV reader
        ("GET", "/ping", None, b"", None),
    ],
)
def test_body_problem(
    method: str, path: str, content_type: str | None, body: bytes, status: int | None
) -> None:
    problem = body_problem(method, path, content_type, body)
    assert (problem[0] if problem else None) == status


def test_the_edge_answers_before_the_app_sees_the_request() -> None:
    import asyncio

    async def failing_app(scope, receive, send) -> None:
        raise AssertionError("the app must not see this request")

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b'{"inputs": [[1]]}', "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [(b"host", b"127.0.0.1:5001"), (b"content-length", b"17")],
    }
    asyncio.run(ServingEdge(failing_app, EdgeLimits())(scope, receive, send))
    assert sent[0]["status"] == 415
    assert json.loads(sent[1]["body"])["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
