"""Each MLflow stage opens its tracking store once (#13): one engine, one schema check.

Opening MLflow's SQLite store costs a schema check per store object; a stage that built a
second client on another URI spelling, or reset MLflow's caches, would pay it twice. The
stage runs in its own process, as DVC runs it, with MLflow's store constructors counted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.repository import clone_built
from tests.support.tools import run

pytestmark = pytest.mark.integration

# Runs `python -m stages.<stage>` with MLflow's store constructors wrapped in counters, and
# prints the counts as the last line of stderr.
COUNTING_RUNNER = """
import atexit, collections, json, runpy, sys
import mlflow.store.db.utils as db_utils
from mlflow.store.model_registry import sqlalchemy_store as registry_store
from mlflow.store.tracking import sqlalchemy_store as tracking_store

counts = collections.Counter()

def count(owner, name, key):
    original = getattr(owner, name)
    def counted(*args, **kwargs):
        counts[key] += 1
        return original(*args, **kwargs)
    setattr(owner, name, counted)

count(db_utils, "create_sqlalchemy_engine_with_retry", "engines")
count(registry_store, "create_sqlalchemy_engine_with_retry", "engines")
count(db_utils, "_verify_schema", "schema_checks")
count(tracking_store.SqlAlchemyStore, "__init__", "tracking_stores")
count(registry_store.SqlAlchemyStore, "__init__", "registry_stores")
atexit.register(lambda: print(json.dumps(counts), file=sys.stderr))
stage = sys.argv.pop()
runpy.run_module("stages." + stage, run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def opens(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = clone_built(built_project, tmp_path_factory.mktemp("opens") / "project")
    counted = {}
    for stage in ("train", "evaluate", "save"):
        proc = run([sys.executable, "-c", COUNTING_RUNNER, stage], cwd=root)
        counted[stage] = json.loads(proc.stderr.strip().splitlines()[-1])
    return counted


@pytest.mark.parametrize("stage", ["train", "evaluate", "save"])
def test_each_mlflow_stage_opens_the_store_once(opens: dict[str, dict], stage: str) -> None:
    counts = opens[stage]
    assert counts["tracking_stores"] == 1, counts
    assert counts["schema_checks"] == 1, counts
    # save also needs the model registry: MLflow keeps its own connection pool for it
    # (a second engine on the same database, no second schema check).
    registry = 1 if stage == "save" else 0
    assert counts.get("registry_stores", 0) == registry, counts
    assert counts["engines"] == 1 + registry, counts
