"""`pytest -m EXPR` runs the Docker and slow suites only when EXPR names them."""

from __future__ import annotations

import sys

import pytest

from tests.support.repository import REPO
from tests.support.tools import run

DOCKER, SLOW, PIPELINE = (
    "tests/integration/docker/test_docker.py",
    "tests/integration/project/test_user_workflows.py",
    "tests/integration/pipeline/test_dvc_pipeline.py",
)


def collected(expression: str) -> set[str]:
    """The test files `pytest -m EXPRESSION` selects among three, one per kind of suite."""
    args = ["--collect-only", "-q", "-p", "no:cacheprovider", "-m", expression]
    out = run([sys.executable, "-m", "pytest", *args, DOCKER, SLOW, PIPELINE], cwd=REPO).stdout
    return {line.split("::")[0] for line in out.splitlines() if "::" in line}


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ("integration", {PIPELINE}),  # README's "the integration tests"
        ("docker", {DOCKER}),  # make test-docker
        ("slow", {SLOW}),  # make test-slow
        ("integration or docker", {PIPELINE, DOCKER}),
    ],
)
def test_docker_and_slow_run_only_when_named(expression: str, selected: set[str]) -> None:
    assert collected(expression) == selected
