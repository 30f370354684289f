"""Chunked tables: read a CSV or Parquet file in chunks, write chunks into one file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlpipeline.domain.errors import DataError
from mlpipeline.files import chunked_tables


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_read_and_written_back_are_the_table(tmp_path: Path, suffix: str) -> None:
    table = pd.DataFrame({"id": [f"{i:03d}" for i in range(10)], "x": [i / 3 for i in range(10)]})
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        table.to_csv(source, index=False)
    else:
        table.to_parquet(source, index=False)
    assert chunked_tables.columns_of(source) == ["id", "x"]
    assert chunked_tables.row_count(source) == (10 if suffix == ".parquet" else None)
    chunks = list(chunked_tables.read_chunks(source, 4, text_columns=["id"]))
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]

    target = tmp_path / f"out{suffix}"
    writer = chunked_tables.ChunkWriter(target, parquet=suffix == ".parquet")
    for chunk in [chunks[0].head(0), *chunks]:
        writer.write(chunk)
    writer.close()
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    back = read(target, **({"dtype": {"id": str}} if suffix == ".csv" else {}))
    pd.testing.assert_frame_equal(back, table)


def test_nothing_written_gives_a_header_only_file(tmp_path: Path) -> None:
    writer = chunked_tables.ChunkWriter(tmp_path / "out.csv", parquet=False)
    writer.close(columns=["row", "reason"])
    assert (tmp_path / "out.csv").read_text() == "row,reason\n"


@pytest.mark.parametrize(
    ("name", "message"),
    [("in.txt", "expected a .csv or .parquet file"), ("gone.csv", "gone.csv does not exist")],
)
def test_check_readable(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "in.txt").write_text("a\n")
    with pytest.raises(DataError, match=message):
        chunked_tables.check_readable(tmp_path / name)
