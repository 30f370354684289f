"""The `synthetic` load source: make_synthetic and its params."""

from __future__ import annotations

import pytest
import yaml

from mlpipeline.domain.dataset import TARGET, load_dataset, make_synthetic, validate_dataset
from mlpipeline.domain.errors import ParamsError
from mlpipeline.domain.params import LoadParams, SyntheticParams, validate_params
from mlpipeline.domain.preprocessing import preprocess
from tests.support.repository import IRIS_PARAMS


@pytest.mark.parametrize(
    ("rows", "features", "classes"),
    [(40, 4, 2), (120, 10, 3), (200, 3, 8), (60, 1, 2)],
)
def test_make_synthetic_has_the_requested_shape(rows: int, features: int, classes: int) -> None:
    frame = make_synthetic(rows, features, classes, random_state=0)
    assert frame.shape == (rows, features + 1)
    assert list(frame.columns)[-1] == TARGET
    assert sorted(frame[TARGET].unique()) == list(range(classes))
    validate_dataset(frame)


def test_make_synthetic_is_deterministic_per_seed() -> None:
    first = make_synthetic(100, 5, 3, random_state=7)
    assert first.equals(make_synthetic(100, 5, 3, random_state=7))
    assert not first.equals(make_synthetic(100, 5, 3, random_state=8))


def test_synthetic_source_feeds_the_pipeline() -> None:
    params = LoadParams(source="synthetic", synthetic={"rows": 300, "features": 6, "classes": 3})
    frame = load_dataset(params)
    assert len(frame) == 300
    base = validate_params(yaml.safe_load(IRIS_PARAMS.read_text()))
    train, test, _ = preprocess(frame, base.preprocess)
    assert len(train) + len(test) == 300


def test_defaults_fill_an_omitted_synthetic_block() -> None:
    assert LoadParams(source="synthetic").synthetic_shape() == SyntheticParams()


def test_iris_params_dump_as_before() -> None:
    # MLflow logs load.* params; runs that do not use synthetic keep their old set of keys.
    assert LoadParams(source="iris").model_dump() == {
        "source": "iris",
        "csv_path": None,
        "target_column": None,
    }


@pytest.mark.parametrize(
    ("synthetic", "message"),
    [
        ({"rows": 3}, "load.synthetic.rows"),
        ({"classes": 1}, "load.synthetic.classes"),
        ({"classes": 9, "features": 3}, "9 classes need at least 4 features"),
        ({"rows": 10, "classes": 6}, "too few for 6 classes"),
        ({"colour": "red"}, "allowed here: rows, features, classes, random_state"),
    ],
)
def test_bad_synthetic_params_name_the_key(synthetic: dict[str, object], message: str) -> None:
    raw = yaml.safe_load(IRIS_PARAMS.read_text())
    raw["load"] = {"source": "synthetic", "synthetic": synthetic}
    with pytest.raises(ParamsError, match=message):
        validate_params(raw)


# The large-data paths synthetic data exercises: Arrow's CSV writer and curve thinning.


def test_large_csv_reads_back_identical(tmp_path, monkeypatch) -> None:
    from mlpipeline.files import outputs, tables

    monkeypatch.setattr(tables, "ARROW_CSV_MIN_ROWS", 10)
    frame = make_synthetic(50, 4, 3, random_state=1)
    frame["name"] = frame[TARGET].map({0: "a,b", 1: 'say "hi"', 2: "plain"})
    path = tmp_path / "big.csv"
    outputs.write_table(path, frame)
    back = tables.read_table(path)
    assert path.read_text().splitlines()[0] == ",".join(frame.columns)
    assert back.astype({"name": object}).equals(frame.astype({"name": object}))


@pytest.mark.parametrize(("length", "max_points", "expected"), [(30, 50, 30), (5000, 1000, 1000)])
def test_thin_curve_keeps_ends(length: int, max_points: int, expected: int) -> None:
    import pandas as pd

    from mlpipeline.domain.evaluation import thin_curve

    curve = pd.DataFrame({"x": range(length), "y": range(length)})
    thinned = thin_curve(curve, max_points)
    assert len(thinned) == expected
    assert thinned.iloc[0].tolist() == [0, 0]
    assert thinned.iloc[-1].tolist() == [length - 1, length - 1]
