"""File I/O: atomic replacement, table round trips, and pickles that depend only on values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from stages.io import (
    atomic_dir,
    atomic_path,
    dump_object,
    file_md5,
    load_object,
    read_json,
    read_table,
    write_json,
    write_table,
)
from stages.load import TARGET, load_iris_frame
from stages.preprocess import make_scaler
from stages.save import bundle_pipeline


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
