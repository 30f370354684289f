""".ci/ci-setup.sh and .ci/run install packages through .ci/apt-install.sh, which waits
for another apt/dpkg process to release its locks instead of failing at once.

Marked `docker`: it needs root and Debian's mirror, like .ci/ci-setup.sh itself, and runs
in `make test-docker`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO
from tests.support.tools import run

pytestmark = [pytest.mark.docker, pytest.mark.integration]

DPKG_FRONTEND_LOCK = "/var/lib/dpkg/lock-frontend"
APT_LISTS_LOCK = "/var/lib/apt/lists/lock"
# An installed package: installing it again takes apt's locks but downloads nothing.
INSTALLED = "make"
# apt locks with fcntl (POSIX record locks), so the holder must too; `flock` would not block it.
HOLD_LOCKS = """
import fcntl, sys, time
files = [open(path, "a") for path in sys.argv[2:]]
for lock in files:
    fcntl.lockf(lock, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
"""


@pytest.mark.parametrize("script", [".ci/ci-setup.sh", ".ci/run"])
def test_every_apt_get_goes_through_the_waiting_installer(script: str) -> None:
    text = (REPO / script).read_text()
    commands = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in commands if re.search(r"\bapt(-get)?\s+(update|install)", line)]
    assert ".ci/apt-install.sh" in text
    installer = (REPO / ".ci" / "apt-install.sh").read_text()
    assert 'apt_get=(apt-get -qq -o "DPkg::Lock::Timeout=${timeout_s}")' in installer


@pytest.fixture
def held_locks() -> Iterator[subprocess.Popen]:
    """apt's lists lock and dpkg's frontend lock, held for a few seconds by another process."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("needs root on Debian, as .ci/ci-setup.sh does")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCKS, "6", APT_LISTS_LOCK, DPKG_FRONTEND_LOCK],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_apt_get_alone_fails_at_once_under_the_held_lock(held_locks: subprocess.Popen) -> None:
    refused = run(["apt-get", "install", "-y", INSTALLED], cwd=REPO, check=False, timeout=60)
    assert refused.returncode != 0
    assert "Could not get lock" in refused.stderr
    assert held_locks.poll() is None  # still held: the refusal was not a wait


def test_the_installer_waits_for_the_lock_and_succeeds(held_locks: subprocess.Popen) -> None:
    env = tool_env({"APT_LOCK_TIMEOUT": "120"})
    installed = run([".ci/apt-install.sh", INSTALLED], cwd=REPO, env=env, timeout=300)
    assert installed.returncode == 0
    assert held_locks.poll() is not None  # it finished only after the holder let go


def test_ci_installs_java_for_spark_when_missing() -> None:
    """The Spark engine's tests need a Java 17+ runtime; .ci/run installs Debian's."""
    text = (REPO / ".ci" / "run").read_text()
    guard = text.index("if ! command -v java >/dev/null; then")
    assert ".ci/apt-install.sh openjdk-17-jre-headless" in text[guard:].split("fi")[0]
    assert guard < text.index("make test-slow")
