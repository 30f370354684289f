"""Splits of an input that tasks read on their own: together, the rows the local engine reads,
numbered as it numbers them, whatever the cuts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlpipeline.domain.errors import DataError
from mlpipeline.files import chunked_tables, input_splits

BODY = "007,1.5,x\n008,,2.25\n009,NA,1e300\n010,abc,3\n011,2,\n"
CSVS = {
    "plain": "id,a,b\n" + BODY,
    "crlf": ("id,a,b\n" + BODY).replace("\n", "\r\n"),
    "blank lines": "\n \nid,a,b\n\n" + BODY.replace("\n", "\n \t\n", 2) + "\n\n",
    "no last line end": "id,a,b\n" + BODY.rstrip("\n"),
    "header only": "id,a,b\n",
}


def _read(source: Path, pieces: int, rows: int, columns: list[str]) -> pd.DataFrame:
    frames = []
    for split in input_splits.plan(source, pieces):
        for chunk, first_row in input_splits.read_split(split, columns, rows, ["id"]):
            frames.append(chunk.set_axis(range(first_row - 1, first_row - 1 + len(chunk))))
    return pd.concat(frames) if frames else pd.DataFrame(columns=columns)


def _cells(frame: pd.DataFrame) -> list[list[object]]:
    return [[_cell(value) for value in row] for row in frame.itertuples(index=False)]


def _cell(value: object) -> object:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return "nan" if number != number else number


@pytest.mark.parametrize("name", CSVS)
@pytest.mark.parametrize("pieces", [1, 2, 3, 7, 40])
def test_csv_splits_read_as_the_whole_file(tmp_path: Path, name: str, pieces: int) -> None:
    source = tmp_path / "batch.csv"
    source.write_bytes(CSVS[name].encode())
    whole = pd.concat(chunked_tables.read_chunks(source, 2, ["id"]), ignore_index=True)
    got = _read(source, pieces, 2, ["id", "a", "b"])
    assert len(got) == len(whole)
    # Per row, as the guard judges it: chunks of other cuts may type a column otherwise.
    assert _cells(got) == _cells(whole)


def test_csv_counts_match_the_rows(tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    source.write_bytes(CSVS["blank lines"].encode())
    splits = input_splits.plan(source, 3)
    assert sum(split.rows for split in splits) == 5
    assert [split.first_row for split in splits] == [
        1 + sum(s.rows for s in splits[:i]) for i in range(len(splits))
    ]


def test_a_row_over_two_lines_is_refused_not_misnumbered(tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    source.write_text('id,a,b\n007,"1\n2",3\n008,1,2\n')
    with pytest.raises(DataError, match="reads a CSV row per line"):
        _read(source, 1, 10, ["id", "a", "b"])


@pytest.mark.parametrize("pieces", [1, 2, 5, 100])
def test_parquet_parts_split_by_row_group(tmp_path: Path, pieces: int) -> None:
    rows = pd.DataFrame({"id": [f"r{i}" for i in range(100)], "a": range(100)})
    folder = tmp_path / "lake"
    folder.mkdir()
    for number, start in enumerate(range(0, 100, 30)):
        part = rows.iloc[start : start + 30]
        part.to_parquet(folder / f"part-{number}.parquet", index=False, row_group_size=8)
    splits = input_splits.plan(folder, pieces)
    assert sum(split.rows for split in splits) == 100
    # 4 + 4 + 4 + 2 row groups of 8 rows or fewer: one split each when asked for more.
    assert len(splits) == (14 if pieces == 100 else pieces)
    got = _read(folder, pieces, 5, ["a", "id"])
    pd.testing.assert_frame_equal(got, rows[["a", "id"]])
