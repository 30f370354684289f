"""Fixtures shared by every suite: copies of the repository, built or not, and the selection
of the Docker and slow suites. The helpers behind them live in tests/support/."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.repository import clone_built, copy_repository
from tests.support.tools import run

# Suites that run only when a `-m` expression names them (`make test-docker`, `make
# test-slow`): a `-m` on the command line replaces addopts' `-m 'not docker and not slow'`,
# so `pytest -m integration` would otherwise also run the Docker tests (which need the
# images `make test-docker` builds) and the long workflow tests.
EXPLICIT_MARKERS = ("docker", "slow")

# The modules that take longest (CI's duration report), longest first. They run first, and
# the rest in collection order (integration modules, then the second-long unit tests), so
# that under `make test`'s two pytest-xdist workers (`--dist loadscope
# --no-loadscope-reorder`) no worker is left alone with a long module at the end of a suite.
# xdist's own order (most tests first) started the slow suite's three longest tests, one
# test each, last. xdist hands a worker its next module while its last two tests still run,
# so a long module handed late ends late. Update the list when the duration report shows a
# new long module.
LONGEST_FIRST = (
    # make test-slow, by their seconds in CI (two workers beside the Docker suite): gc's four
    # versions and rebuild (~320), the user's make test and bench (~310), the Spark cluster's
    # kills (~300), the challenger's story and the sweep's Ray trials (~250 each), then
    "tests/integration/registry/test_gc.py",
    "tests/integration/project/test_user_workflows.py",
    "tests/integration/scoring/test_score_spark_cluster.py",
    "tests/integration/scoring/test_challenger.py",
    "tests/integration/sweeps/test_sweep.py",
    # make test (CI's report of 2026-12-08, its 25 slowest summed per module, in s): the
    # experiments (107+), the ZenML runs (68+), the preflight's retrains (57+), the registry's
    # story (53+), the tracking store's failures (52+), the fault injections (36+), a champion
    # rebuilt from scratch (34+). In make test-slow the fault injections (~230) and the
    # tracking store's (~200) are long too: here they start before the slow suite's shorter
    # modules.
    "tests/integration/pipeline/test_dvc_pipeline.py",
    "tests/integration/zenml/test_zenml_pipeline.py",
    "tests/integration/checks/test_preflight.py",
    "tests/integration/registry/test_registry.py",
    "tests/integration/tracking/test_tracking_store.py",
    "tests/integration/tracking/test_faults.py",
    "tests/integration/pipeline/test_reproduce.py",
    # make test-slow again, ~90-190 s each
    "tests/integration/team/test_team_setup.py",
    "tests/integration/pipeline/test_several_machines.py",
    "tests/integration/project/test_fresh_clone.py",
    "tests/integration/scoring/test_score.py",
    "tests/integration/registry/test_gc_team.py",
    "tests/integration/registry/test_champion_history.py",
    "tests/integration/scoring/test_score_spark.py",
    "tests/integration/pipeline/test_unicode_path.py",
    "tests/integration/sweeps/test_sweep_local.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expression = config.getoption("markexpr") or ""
    unasked = [name for name in EXPLICIT_MARKERS if name not in expression]
    deselected = [item for item in items if any(item.get_closest_marker(m) for m in unasked)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    rank = {module: place for place, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git copy of the repository, outputs not yet built."""
    return copy_repository(tmp_path / "project")


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git copy on which `dvc repro` has run once, shared by the session.

    Tests may change it only if they put it back as it was (params, outputs, git state).
    """
    root = copy_repository(tmp_path_factory.mktemp("built") / "project")
    run(["dvc", "repro"], cwd=root)
    return root


@pytest.fixture
def baseline(built_project: Path, tmp_path: Path) -> Path:
    """A built copy without a store, its outputs committed as the experiments' baseline."""
    root = clone_built(built_project, tmp_path / "project")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "baseline outputs"], cwd=root)
    return root


@pytest.fixture
def dvc(project: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `dvc ARGS` in the project copy."""

    def _dvc(*args: str, check: bool = True, env: Mapping[str, str] | None = None):
        return run(["dvc", *args], cwd=project, env=env, check=check)

    return _dvc


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount when the test ends (tests run as root)."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)
