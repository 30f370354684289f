"""`pytest -m EXPR` runs the Docker and slow suites only when EXPR names them."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO, run


def collected(*args: str) -> set[str]:
    out = run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
    ).stdout
    return {line.split("::")[0] for line in out.splitlines() if "::" in line}


@pytest.mark.parametrize(
    ("expression", "included", "excluded"),
    [
        (
            "integration",
            {"tests/test_dvc_pipeline.py"},
            {"tests/test_docker.py", "tests/test_user_workflows.py"},
        ),
        (
            "not integration",
            {"tests/test_params.py"},
            {"tests/test_docker.py", "tests/test_dvc_pipeline.py"},
        ),
        ("docker", {"tests/test_docker.py"}, {"tests/test_params.py"}),
        ("slow", {"tests/test_user_workflows.py"}, {"tests/test_docker.py"}),
    ],
)
def test_marker_expression_selects(expression: str, included: set[str], excluded: set[str]) -> None:
    files = collected("-m", expression)
    assert included <= files
    assert not files & excluded
