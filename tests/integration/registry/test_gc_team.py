"""`mlpipeline model gc` against the team stack's storage: an `mlflow server` whose backend
store is a real PostgreSQL and whose artifacts are in an S3 bucket (moto's server), both
without Docker (tests/support/team_parts.py).

Three versions trained by `dvc repro` and `dvc exp run` through the server
(tests/support/retention.py); the dry run changes neither the database nor the bucket, nor
does `--yes` without the server's database, which it refuses; with it, `--yes` removes the
doomed version's rows from PostgreSQL and its run's and logged model's objects from the
bucket, nothing else; the kept versions still load through the server and one is rebuilt
bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support import team_parts
from tests.support.repository import copy_repository
from tests.support.retention import MODEL, train_versions
from tests.support.team_parts import Postgres, TeamServer
from tests.support.tools import run

# Three pipeline runs and a rebuild through a server: 3 min at load 4-12, 9-10 min at load 11-30.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

BUCKET = team_parts.ARTIFACTS_BUCKET
# Tables of MLflow's schema that name a run or a logged model (checked after the gc).
RUN_TABLES = ("runs", "metrics", "latest_metrics", "params", "tags", "inputs")
VERSION_ROWS = "SELECT name, version, current_stage, source, run_id FROM model_versions"
VERSION_TAGS = "SELECT name, version, count(*) FROM model_version_tags GROUP BY name, version"
MODEL_TABLES = ("logged_models", "logged_model_tags", "logged_model_params", "logged_model_metrics")


@pytest.fixture(scope="module")
def team_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    """`mlflow server` on PostgreSQL with artifacts proxied to s3://BUCKET/artifacts."""
    with team_parts.mlflow_on_postgres_and_s3(tmp_path_factory.mktemp("gc-team")) as server:
        yield server


def rows(postgres: Postgres, query: str, *args: object) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(postgres.uri) as connection, connection.cursor() as cursor:
        cursor.execute(query, args)
        return cursor.fetchall()


def bucket_keys(store: TeamServer) -> set[str]:
    client = team_parts.s3_client(store.s3, store.credentials)
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def database(store: TeamServer) -> dict[str, set]:
    """What gc may touch in PostgreSQL: versions, runs with their stage, logged models, and
    every row of the other tables that names a run or a logged model."""
    state: dict[str, set] = {
        "versions": set(rows(store.postgres, VERSION_ROWS)),
        "runs": set(rows(store.postgres, "SELECT run_uuid, lifecycle_stage FROM runs")),
        "version tags": set(rows(store.postgres, VERSION_TAGS)),
    }
    for table in RUN_TABLES[1:]:
        column = "destination_id" if table == "inputs" else "run_uuid"
        state[table] = set(
            rows(store.postgres, f"SELECT {column}, count(*) FROM {table} GROUP BY {column}")
        )
    for table in MODEL_TABLES:
        state[table] = set(
            rows(store.postgres, f"SELECT model_id, count(*) FROM {table} GROUP BY model_id")
        )
    return state


def listed(output: str, kind: str) -> set[str]:
    pattern = rf"^(?:would delete|deleting)  {kind}\s+(\S+)  \("
    return set(re.findall(pattern, output, flags=re.MULTILINE))


def test_gc_on_postgres_and_s3_deletes_rows_and_objects_and_kept_versions_rebuild(
    team_store: TeamServer, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    # A member's client: the server's URL, no S3 credentials (the server proxies artifacts).
    env = tool_env({"MLFLOW_TRACKING_URI": team_store.url})
    root = copy_repository(tmp_path / "project")
    assert train_versions(root, (20, 30), env) == ["1", "2", "3"]

    client = MlflowClient(tracking_uri=team_store.url, registry_uri=team_store.url)
    version = {v: client.get_model_version(MODEL, v) for v in ("1", "2", "3")}
    doomed_run = version["2"].run_id
    doomed_model = version["2"].source.removeprefix("models:/")
    kept = {v: (mv.run_id, mv.source.removeprefix("models:/")) for v, mv in version.items()}
    del kept["2"]

    keys, db = bucket_keys(team_store), database(team_store)
    assert any(doomed_run in key for key in keys), sorted(keys)[:20]
    assert any(doomed_model in key for key in keys), sorted(keys)[:20]
    assert (doomed_run, "active") in db["runs"]
    assert any(model_id == doomed_model for model_id, _ in db["logged_models"])

    gc = [VENV_BIN / "python", "-m", "mlpipeline", "model", "gc"]
    dry = run(gc, cwd=root, env=env).stdout
    assert listed(dry, "version") == {f"{MODEL}/2"}, dry
    assert listed(dry, "run") == {doomed_run}, dry
    assert listed(dry, "logged model") == {doomed_model}, dry
    assert (bucket_keys(team_store), database(team_store)) == (keys, db), "the dry run changed"

    # Without the server's database `--yes` refuses, before deleting anything.
    refused = run([*gc, "--yes"], cwd=root, env=env, check=False)
    assert refused.returncode == 1 and "--backend-store-uri" in refused.stderr, refused.stderr
    assert (bucket_keys(team_store), database(team_store)) == (keys, db), "the refusal changed"

    # Purging goes through the server's database, named by the documented variable.
    purge_env = tool_env(
        {"MLFLOW_TRACKING_URI": team_store.url, "MLFLOW_BACKEND_STORE_URI": team_store.postgres.uri}
    )
    deleted = run([*gc, "--yes"], cwd=root, env=purge_env)
    assert listed(deleted.stdout, "version") == {f"{MODEL}/2"}, deleted.stdout

    after_keys, after = bucket_keys(team_store), database(team_store)
    gone_keys = keys - after_keys
    assert after_keys <= keys
    assert gone_keys, "no object left the bucket"
    assert all(doomed_run in key or doomed_model in key for key in gone_keys), sorted(gone_keys)
    assert not [key for key in after_keys if doomed_run in key or doomed_model in key]
    # MLflow keeps a deleted version's row as a tombstone, redacted, so that its number is
    # never given again; its tags go.
    tombstone = (MODEL, 2, "Deleted_Internal", "REDACTED-SOURCE-PATH", "REDACTED-RUN-ID")
    assert after["versions"] == {row for row in db["versions"] if row[1] != 2} | {tombstone}
    assert after["runs"] == db["runs"] - {(doomed_run, "active")}
    assert after["version tags"] == {row for row in db["version tags"] if row[:2] != (MODEL, 2)}
    # Rows naming the doomed run or logged model (`inputs`: the links MLflow's gc leaves and
    # gc removes after it) are gone; every other row is as it was.
    doomed = {doomed_run, doomed_model}
    for table in (*RUN_TABLES[1:], *MODEL_TABLES):
        assert after[table] == {row for row in db[table] if row[0] not in doomed}, table
    for run_id, model_id in kept.values():
        assert any(run_id in key for key in after_keys)
        assert any(model_id in key for key in after_keys)
    # Left: only the removed experiment's DVC data, which the next gc collects.
    again = run(gc, cwd=root, env=env).stdout.splitlines()
    assert [line for line in again if line.startswith("would delete")] == [
        line for line in again if line.startswith("would delete  dvc cache")
    ], again

    # The kept versions load through the server, and the newest one rebuilds bit for bit.
    script = "; ".join(
        [
            "import mlflow, pandas as pd",
            "data = pd.read_csv('data/raw/dataset.csv').drop(columns=['target'])",
            *(
                f"print(len(mlflow.pyfunc.load_model('models:/{MODEL}/{v}').predict(data)))"
                for v in kept
            ),
        ]
    )
    loaded = run([VENV_BIN / "python", "-c", script], cwd=root, env=env).stdout.split()
    assert loaded == ["150", "150"], loaded
    rebuilt = run([*gc[:-1], "reproduce", f"models:/{MODEL}/3"], cwd=root, env=env)
    assert "OK: all" in rebuilt.stdout, rebuilt.stdout
