"""File I/O: atomic replacement, table round trips, and pickles that depend only on values."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from mlpipeline.domain.dataset import TARGET, load_iris_frame
from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.preprocessing import make_scaler
from mlpipeline.domain.training import bundle_pipeline
from mlpipeline.files.hashes import file_md5
from mlpipeline.files.outputs import (
    StagedOutputs,
    read_json,
    remove_leftovers,
    staged_outputs,
    write_table,
)
from mlpipeline.files.pickles import load_object
from mlpipeline.files.tables import read_table
from tests.support.files import mode, tree_snapshot


# One output written all-or-nothing, as a stage with a single output would write it.
@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    with staged_outputs() as outputs:
        yield outputs.file(path)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    with staged_outputs() as outputs:
        yield outputs.folder(path)


def write_json(path: Path, data: object) -> None:
    with staged_outputs() as outputs:
        outputs.json(path, data)


def dump_object(path: Path, obj: object) -> None:
    with staged_outputs() as outputs:
        outputs.pickle(path, obj)


class KilledMidwayError(Exception):
    """Stands for whatever stops a stage midway."""


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# --- atomic_path


def test_atomic_path_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "metrics.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target
        tmp.write_text("new")
        assert not target.exists()  # nothing visible until the block succeeds
    assert target.read_text() == "new"
    assert listing(target.parent) == ["metrics.json"]


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(KilledMidwayError), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise KilledMidwayError
    assert target.read_text() == "old"
    assert listing(tmp_path) == ["metrics.json"]  # no temporary file left behind


def test_atomic_path_creates_nothing_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "model.pkl"
    with pytest.raises(KilledMidwayError), atomic_path(target):
        raise KilledMidwayError
    assert listing(tmp_path) == []


# --- atomic_dir


def test_atomic_dir_replaces_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "plots" / "roc"
    folder.mkdir(parents=True)
    (folder / "stale.csv").write_text("old class")
    with atomic_dir(folder) as tmp:
        assert listing(tmp) == []
        (tmp / "setosa.csv").write_text("fpr,tpr\n")
        assert listing(folder) == ["stale.csv"]  # the old folder stays until the block succeeds
    assert listing(folder) == ["setosa.csv"]
    assert listing(folder.parent) == ["roc"]


def test_atomic_dir_creates_a_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    with atomic_dir(folder) as tmp:
        (tmp / "roc.png").write_bytes(b"png")
    assert listing(folder) == ["roc.png"]
    assert listing(tmp_path) == ["images"]


def test_atomic_dir_keeps_the_old_folder_when_the_block_raises(tmp_path: Path) -> None:
    folder = tmp_path / "roc"
    folder.mkdir()
    (folder / "setosa.csv").write_text("old")
    with pytest.raises(KilledMidwayError), atomic_dir(folder) as tmp:
        (tmp / "virginica.csv").write_text("new")
        raise KilledMidwayError
    assert listing(folder) == ["setosa.csv"]
    assert (folder / "setosa.csv").read_text() == "old"
    assert listing(tmp_path) == ["roc"]


# --- json and tables


def test_write_json_is_stable_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "metrics" / "metrics.json"
    data = {"f1_macro": 0.5, "accuracy": 1.0, "per_class": {"b": 1, "a": 2}}
    write_json(path, data)
    text = path.read_text()
    assert text.endswith("}\n")
    assert text.index('"accuracy"') < text.index('"f1_macro"') < text.index('"per_class"')
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert read_json(path) == data


@pytest.mark.parametrize("name", ["dataset.csv", "train.parquet"])
def test_tables_round_trip(tmp_path: Path, name: str) -> None:
    frame = pd.DataFrame(
        {"sepal_length": [5.1, 4.9, 6.3], "petals": [1, 2, 3], TARGET: ["a", "b", "a"]}
    )
    path = tmp_path / "data" / name
    write_table(path, frame)
    pd.testing.assert_frame_equal(read_table(path), frame)
    assert listing(path.parent) == [name]


def test_table_format_follows_the_suffix(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0], TARGET: ["a"]})
    write_table(tmp_path / "t.parquet", frame)
    write_table(tmp_path / "t.csv", frame)
    assert (tmp_path / "t.parquet").read_bytes().startswith(b"PAR1")
    assert (tmp_path / "t.csv").read_text() == f"x,{TARGET}\n1.0,a\n"


# --- pickles


@pytest.fixture(scope="module")
def iris_xy() -> tuple[pd.DataFrame, pd.Series]:
    frame = load_iris_frame()
    return frame.drop(columns=[TARGET]), frame[TARGET]


def forest(iris_xy: tuple[pd.DataFrame, pd.Series]) -> RandomForestClassifier:
    features, labels = iris_xy
    return RandomForestClassifier(n_estimators=25, max_depth=5, random_state=42).fit(
        features, labels
    )


def test_identical_forests_give_identical_files(tmp_path: Path, iris_xy) -> None:
    dump_object(tmp_path / "first.pkl", forest(iris_xy))
    dump_object(tmp_path / "second.pkl", forest(iris_xy))
    assert (tmp_path / "first.pkl").read_bytes() == (tmp_path / "second.pkl").read_bytes()


def test_a_loaded_forest_dumps_to_the_same_bytes(tmp_path: Path, iris_xy) -> None:
    features, _ = iris_xy
    model = forest(iris_xy)
    dump_object(tmp_path / "model.pkl", model)
    loaded = load_object(tmp_path / "model.pkl")
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    dump_object(tmp_path / "again.pkl", loaded)
    assert (tmp_path / "again.pkl").read_bytes() == (tmp_path / "model.pkl").read_bytes()


def test_a_pipeline_of_loaded_parts_dumps_like_a_fresh_one(tmp_path: Path, iris_xy) -> None:
    # The save stage bundles parts loaded from models/; ZenML bundles the fitted objects.
    features, _ = iris_xy
    scaler = make_scaler("standard").fit(features)
    model = forest(iris_xy)
    dump_object(tmp_path / "scaler.pkl", scaler)
    dump_object(tmp_path / "classifier.pkl", model)
    loaded = bundle_pipeline(
        load_object(tmp_path / "scaler.pkl"), load_object(tmp_path / "classifier.pkl")
    )
    dump_object(tmp_path / "fresh.pkl", bundle_pipeline(scaler, model))
    dump_object(tmp_path / "loaded.pkl", loaded)
    assert (tmp_path / "fresh.pkl").read_bytes() == (tmp_path / "loaded.pkl").read_bytes()


def test_dump_object_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    dump_object(path, {"version": 1})

    class Unpicklable:
        def __reduce__(self):
            raise KilledMidwayError

    with pytest.raises(KilledMidwayError):
        dump_object(path, {"version": 2, "part": Unpicklable()})
    assert load_object(path) == {"version": 1}
    assert listing(tmp_path) == ["model.pkl"]


@pytest.mark.parametrize("size", [0, 10, (1 << 20) + 3])
def test_file_md5(tmp_path: Path, size: int) -> None:
    content = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path = tmp_path / "blob"
    path.write_bytes(content)
    assert file_md5(path) == hashlib.md5(content).hexdigest()


# --- staged_outputs: all of a stage's outputs, or none


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def old_outputs(root: Path) -> dict[str, Path]:
    """One output of each kind, holding "old" content."""
    paths = {
        "json": root / "metrics" / "metrics.json",
        "table": root / "plots" / "predictions.csv",
        "pickle": root / "models" / "model.pkl",
        "folder": root / "plots" / "roc",
    }
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "folder":
            path.mkdir()
            (path / "setosa.csv").write_text("old curve")
        else:
            path.write_text(f"old {name}")
    return paths


def stage_all(outputs: StagedOutputs, paths: dict[str, Path]) -> None:
    outputs.json(paths["json"], {"accuracy": 1.0})
    outputs.table(paths["table"], pd.DataFrame({"actual": ["a"], "predicted": ["a"]}))
    outputs.pickle(paths["pickle"], {"version": 2})
    (outputs.folder(paths["folder"]) / "virginica.csv").write_text("new curve")


def test_staged_outputs_replace_every_output(tmp_path: Path) -> None:
    paths = old_outputs(tmp_path)
    with staged_outputs() as outputs:
        stage_all(outputs, paths)
        assert paths["json"].read_text() == "old json"  # nothing moves before the block ends
    assert read_json(paths["json"]) == {"accuracy": 1.0}
    assert paths["table"].read_text() == "actual,predicted\na,a\n"
    assert load_object(paths["pickle"]) == {"version": 2}
    assert listing(paths["folder"]) == ["virginica.csv"]
    assert listing(tmp_path / "plots") == ["predictions.csv", "roc"]  # no temporaries left
    assert listing(tmp_path / "models") == ["model.pkl"]


def test_staged_outputs_keep_every_old_output_when_the_block_raises(tmp_path: Path) -> None:
    paths = old_outputs(tmp_path)
    before = tree_snapshot(tmp_path)
    with pytest.raises(KilledMidwayError), staged_outputs() as outputs:
        stage_all(outputs, paths)
        raise KilledMidwayError
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("blocked", ["json", "table", "pickle"])
def test_a_failed_move_puts_back_the_outputs_already_moved(tmp_path: Path, blocked: str) -> None:
    # A folder where an output file must go: its move fails after the earlier ones succeeded.
    paths = old_outputs(tmp_path)
    paths[blocked].unlink()
    paths[blocked].mkdir()
    (paths[blocked] / "in the way").write_text("")
    before = tree_snapshot(tmp_path)
    expected = "previous outputs are left as they were"
    with pytest.raises(PipelineError, match=expected) as raised, staged_outputs() as outputs:
        stage_all(outputs, paths)
    assert paths[blocked].name in str(raised.value)
    assert tree_snapshot(tmp_path) == before


def test_an_output_staged_twice_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already staged"), staged_outputs() as outputs:
        outputs.text(tmp_path / "a.txt", "one")
        outputs.text(tmp_path / "a.txt", "two")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("mask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_new_outputs_get_the_modes_of_a_plain_open(
    tmp_path: Path, mask: int, file_mode: int, folder_mode: int
) -> None:
    root = tmp_path / "fresh"
    with umask(mask):
        with staged_outputs() as outputs:
            outputs.json(root / "metrics.json", {})
            outputs.table(root / "train.parquet", pd.DataFrame({"x": [1.0]}))
            outputs.table(root / "predictions.csv", pd.DataFrame({"x": [1.0]}))
            outputs.pickle(root / "model.pkl", {})
            (outputs.folder(root / "images") / "roc.png").write_bytes(b"png")
        write_json(root / "single.json", {})
    for name in ["metrics.json", "train.parquet", "predictions.csv", "model.pkl", "single.json"]:
        assert mode(root / name) == file_mode, name
    assert mode(root / "images") == folder_mode
    assert mode(root / "images" / "roc.png") == file_mode


def test_replaced_outputs_keep_their_modes(tmp_path: Path) -> None:
    paths = old_outputs(tmp_path)
    kept = {"json": 0o604, "table": 0o640, "pickle": 0o600, "folder": 0o750}
    for name, kept_mode in kept.items():
        paths[name].chmod(kept_mode)
    with umask(0o022), staged_outputs() as outputs:
        stage_all(outputs, paths)
    assert {name: mode(paths[name]) for name in kept} == kept
    assert read_json(paths["json"]) == {"accuracy": 1.0}


def test_leftovers_of_an_interrupted_write_are_removed(tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    plots.mkdir()
    leftovers = [
        ".images.0a1b2c3d.tmp",  # a killed evaluate's temporary folder
        ".images.0a1b2c3d.old.tmp",  # and its backup of the previous folder
        ".predictions.csv.x7_kq2ab.tmp",  # a temporary file
    ]
    for name in leftovers:
        if "images" in name:
            (plots / name).mkdir()
            (plots / name / "roc.png").write_bytes(b"half")
        else:
            (plots / name).write_text("half")
    (plots / "images").mkdir()
    kept = [".gitignore", ".images-notes", "images.0a1b2c3d.tmp", ".images.csv.tmp.bak"]
    for name in kept:
        (plots / name).write_text("not ours")
    with staged_outputs() as outputs:
        outputs.table(plots / "predictions.csv", pd.DataFrame({"x": [1]}))
        outputs.folder(plots / "images")
    assert listing(plots) == sorted([*kept, "images", "predictions.csv"])


def test_a_folder_left_only_as_a_backup_is_put_back(tmp_path: Path) -> None:
    # Killed between moving the old folder aside and moving the new one in.
    backup = tmp_path / ".roc.0a1b2c3d.old.tmp"
    backup.mkdir()
    (backup / "setosa.csv").write_text("old curve")
    (tmp_path / ".roc.9f8e7d6c.tmp").mkdir()  # the new folder, maybe incomplete
    remove_leftovers(tmp_path / "roc")
    assert listing(tmp_path) == ["roc"]
    assert (tmp_path / "roc" / "setosa.csv").read_text() == "old curve"
