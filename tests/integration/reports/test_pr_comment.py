"""pr_comment against a small forge on 127.0.0.1: one comment, created once, then updated."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mlpipeline.domain.report_markdown import MARKER
from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO
from tests.support.tools import run

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
# The comments and notes endpoints of each forge, as pr_comment's docstring lists them.
ROUTES = {
    "github": (r"/repos/team/proj/issues/12/comments", r"/repos/team/proj/issues/comments/(\d+)"),
    "gitea": (
        r"/api/v1/repos/team/proj/issues/12/comments",
        r"/api/v1/repos/team/proj/issues/comments/(\d+)",
    ),
    "gitlab": (
        r"/api/v4/projects/team%2Fproj/merge_requests/12/notes",
        r"/api/v4/projects/team%2Fproj/merge_requests/12/notes/(\d+)",
    ),
}
API_ROOT = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4"}
AUTH = {
    "github": ("Authorization", f"Bearer {TOKEN}"),
    "gitea": ("Authorization", f"token {TOKEN}"),
    "gitlab": ("PRIVATE-TOKEN", TOKEN),
}
EDIT_METHOD = {"github": "PATCH", "gitea": "PATCH", "gitlab": "PUT"}


@dataclass
class FakeForge:
    kind: str
    comments: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        self.requests.append((handler.command, parts.path))
        header, value = AUTH[self.kind]
        if handler.headers.get(header) != value:
            return self.reply(handler, 401, {"message": "Bad credentials"})
        listing, single = ROUTES[self.kind]
        length = int(handler.headers.get("Content-Length") or 0)
        payload = json.loads(handler.rfile.read(length)) if length else None
        if re.fullmatch(listing, parts.path) and handler.command == "GET":
            query = parse_qs(parts.query)
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
            chunk = self.comments[(page - 1) * per_page : page * per_page]
            link = ""
            if page * per_page < len(self.comments):
                link = f'<{self.url}{parts.path}?per_page={per_page}&page={page + 1}>; rel="next"'
            return self.reply(handler, 200, chunk, link)
        if re.fullmatch(listing, parts.path) and handler.command == "POST":
            comment = {"id": 1000 + len(self.comments), "body": payload["body"]}
            self.comments.append(comment)
            return self.reply(handler, 201, comment)
        match = re.fullmatch(single, parts.path)
        if match and handler.command == EDIT_METHOD[self.kind]:
            comment = next(c for c in self.comments if c["id"] == int(match.group(1)))
            comment["body"] = payload["body"]
            return self.reply(handler, 200, comment)
        return self.reply(handler, 404, {"message": "Not Found"})

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, data: object, link: str = "") -> None:
        body = json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if link:
            handler.send_header("Link", link)
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture(params=sorted(ROUTES))
def forge(request: pytest.FixtureRequest) -> Iterator[FakeForge]:
    fake = FakeForge(request.param)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.handle(self)

        def do_POST(self) -> None:
            fake.handle(self)

        def do_PATCH(self) -> None:
            fake.handle(self)

        def do_PUT(self) -> None:
            fake.handle(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def post_report(forge: FakeForge, body: Path, token: str = TOKEN, check: bool = True):
    return run(
        [
            sys.executable,
            "-m",
            "mlpipeline",
            "report",
            "comment",
            "--forge",
            forge.kind,
            "--api-url",
            forge.url + API_ROOT[forge.kind],
            "--repo",
            "team/proj",
            "--number",
            "12",
            "--body",
            body,
            "--artifacts-url",
            "https://ci.example/job/7/artifacts",
        ],
        cwd=REPO,
        env=tool_env({"FORGE_TOKEN": token}),
        check=check,
    )


def test_the_report_is_posted_once_then_updated_in_place(forge: FakeForge, tmp_path: Path) -> None:
    # Other people's comments fill the first page, so ours is found on the second.
    forge.comments = [{"id": i, "body": f"looks good {i}"} for i in range(1, 121)]
    report = tmp_path / "report.md"
    report.write_text(f"{MARKER}\n## Pipeline report\n\naccuracy 0.93\n\n![roc](roc.png)\n")
    first = post_report(forge, report)
    assert "created comment 1120" in first.stderr
    ours = [c for c in forge.comments if MARKER in c["body"]]
    assert len(ours) == 1
    assert "accuracy 0.93" in ours[0]["body"]
    # The image is a file of the CI job: the comment points at the artifacts instead.
    assert "roc.png" not in ours[0]["body"]
    assert "[the job's artifacts](https://ci.example/job/7/artifacts)" in ours[0]["body"]

    forge.requests.clear()
    report.write_text(f"{MARKER}\n## Pipeline report\n\naccuracy 0.97\n")
    second = post_report(forge, report)
    assert "updated comment 1120" in second.stderr
    assert len(forge.comments) == 121
    assert "accuracy 0.97" in forge.comments[-1]["body"]
    single = ROUTES[forge.kind][1]
    assert [method for method, _ in forge.requests] == ["GET", "GET", EDIT_METHOD[forge.kind]]
    assert re.fullmatch(single, forge.requests[-1][1])


def test_a_refused_token_is_one_line_naming_the_url(forge: FakeForge, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    report.write_text("## Pipeline report\n")
    proc = post_report(forge, report, token="wrong", check=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, proc.stderr
    assert "HTTP 401" in errors[0] and forge.url in errors[0]
    assert "wrong" not in proc.stderr and "Traceback" not in proc.stderr
    assert forge.comments == []
