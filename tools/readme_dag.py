"""README's pipeline diagram, kept equal to `dvc dag --md`: `make readme-dag` rewrites it.

The diagram goes stale whenever the DAG changes: a stage in dvc.yaml, or data the user
tracks with `dvc add` (its `.dvc` file becomes a node upstream of load).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- dag:start.*?-->\n)(.*?)(<!-- dag:end -->)", re.S)
COMMAND = "make readme-dag"


def dvc_dag(root: Path = ROOT) -> str:
    """The DAG as DVC draws it, a mermaid block."""
    # The venv's dvc, also when the venv is not on PATH (`.venv/bin/python -m pytest`).
    beside = Path(sys.executable).with_name("dvc")
    dvc = str(beside) if beside.exists() else shutil.which("dvc") or "dvc"
    return subprocess.run(
        [dvc, "dag", "--md"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def readme_dag(text: str) -> str | None:
    """The diagram between README's dag markers, or None when the markers are gone."""
    match = BLOCK.search(text)
    return match.group(2).strip() if match else None


def with_dag(text: str, dag: str) -> str:
    """README text with the diagram between its markers replaced by `dag`."""
    if not BLOCK.search(text):
        raise ValueError("README.md has no <!-- dag:start --> ... <!-- dag:end --> block")
    return BLOCK.sub(lambda match: f"{match.group(1)}{dag}\n{match.group(3)}", text, count=1)


def main() -> None:
    text = README.read_text()
    updated = with_dag(text, dvc_dag())
    if updated != text:
        README.write_text(updated)
        print(f"{README.name}: the pipeline diagram now matches `dvc dag --md`")
    else:
        print(f"{README.name}: the pipeline diagram is up to date")


if __name__ == "__main__":
    main()
