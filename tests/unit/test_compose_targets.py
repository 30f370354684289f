"""`make up` / `make down` run whichever Compose is installed: v2 (`docker compose`), else v1
(`docker-compose`, Debian 12's); with neither, one line and exit 2. Stand-in `docker` and
`docker-compose` scripts on an otherwise empty PATH play the installed tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.repository import REPO

MAKE = shutil.which("make") or "make"


def stand_in(folder: Path, name: str, exit_status: int) -> None:
    script = folder / name
    script.write_text(f"#!/bin/sh\nexit {exit_status}\n")
    script.chmod(0o755)


def make_dry_run(path: Path, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAKE, "--no-print-directory", "-n", target],
        cwd=REPO,
        env={"PATH": str(path), "HOME": str(path)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("docker_compose_works", "v1_installed", "expected"),
    [
        (True, True, "docker compose  up -d"),
        (True, False, "docker compose  up -d"),
        (False, True, "/docker-compose  up -d"),
    ],
    ids=["v2-and-v1", "v2-only", "v1-only"],
)
def test_up_runs_the_installed_compose(
    tmp_path: Path, docker_compose_works: bool, v1_installed: bool, expected: str
) -> None:
    stand_in(tmp_path, "docker", 0 if docker_compose_works else 1)
    if v1_installed:
        stand_in(tmp_path, "docker-compose", 0)
    planned = make_dry_run(tmp_path, "up")
    assert planned.returncode == 0, planned.stderr
    assert expected in planned.stdout, planned.stdout
    down = make_dry_run(tmp_path, "down").stdout
    assert expected.replace("up -d", "down") in down, down


def test_without_compose_up_says_so_in_one_line(tmp_path: Path) -> None:
    refused = subprocess.run(
        [MAKE, "--no-print-directory", "up"],
        cwd=REPO,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("neither `docker compose` (v2) nor `docker-compose` (v1)")
    assert refused.stderr.count("\n") <= 2, refused.stderr  # its line, and make's own
