"""README stays true to the repository: the DAG it shows and the commands it promises."""

from __future__ import annotations

import re

from tests.support.repository import REPO
from tools import readme_dag

README = (REPO / "README.md").read_text()


def test_readme_dag_matches_dvc() -> None:
    shown = readme_dag.readme_dag(README)
    assert shown is not None, "README has no dag:start/dag:end block"
    assert shown == readme_dag.dvc_dag(REPO), (
        f"README's pipeline diagram differs from `dvc dag --md`: run `{readme_dag.COMMAND}`"
    )


def test_readme_dag_rewrite_replaces_only_the_block() -> None:
    text = "intro\n<!-- dag:start (note) -->\nold\n<!-- dag:end -->\noutro\n"
    assert readme_dag.with_dag(text, "```mermaid\nnew\n```") == (
        "intro\n<!-- dag:start (note) -->\n```mermaid\nnew\n```\n<!-- dag:end -->\noutro\n"
    )


def test_readme_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    promised = set(re.findall(r"`make ([a-z-]+)`", README))
    assert {"run", "test", readme_dag.COMMAND.removeprefix("make ")} <= promised
    assert promised <= targets, f"README names missing targets: {promised - targets}"
