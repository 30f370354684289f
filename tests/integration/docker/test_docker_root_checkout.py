"""A checkout owned by root, end to end, the way docs/deploy.md ("A checkout owned by root")
says: `make up` refuses it in one line; after the chown root's own git accepts it once told
(`safe.directory`); a root dvc command then leaves root-owned files in it, and the next
`make up` gives them back to the owner, so the pipeline's container, running as the owner,
builds every output.

Runs as root (the premise: a machine where the shell is root's), with compose for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.compose import APP_UID, IMAGE, UP_TIMEOUT_S, ComposeProject, base_image
from tests.support.repository import copy_repository
from tests.support.servers import free_port
from tests.support.team import COMPOSE
from tests.support.tools import run

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(1800)]


def root_owned(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.lstat().st_uid == 0]


def make_up(stack: ComposeProject) -> subprocess.CompletedProcess[str]:
    return run(
        ["make", "--no-print-directory", "up", "SERVICES=app"],
        cwd=stack.project,
        env=stack.env,
        check=False,
        timeout=UP_TIMEOUT_S,
    )


def wait_for_the_pipeline(stack: ComposeProject) -> None:
    """Until the app job (dvc repro against the mlflow service) exits; fails if not with 0."""
    deadline = time.monotonic() + UP_TIMEOUT_S
    while (state := stack.state("app")).get("Status") != "exited":
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(2)
    assert state["ExitCode"] == 0, stack.logs(tail=80)


def test_a_root_owned_checkout_works_the_documented_way(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the scenario is a root shell's; make test-docker runs as root")
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is not installed; run docker/ci-setup.sh (make test-docker does)")
    project = copy_repository(tmp_path / "project")  # root's clone: every file root's
    home = tmp_path / "root-home"  # root's git config, apart from this machine's
    home.mkdir()
    env = tool_env(
        {
            "HOME": str(home),
            "COMPOSE_PROJECT_NAME": f"contactroot{os.getpid()}",
            "IMAGE": IMAGE,
            "BASE_IMAGE": base_image(),
            "MLFLOW_WORKERS": "1",
            **{name: str(free_port()) for name in ("MLFLOW_PORT", "SERVE_PORT", "JUPYTER_PORT")},
        }
    )
    stack = ComposeProject(project=project, env=env)
    try:
        # 1. The first `make up`: one line with the fix, and nothing started.
        refused = make_up(stack)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "make up: this checkout belongs to root" in refused.stderr
        assert "sudo chown -R 1000:1000 ." in refused.stderr
        assert stack.compose("ps", "-q").stdout.strip() == ""

        # 2. The chown; root's git then refuses the checkout until told it is safe.
        run(["chown", "-R", f"{APP_UID}:{APP_UID}", project], cwd=tmp_path)
        dubious = run(["git", "status", "--short"], cwd=project, env=env, check=False)
        assert dubious.returncode != 0 and "dubious ownership" in dubious.stderr
        run(["git", "config", "--global", "--add", "safe.directory", project], project, env)
        assert run(["git", "status", "--short"], cwd=project, env=env).stdout == ""

        # 3. A root dvc command leaves files of root's in the checkout.
        run(["dvc", "repro", "load"], cwd=project, env=env)
        left = root_owned(project)
        assert project / "data" / "raw" / "dataset.csv" in left, left

        # 4. The next `make up` gives them back and the pipeline runs as the owner.
        started = make_up(stack)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"back to its owner (uid {APP_UID})" in started.stdout
        assert root_owned(project) == []
        wait_for_the_pipeline(stack)
        for output in ("data/raw/dataset.csv", "metrics/metrics.json", "dvc.lock"):
            assert (project / output).stat().st_uid == APP_UID, output
    finally:
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)
