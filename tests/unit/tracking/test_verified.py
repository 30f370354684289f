"""The stamp of what `make run`'s check verified: any change to what it rests on voids it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlpipeline.tracking import verified
from mlpipeline.tracking.store import FAILED_MARKERS

MODEL_FILE = "mlartifacts/models/m-1/artifacts/model.skops"


def verified_project(root: Path) -> tuple[str, list[Path]]:
    """A repository as the full check leaves it: a store, a model's files, the inputs; stamped."""
    (root / "models").mkdir(parents=True)
    (root / "params.yaml").write_text("train:\n  n_estimators: 100\n")
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (root / "models/mlflow_run.json").write_text('{"run_id": "abc", "model_uri": "models:/m-1"}')
    model = root / MODEL_FILE
    model.parent.mkdir(parents=True)
    model.write_bytes(b"forest" * 1000)
    (model.parent / "MLmodel").write_text("flavors: {}\n")
    with sqlite3.connect(root / "mlflow.db") as connection:
        connection.execute("CREATE TABLE runs (run_uuid TEXT, status TEXT)")
        connection.execute("INSERT INTO runs VALUES ('abc', 'FINISHED')")
    connection.close()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    folders = [model.parent]
    verified.record(verified.state(uri, folders, root), root)
    return uri, folders


def write_to_store(root: Path) -> None:
    with sqlite3.connect(root / "mlflow.db") as connection:
        connection.execute("INSERT INTO runs VALUES ('def', 'RUNNING')")
    connection.close()


def replace_store_by_a_copy(root: Path) -> None:
    """The same bytes in a new file, as a restored backup."""
    db = root / "mlflow.db"
    shutil.copy2(db, root / "backup.db")
    (root / "backup.db").replace(db)


def rewrite_model_in_place(root: Path) -> None:
    """Other bytes, same size and mtime: only the checksum tells."""
    model = root / MODEL_FILE
    before = model.stat()
    model.write_bytes(b"garden" * 1000)
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))


def edit(relative: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / relative
        path.write_text(path.read_text() + "# edited\n")

    return change


def leave_failed_marker(root: Path) -> None:
    marker = root / FAILED_MARKERS / "abc"
    marker.parent.mkdir(parents=True)
    marker.touch()


@pytest.mark.parametrize(
    "change",
    [
        write_to_store,
        replace_store_by_a_copy,
        lambda root: (root / "mlflow.db").unlink(),
        rewrite_model_in_place,
        lambda root: (root / MODEL_FILE).unlink(),
        lambda root: shutil.rmtree(root / "mlartifacts"),
        edit("dvc.lock"),
        edit("params.yaml"),
        edit("models/mlflow_run.json"),
        leave_failed_marker,
    ],
    ids=[
        "store-written",
        "store-replaced",
        "store-deleted",
        "model-rewritten",
        "model-file-deleted",
        "artifacts-deleted",
        "lock-edited",
        "params-edited",
        "run-info-edited",
        "failed-marker",
    ],
)
def test_any_change_voids_the_stamp(tmp_path: Path, change: Callable[[Path], None]) -> None:
    uri, _ = verified_project(tmp_path)
    assert verified.unchanged(uri, tmp_path)
    change(tmp_path)
    assert not verified.unchanged(uri, tmp_path)


def test_no_stamp_a_damaged_one_or_another_store_is_no_proof(tmp_path: Path) -> None:
    uri, _ = verified_project(tmp_path)
    assert not verified.unchanged(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    assert not verified.unchanged("http://127.0.0.1:5000", tmp_path)
    stamp = verified.stamp_path(tmp_path)
    stamp.write_text(stamp.read_text()[:-20])
    assert not verified.unchanged(uri, tmp_path)
    verified.forget(tmp_path)
    assert not verified.unchanged(uri, tmp_path)


def test_a_stamp_without_models_is_no_proof(tmp_path: Path) -> None:
    uri, _ = verified_project(tmp_path)
    verified.record(verified.state(uri, [], tmp_path), tmp_path)
    assert not verified.unchanged(uri, tmp_path)


def test_only_a_local_artifact_store_is_stamped() -> None:
    assert verified.local_folder("file:///srv/my%20store/1/models/m-1/artifacts") == Path(
        "/srv/my store/1/models/m-1/artifacts"
    )
    assert verified.local_folder("s3://bucket/1/models/m-1/artifacts") is None
    assert verified.local_folder("mlflow-artifacts:/1/models/m-1/artifacts") is None


def test_the_check_with_nothing_changed_imports_no_mlflow_pandas_or_sklearn(
    tmp_path: Path,
) -> None:
    """What makes the fast path fast (benchmarks: `make run` with nothing to do)."""
    uri, _ = verified_project(tmp_path)
    code = (
        "import json, sys; from pathlib import Path\n"
        "import mlpipeline.cli, mlpipeline.commands.preflight\n"
        "from mlpipeline.tracking import verified\n"
        f"assert verified.unchanged({uri!r}, Path({str(tmp_path)!r}))\n"
        "heavy = ('mlflow', 'pandas', 'sklearn', 'pydantic', 'sqlalchemy', 'urllib.request')\n"
        "print(json.dumps(sorted(name for name in heavy if name in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
