"""`mlpipeline report comment`: post the report on a pull request, as one comment.

The comment carries a hidden marker (mlpipeline.domain.report_markdown.MARKER); a later push finds
it and edits it in place instead of adding another. One REST dialect per forge:

    github   GET/POST {api}/repos/{repo}/issues/{n}/comments, PATCH .../issues/comments/{id}
    gitea    the same paths under Forgejo's or Gitea's /api/v1
    gitlab   GET/POST {api}/projects/{repo}/merge_requests/{n}/notes, PUT .../notes/{id}

The token is read from the environment variable --token-env names, never from the command
line (which other users of the machine can see). Images in the report are files of the CI
job, which a comment cannot show: their links become one line pointing at --artifacts-url.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mlpipeline.commands.console import command
from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.report_markdown import MARKER

log = logging.getLogger("mlpipeline.pr_comment")

FORGES = ("github", "gitea", "gitlab")
TIMEOUT_S = 30
# GitHub refuses a comment over 65536 characters; GitLab's and Gitea's limits are higher.
MAX_BODY = 65_000
_LOCAL_IMAGE = re.compile(r"!\[([^\]]*)\]\((?!https?://)([^)]+)\)")
_EMPTY_SECTION = re.compile(r"^#+ .*\n+(?=#+ |\Z)", re.M)
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass(frozen=True)
class Forge:
    """Where a pull request's comments live and how to authenticate there."""

    kind: str
    api_url: str
    repo: str  # owner/name (GitHub, Gitea) or the project's id or path (GitLab)
    number: int  # the pull request's number, or the merge request's iid
    token: str

    def comments_url(self) -> str:
        api = self.api_url.rstrip("/")
        if self.kind == "gitlab":
            project = urllib.parse.quote(self.repo, safe="")
            return f"{api}/projects/{project}/merge_requests/{self.number}/notes"
        return f"{api}/repos/{self.repo}/issues/{self.number}/comments"

    def comment_url(self, comment_id: int) -> str:
        if self.kind == "gitlab":
            return f"{self.comments_url()}/{comment_id}"
        return f"{self.api_url.rstrip('/')}/repos/{self.repo}/issues/comments/{comment_id}"

    def headers(self) -> dict[str, str]:
        auth = {
            "github": {"Authorization": f"Bearer {self.token}"},
            "gitea": {"Authorization": f"token {self.token}"},
            "gitlab": {"PRIVATE-TOKEN": self.token},
        }[self.kind]
        return {"Accept": "application/json", "Content-Type": "application/json", **auth}


def comment_body(report: str, artifacts_url: str | None) -> str:
    """The report as a comment: marked, local images replaced by a link to the job's files."""
    found = _LOCAL_IMAGE.findall(report)
    body = _LOCAL_IMAGE.sub("", report)
    body = re.sub(r"\n{3,}", "\n\n", body).rstrip() + "\n"
    body = _EMPTY_SECTION.sub("", body).rstrip() + "\n"  # Charts, Figures: now empty
    if found:
        where = (
            f"are in [the job's artifacts]({artifacts_url})"
            if artifacts_url
            else "are left out here: `make report` draws them"
        )
        body += f"\n{len(found)} charts and figures (PNG) {where}.\n"
    if MARKER not in body:
        body = f"{MARKER}\n{body}"
    if len(body) > MAX_BODY:
        body = body[:MAX_BODY] + "\n\n(cut: the full report is in the job's artifacts)\n"
    return body


def _request(forge: Forge, method: str, url: str, payload: dict | None = None) -> tuple[Any, str]:
    """Send one request; return the parsed JSON and the Link header. Errors name the URL."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=forge.headers())
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            text = response.read().decode()
            return (json.loads(text) if text else None), response.headers.get("Link", "")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:200].strip()
        raise PipelineError(
            f"{method} {url}: HTTP {exc.code} {exc.reason}"
            + (f": {detail}" if detail else "")
            + (" (check the token's permission to comment)" if exc.code in (401, 403) else "")
        ) from exc
    except OSError as exc:
        raise PipelineError(f"{method} {url}: {exc}") from exc


def find_comment(forge: Forge) -> int | None:
    """The id of our earlier comment on the pull request (by its marker), following pages."""
    url: str | None = forge.comments_url() + "?per_page=100"
    while url:
        comments, link = _request(forge, "GET", url)
        for comment in comments or []:
            if MARKER in (comment.get("body") or ""):
                return int(comment["id"])
        next_page = _NEXT_LINK.search(link)
        url = next_page.group(1) if next_page else None
    return None


def post(forge: Forge, body: str) -> tuple[str, int]:
    """Create the comment, or update ours in place; return ("created"|"updated", its id)."""
    existing = find_comment(forge)
    if existing is None:
        created, _ = _request(forge, "POST", forge.comments_url(), {"body": body})
        return "created", int(created["id"])
    method = "PUT" if forge.kind == "gitlab" else "PATCH"
    _request(forge, method, forge.comment_url(existing), {"body": body})
    return "updated", existing


@command(
    "pr_comment",
    help="Create or update (by a hidden marker) one comment with the report "
    "on a pull or merge request.",
)
@click.option("--forge", type=click.Choice(FORGES), required=True)
@click.option("--api-url", required=True, help="the forge's REST API root")
@click.option("--repo", required=True, help="owner/name, or GitLab's project id")
@click.option("--number", type=int, required=True, help="pull/merge request number")
@click.option(
    "--body", type=click.Path(path_type=Path), required=True, help="the report (Markdown)"
)
@click.option(
    "--token-env",
    default="FORGE_TOKEN",
    show_default=True,
    help="environment variable holding the token",
)
@click.option("--artifacts-url", help="where the job's report files can be seen")
def comment(
    forge: str,
    api_url: str,
    repo: str,
    number: int,
    body: Path,
    token_env: str,
    artifacts_url: str | None,
) -> None:
    token = os.environ.get(token_env)
    if not token:
        raise PipelineError(f"no token: the environment variable {token_env} is empty")
    if not body.is_file():
        raise PipelineError(f"--body {body}: no such file (run make report first)")
    target = Forge(forge, api_url, repo, number, token)
    action, comment_id = post(target, comment_body(body.read_text(), artifacts_url))
    log.info("%s comment %s on %s", action, comment_id, target.comments_url())
