"""A registry after months of use: `mlpipeline model list` and `history` page newest first,
`card` and `promote` answer without listing every version, and the save stage's gate still
decides. The store is a built project's, its version 1 copied into VERSIONS versions
(benchmarks/registry_seed.py; the 10,000-version figures are `make bench`'s `registry`)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.registry_seed import seed_registry
from mlpipeline.tool_env import VENV_BIN, tool_env
from mlpipeline.tracking import model_versions
from tests.support.repository import clone_built
from tests.support.tools import run

# A built project and a dozen commands on a shared machine: minutes.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "iris_classifier"
VERSIONS = 1_000
RUNS = 2_000
MOVES = 45


@pytest.fixture(scope="module")
def seeded(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = clone_built(built_project, tmp_path_factory.mktemp("scale") / "project")
    run(["dvc", "repro", "--force"], cwd=root)  # version 1, in the copy's own store
    seed_registry(root / "mlflow.db", MODEL, VERSIONS, RUNS, moves=MOVES)
    return root


def model(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = tool_env({"PYTHONPATH": str(root)})  # the copy's package, so the copy's store
    return run([VENV_BIN / "mlpipeline", "model", *args], cwd=root, env=env, check=check)


def versions_listed(output: str) -> list[int]:
    lines = output.splitlines()
    assert lines[0].split()[:2] == ["version", "aliases"]
    return [int(line.split()[0]) for line in lines[1:] if line[:1].isdigit()]


def test_list_pages_newest_first(seeded: Path) -> None:
    first = model(seeded, "list").stdout
    assert versions_listed(first) == list(range(VERSIONS, VERSIONS - 20, -1))
    assert first.rstrip().endswith(f"older versions: --page 2 (or --before {VERSIONS - 19})")

    third = model(seeded, "list", "--limit", "7", "--page", "3").stdout
    assert versions_listed(third) == list(range(VERSIONS - 14, VERSIONS - 21, -1))

    # The 900 versions before it are skipped in two requests (model_versions.SKIP_CHUNK).
    assert model_versions.SKIP_CHUNK < VERSIONS - 100
    last = model(seeded, "list", "--limit", "100", "--page", str(VERSIONS // 100)).stdout
    assert versions_listed(last) == list(range(100, 0, -1))
    assert "older versions" not in last
    [champion] = [line for line in last.splitlines() if line.startswith("1 ")]
    assert champion.split()[1] == "champion"

    past = model(seeded, "list", "--limit", "100", "--page", "11", check=False)
    assert past.returncode == 1 and "Traceback" not in past.stderr
    assert "model 'iris_classifier' has no versions on page 11 (100 a page)" in past.stderr


def test_list_before_a_version_reads_no_deeper(seeded: Path) -> None:
    """`--before N`: the versions below N, newest first, the page after it `--before` its
    oldest; the same rows as the `--page` that holds them, with no gaps in the numbers."""
    middle = model(seeded, "list", "--limit", "7", "--before", "504").stdout
    assert versions_listed(middle) == list(range(503, 496, -1))
    assert middle.rstrip().endswith("older versions: --page 2 (or --before 497)")
    assert middle == model(seeded, "list", "--limit", "7", "--page", "72").stdout.replace(
        "--page 73", "--page 2"
    )
    oldest = model(seeded, "list", "--before", "3").stdout
    assert versions_listed(oldest) == [2, 1] and "older versions" not in oldest
    none = model(seeded, "list", "--before", "1", check=False)
    assert none.returncode == 1 and "Traceback" not in none.stderr
    assert "model 'iris_classifier' has no versions below version 1 on page 1" in none.stderr


def rows_built(call: Callable[[], object]) -> Counter[str]:
    """The rows of each table the store's ORM builds during `call` (SQLAlchemy's load event
    for every mapped class): what a command reads, whatever MLflow's calls are named."""
    from sqlalchemy import event
    from sqlalchemy.orm import Mapper

    built: Counter[str] = Counter()

    def count(target: object, context: object) -> None:
        built[getattr(type(target), "__tablename__", type(target).__name__)] += 1

    event.listen(Mapper, "load", count)
    try:
        call()
    finally:
        event.remove(Mapper, "load", count)
    return built


def test_a_page_reads_its_own_versions(seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Page 1 of `model list` builds its 20 versions (and the model's newest), not the
    thousands after them; its files check asks for their logged models in one search."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{seeded / 'mlflow.db'}")
    built = rows_built(lambda: model_versions.list_versions(MODEL, "accuracy"))
    assert 20 <= built["model_versions"] <= 25, built
    # Version 1's tags, copied to every version: ~20 a version.
    assert built["model_version_tags"] <= 25 * 25, built
    # All copies share version 1's logged model: one search finds it, not one lookup a row.
    assert built["logged_models"] == 1, built

    deep = rows_built(lambda: model_versions.list_versions(MODEL, "accuracy", before=3 + 20))
    assert 20 <= deep["model_versions"] <= 25, deep


def test_history_pages_newest_first(seeded: Path) -> None:
    first = model(seeded, "history", "--limit", "10").stdout.splitlines()
    assert first[0] == f"{MODEL}@champion: version 1"
    rows = [line for line in first[2:] if line[:1].isdigit()]
    assert len(rows) == 10 and rows == sorted(rows, reverse=True)
    assert first[-1] == "older moves: --page 2"
    last = model(seeded, "history", "--limit", "10", "--page", "5").stdout.splitlines()
    assert len([line for line in last[2:] if line[:1].isdigit()]) == MOVES - 40
    assert "older moves" not in last[-1]
    assert model(seeded, "history", "--json").stdout.count('"to_version"') == MOVES


def test_card_and_promote_answer_for_one_version(seeded: Path) -> None:
    card = model(seeded, "card", str(VERSIONS)).stdout
    assert card.startswith("#") and MODEL in card

    unknown = model(seeded, "promote", "99999", check=False)
    assert unknown.returncode == 1
    newest = ", ".join(str(v) for v in range(VERSIONS, VERSIONS - 10, -1))
    assert f"{MODEL} has no version 99999; its newest versions are: {newest}, ..." in (
        unknown.stderr
    )


def test_the_save_gate_decides_among_thousands(seeded: Path) -> None:
    """The save stage finds the version its run registered and the champion, nothing more."""
    saved = run([sys.executable, "-m", "stages.save"], cwd=seeded, env=tool_env())
    assert "registered iris_classifier version 1 (registered earlier from this run); now" in (
        saved.stderr
    )
