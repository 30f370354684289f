"""ZenML's local_docker orchestrator mounts its local stores folder read-write into every
step container: a containerised run points it at a new empty private folder, removed after."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zenml_pipeline.__main__ import empty_local_stores

STORES = "ZENML_LOCAL_STORES_PATH"


def test_a_containerised_run_mounts_a_new_empty_private_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path))
    monkeypatch.setenv(STORES, str(tmp_path / "local_stores"))
    with empty_local_stores(True):
        folder = Path(os.environ[STORES])
        assert folder.parent == tmp_path and folder.name.startswith("step-mount-")
        assert list(folder.iterdir()) == []
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        (folder / "left-by-a-step").write_text("x")
    assert os.environ[STORES] == str(tmp_path / "local_stores")
    assert not folder.exists()


def test_a_run_on_this_machine_keeps_zenmls_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path))
    monkeypatch.delenv(STORES, raising=False)
    with empty_local_stores(False):
        assert STORES not in os.environ
    assert list(tmp_path.iterdir()) == []
