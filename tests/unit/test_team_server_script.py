"""docker/mlflow-team-server.sh without a server: what it writes into MLflow's auth config.

`mlflow` on PATH is replaced by a script that copies the config file it is given and exits,
so these tests read what the real server would read, and check the file is gone afterwards.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.repository import REPO

SCRIPT = REPO / "docker" / "mlflow-team-server.sh"


def start(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    seen = tmp_path / "seen.ini"
    fake = bin_dir / "mlflow"
    fake.write_text(f'#!/bin/sh\ncp "$MLFLOW_AUTH_CONFIG_PATH" "{seen}"\n')
    fake.chmod(0o755)
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-password",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret",
        **env,
    }
    proc = subprocess.run(
        ["sh", SCRIPT], env=environment, capture_output=True, text=True, timeout=60
    )
    return proc, seen


def test_a_good_login_is_remembered_for_a_minute_by_default(tmp_path: Path) -> None:
    proc, seen = start(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "auth_cache_ttl_seconds = 60\n" in seen.read_text()
    assert not list(tmp_path.glob("mlflow-auth.*"))  # removed when the server exits


def test_the_cache_can_be_turned_off(tmp_path: Path) -> None:
    proc, seen = start(tmp_path, MLFLOW_AUTH_CACHE_TTL_SECONDS="0")
    assert proc.returncode == 0, proc.stderr
    assert "auth_cache_ttl_seconds = 0\n" in seen.read_text()


@pytest.mark.parametrize("value", ["sixty", "-1", "1.5"])
def test_a_bad_cache_setting_is_one_line_before_any_file(tmp_path: Path, value: str) -> None:
    proc, seen = start(tmp_path, MLFLOW_AUTH_CACHE_TTL_SECONDS=value)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "mlflow-team-server: MLFLOW_AUTH_CACHE_TTL_SECONDS must be a whole number of seconds,"
        f" not {value}"
    ]
    assert not seen.exists()
    assert not list(tmp_path.glob("mlflow-auth.*"))
