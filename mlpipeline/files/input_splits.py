"""An input cut into splits that tasks read on their own, each knowing its first row's number.

Spark's engine gives each task a split: a byte range of a CSV (starting and ending at a line
start) or row groups of Parquet files. The rows before a split are counted on the driver
without parsing: a Parquet file's footer holds its row groups' sizes; a CSV's rows are its
non-blank lines, counted at memory speed (bytes.count). A task then parses its split with
the local engine's own readers (pandas' CSV parser, pyarrow's row batches), so both engines
see the same values, and checks that it found the rows the driver counted.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import DataError
from mlpipeline.files import chunked_tables

if TYPE_CHECKING:
    import pandas as pd

# Bytes read at a time where the driver counts a CSV's lines.
COUNT_BUFFER = 8 << 20
# What pandas' parser ends a line with, and the bytes of a line it skips as blank.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BLANK = b" \t"
# Besides b"\n\n", what may start a blank line, looked for where the data holds its byte.
_MAYBE_BLANK = ((b"\n\r", b"\r"), (b"\n ", b" "), (b"\n\t", b"\t"))


@dataclass(frozen=True)
class Split:
    """One task's share of the input and the number (1-based) of its first row."""

    first_row: int
    rows: int
    path: str = ""  # a CSV's
    start: int = 0  # its bytes [start, end)
    end: int = 0
    groups: tuple[tuple[str, tuple[int, ...]], ...] = ()  # Parquet: (file, its row groups)


def plan(source: Path, pieces: int) -> list[Split]:
    """`source` (a CSV or Parquet file, or a folder of Parquet parts) in about `pieces`
    splits of similar size, in the input's order; empty splits are left out."""
    if source.suffix == ".csv" and source.is_file():
        return plan_csv(source, pieces)
    parts = chunked_tables.parquet_parts(source) if source.is_dir() else [source]
    return plan_parquet(parts, pieces)


def plan_parquet(parts: list[Path], pieces: int) -> list[Split]:
    """Consecutive row groups (files in the given order) in splits of about total/`pieces`
    rows; a row group is never cut."""
    import pyarrow.parquet as pq

    groups: list[tuple[str, int, int]] = []  # file, row group, rows
    for part in parts:
        try:
            with pq.ParquetFile(part) as file:
                metadata = file.metadata
        except (OSError, ValueError) as exc:
            raise DataError(f"{part} cannot be read: {exc}") from None
        groups += [
            (str(part), group, metadata.row_group(group).num_rows)
            for group in range(metadata.num_row_groups)
        ]
    total = sum(rows for _, _, rows in groups)
    target = max(1, -(-total // max(pieces, 1)))
    splits: list[Split] = []
    first_row, taken, rows = 1, [], 0
    for group in groups:
        taken.append(group)
        rows += group[2]
        if rows >= target:
            splits.append(_parquet_split(first_row, rows, taken))
            first_row, taken, rows = first_row + rows, [], 0
    if rows:
        splits.append(_parquet_split(first_row, rows, taken))
    return splits


def _parquet_split(first_row: int, rows: int, taken: list[tuple[str, int, int]]) -> Split:
    files: dict[str, list[int]] = {}
    for path, group, _ in taken:
        files.setdefault(path, []).append(group)
    return Split(first_row, rows, groups=tuple((p, tuple(g)) for p, g in files.items()))


def plan_csv(path: Path, pieces: int) -> list[Split]:
    """Byte ranges of about size/`pieces` each, cut after a line end, the first one after
    the header (the first non-blank line); each one's rows are its non-blank lines."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        line = b""
        while not line.strip(_BLANK + b"\r\n") and handle.tell() < size:
            line = handle.readline()  # the header: the first non-blank line
        cuts = [0, handle.tell()]
        for piece in range(1, max(pieces, 1)):
            handle.seek(max(piece * size // pieces, cuts[-1]))
            if handle.tell() > cuts[1]:
                handle.readline()  # to the next line's start
            cuts.append(min(handle.tell(), size))
        cuts.append(size)
        splits: list[Split] = []
        first_row = 1
        for start, end in itertools.pairwise([0, *sorted(set(cuts[1:]))]):
            rows = count_rows(handle, start, end) - (1 if start == 0 else 0)
            if rows:
                splits.append(Split(first_row, rows, str(path), start, end))
            first_row += rows
    return splits


def count_rows(handle: Any, start: int, end: int) -> int:
    """The lines of bytes [start, end) of `handle` that pandas reads as rows (not blank)."""
    handle.seek(start)
    rows = 0
    carry = b""
    left = end - start
    while left > 0:
        data = handle.read(min(COUNT_BUFFER, left))
        if not data:
            break
        left -= len(data)
        data = carry + data
        cut = data.rfind(b"\n") + 1 if left > 0 else len(data)
        carry = data[cut:]
        rows += _rows_in(data[:cut])
    return rows + _rows_in(carry)


def _rows_in(data: bytes) -> int:
    """Non-blank lines in `data`, which starts at a line start."""
    if not data:
        return 0
    # A blank line follows a line end with a line end, a space or a tab: looked for only
    # when the data holds such a byte at all (memchr speed), the usual numeric CSV holds none.
    suspects = [b"\n\n"]
    suspects += [pair for pair, byte in _MAYBE_BLANK if byte in data]
    lone_cr = b"\r" in data and data.count(b"\r") != data.count(b"\r\n")
    if lone_cr or data[:1] in (b"\n", b"\r", b" ", b"\t") or any(s in data for s in suspects):
        return sum(1 for line in _LINE_END.split(data) if line.strip(_BLANK))
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


class _ByteRange(io.RawIOBase):
    """Bytes [start, end) of a file, as a file."""

    def __init__(self, path: str, start: int, end: int) -> None:
        super().__init__()
        self._file = Path(path).open("rb")  # noqa: SIM115 (closed with this stream)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        read = self._file.readinto(memoryview(buffer)[:size])
        self._left -= read
        return read

    def close(self) -> None:
        self._file.close()
        super().close()


def read_split(
    split: Split, columns: list[str], rows: int, text_columns: list[str]
) -> Iterator[tuple[pd.DataFrame, int]]:
    """The split's rows, `rows` at a time, each chunk with its first row's number: read as
    chunked_tables.read_chunks reads the file (of a Parquet input, only `columns`)."""
    first_row = split.first_row
    if split.path:
        chunks = _csv_chunks(split, columns, rows, text_columns)
    else:
        chunks = _parquet_chunks(split, columns, rows)
    for chunk in chunks:
        if len(chunk):
            yield chunk, first_row
            first_row += len(chunk)
    if first_row - split.first_row != split.rows:
        where = split.path or split.groups[0][0]
        raise DataError(
            f"{where}: read {first_row - split.first_row} rows where {split.rows} lines were "
            "counted; Spark's engine reads a CSV row per line (a quoted line break or a lone "
            "carriage return splits it): score it with the local engine or as Parquet"
        )


def _csv_chunks(
    split: Split, columns: list[str], rows: int, text_columns: list[str]
) -> Iterator[pd.DataFrame]:
    import pandas as pd

    try:
        stream = io.BufferedReader(_ByteRange(split.path, split.start, split.end))
        with (
            stream,
            pd.read_csv(
                stream,
                header=None,  # plan_csv's first split, the header's, has no rows
                names=columns,
                chunksize=rows,
                dtype=dict.fromkeys(text_columns, str),
            ) as reader,
        ):
            yield from reader
    except pd.errors.EmptyDataError:
        return
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{split.path} cannot be read: {exc}") from None


def _parquet_chunks(split: Split, columns: list[str], rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    for path, groups in split.groups:
        try:
            with pq.ParquetFile(path) as file:
                batches = file.iter_batches(
                    batch_size=rows, row_groups=list(groups), columns=columns
                )
                for batch in batches:
                    yield batch.to_pandas()
        except (ValueError, OSError) as exc:
            raise DataError(f"{path} cannot be read: {exc}") from None
