"""ZenML lists a run's packages with `uv pip freeze` from PATH; `make zenml`'s uv may be the
private one in .tools/, which `uv run` names in UV: the entry point puts it on PATH."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zenml_pipeline.__main__ import let_zenml_find_uv


def test_the_uv_that_started_the_run_goes_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / ".tools" / "bin"
    private.mkdir(parents=True)
    (private / "uv").write_text("#!/bin/sh\n")
    (private / "uv").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("UV", str(private / "uv"))
    assert shutil.which("uv") is None
    let_zenml_find_uv()
    assert shutil.which("uv") == str(private / "uv")


def test_a_uv_already_on_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in ("on_path", "private"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "uv").write_text("#!/bin/sh\n")
        (tmp_path / folder / "uv").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "on_path"))
    monkeypatch.setenv("UV", str(tmp_path / "private" / "uv"))
    let_zenml_find_uv()
    assert shutil.which("uv") == str(tmp_path / "on_path" / "uv")
