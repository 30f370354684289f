"""The served model's HTTP edge: what reaches MLflow's scoring app, and what comes back.

MLflow's scoring app (`mlflow.pyfunc.scoring_server`, FastAPI) reads a request's whole body
into memory whatever its size, answers any Host header, serves FastAPI's /docs, /redoc and
/openapi.json, and answers bad requests with bodies that echo the request (a non-JSON body
whole, the parsed rows twice) or carry a Python stack trace with the server's paths.
`ServingEdge` wraps that app as plain ASGI (no third-party import) and:

- refuses a body over `max_body_bytes` with 413, from its Content-Length before reading a
  byte, or as soon as a chunked body passes the limit;
- refuses a Host header not in `allowed_hosts` with 400 (DNS rebinding: a browser page
  served by another name must not reach the model through the user's loopback);
- answers 404 for any path but /ping, /health, /version and /invocations;
- refuses a POST to /invocations without a Content-Type with 415 (MLflow's app fails on it
  with a 500), and a JSON body nested deeper than `MAX_JSON_DEPTH` with 400, before MLflow's
  parser recurses into it (a RecursionError, a 500);
- rewrites every 4xx/5xx body to one JSON line `{"error_code": ..., "message": ...}`:
  the first line of MLflow's message, without the rows it echoes, capped in length, so it
  names at most the first offending value (`error_message`).

Successful answers pass through untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# MLflow's endpoints (mlflow/pyfunc/scoring_server/__init__.py: init).
SERVED_PATHS = frozenset({"/ping", "/health", "/version", "/invocations"})
# Loopback, and the compose service's name (other containers call it serve:5001).
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "::1", "serve")
# Iris rows are ~40 bytes as JSON: 1 MiB is ~25k rows a request; files go to the batch scorer.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Deepest JSON nesting let through: a request in any of MLflow's formats is 2-4 levels deep
# (a tensor input one more per dimension); Python's parser recurses once a level.
MAX_JSON_DEPTH = 64
# A message longer than this is cut: room for one offending value, never for the rows.
MAX_MESSAGE_CHARS = 300

# The error code of an answer whose body has none (plain text, FastAPI's {"detail": ...}).
_STATUS_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
    504: "DEADLINE_EXCEEDED",
}
# MLflow prefixes a failed prediction's error with the parsed rows, and schema errors too:
# "Failed to predict data '<rows>'. \nError: Failed to enforce schema of data '<rows>' with
# schema '<schema>'. Error: <the reason>". Only the reason is kept.
_ROWS_PREFIX = re.compile(r"^Failed to (predict|enforce schema of) data ", re.ASCII)
_REASON = "Error: "
# Boilerplate that names no culprit: MLflow 2.0's protocol change notice, and the extra
# columns a request had (its own column names, any number of them).
_CUT_AT = (" IMPORTANT: The MLflow Model scoring protocol", " Note that there were extra inputs")
# A bytes literal in an error's repr is the request body (UnicodeDecodeError's repr holds it).
_BYTES_LITERAL = re.compile(r"(?<!\w)b'(?:[^'\\]|\\.)*'|(?<!\w)b\"(?:[^\"\\]|\\.)*\"")


@dataclass(frozen=True)
class EdgeLimits:
    """What the edge lets through."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_hosts: frozenset[str] = frozenset(DEFAULT_ALLOWED_HOSTS)

    @classmethod
    def parse(cls, max_body_bytes: int, allowed_hosts: Iterable[str]) -> EdgeLimits:
        """Limits from user input; ValueError naming the setting when one is unusable."""
        if max_body_bytes <= 0:
            raise ValueError(f"the body limit must be a positive number of bytes: {max_body_bytes}")
        hosts = frozenset(host.strip().lower() for host in allowed_hosts if host.strip())
        if not hosts:
            raise ValueError("the allowed hosts list is empty: no request could be answered")
        return cls(max_body_bytes, hosts)


def host_name(header: str) -> str:
    """The name of a Host header, without its port: `[::1]:5001` → `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar), without parsing
    it: brackets inside strings do not count."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b'""', body)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def body_problem(
    method: str, path: str, content_type: str | None, body: bytes
) -> tuple[int, str, str] | None:
    """(status, error code, message) for a request MLflow's app would answer with a 500;
    None for one it answers itself."""
    if method != "POST" or path != "/invocations":
        return None
    if not content_type:
        return (
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "the request has no Content-Type header; send application/json or text/csv",
        )
    json_body = content_type.split(";", 1)[0].strip().lower() == "application/json"
    if json_body and json_depth(body) > MAX_JSON_DEPTH:
        return (
            400,
            "BAD_REQUEST",
            f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; a request in any of "
            "the scoring formats is a few levels deep",
        )
    return None


def error_message(text: str) -> str:
    """MLflow's error message reduced to its reason: one line, no rows, at most
    MAX_MESSAGE_CHARS characters (a longer one ends in "…")."""
    text = text.strip()
    while _ROWS_PREFIX.match(text) and _REASON in text:
        text = text.rsplit(_REASON, 1)[1].strip()
    for marker in _CUT_AT:
        text = text.split(marker, 1)[0]
    text = _BYTES_LITERAL.sub("<the request body>", text)
    line = text.split("\n", 1)[0].strip()
    if len(line) > MAX_MESSAGE_CHARS:
        line = line[: MAX_MESSAGE_CHARS - 1] + "…"
    return line


def error_answer(status: int, body: bytes) -> tuple[str, str]:
    """(error code, message) the edge answers an error with, from the app's error body."""
    code = _STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    decoded = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(decoded)
    except ValueError:
        parsed = decoded
    text = parsed if isinstance(parsed, str) else ""
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error_code"), str):
            code = parsed["error_code"]
        message = parsed.get("message", parsed.get("detail"))
        text = message if isinstance(message, str) else ""
    return code, error_message(text) or f"HTTP {status}"


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ServingEdge:
    """ASGI middleware around MLflow's scoring app; see the module's docstring."""

    def __init__(self, app: App, limits: EdgeLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope["headers"]}
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.limits.allowed_hosts:
            await _answer(
                send,
                400,
                "BAD_REQUEST",
                "the Host header names a host this server does not answer to "
                "(SERVE_ALLOWED_HOSTS lists those it does)",
            )
            return
        if scope["path"] not in SERVED_PATHS:
            await _answer(
                send,
                404,
                "ENDPOINT_NOT_FOUND",
                "no such endpoint; this server answers /ping, /health, /version and /invocations",
            )
            return
        too_large = (
            f"the request body is over the limit of {self.limits.max_body_bytes} bytes "
            "(SERVE_MAX_BODY_BYTES); send fewer rows per request, or score a file with "
            "`mlpipeline model score`"
        )
        declared = headers.get(b"content-length", b"0").decode("latin-1").strip() or "0"
        if not declared.isdigit():
            await _answer(send, 400, "BAD_REQUEST", "the Content-Length header is not a number")
            return
        if int(declared) > self.limits.max_body_bytes:
            await _answer(send, 413, "REQUEST_TOO_LARGE", too_large)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limits.max_body_bytes:  # a chunked body has no Content-Length
                await _answer(send, 413, "REQUEST_TOO_LARGE", too_large)
                return
            if not message.get("more_body", False):
                break
        content_type = headers.get(b"content-type")
        problem = body_problem(
            scope.get("method", ""),
            scope["path"],
            content_type.decode("latin-1") if content_type is not None else None,
            bytes(body),
        )
        if problem is not None:
            await _answer(send, *problem)
            return
        await self.app(scope, _replay(bytes(body), receive), _ErrorRewriter(send))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body read already, then whatever the client sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class _ErrorRewriter:
    """A `send` that holds an error answer until its body is complete, then rewrites it."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if message["type"] == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status = self.start["status"]
            await _answer(self.send, status, *error_answer(status, b"".join(self.chunks)))
            return
        await self.send(message)
