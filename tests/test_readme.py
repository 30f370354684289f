"""README stays true to the repository: the DAG it shows and the commands it promises."""

from __future__ import annotations

import re

from tests.conftest import REPO, run

README = (REPO / "README.md").read_text()


def test_readme_dag_matches_dvc() -> None:
    block = re.search(r"<!-- dag:start.*?-->\n(.*?)<!-- dag:end -->", README, re.S)
    assert block, "README has no dag:start/dag:end block"
    dag = run(["dvc", "dag", "--md"], cwd=REPO).stdout
    assert block.group(1).strip() == dag.strip()


def test_readme_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    promised = set(re.findall(r"`make ([a-z-]+)`", README))
    assert {"run", "test"} <= promised
    assert promised <= targets, f"README names missing targets: {promised - targets}"
