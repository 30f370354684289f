"""Tables too large for memory: read in chunks of rows, written chunk by chunk.

CSV and Parquet, chosen by the file's suffix. Reading keeps one chunk in memory (pandas'
chunked CSV parser, Parquet row batches); writing goes through Arrow's CSV and Parquet
writers, which take the chunks one by one with the schema of the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".csv", ".parquet")


def check_readable(path: Path, folders: bool = False) -> None:
    """A DataError naming `path` unless it is a CSV or Parquet file that exists (or, with
    `folders`, a folder of Parquet files)."""
    if folders and path.is_dir():
        if not parquet_parts(path):
            raise DataError(f"{path} is a folder without .parquet files")
        return
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: expected a .csv or .parquet file")
    if not path.is_file():
        raise DataError(f"{path} does not exist")


def columns_of(path: Path) -> list[str]:
    """The column names of a CSV's header or a Parquet file's schema."""
    import pandas as pd

    try:
        if path.is_dir():
            path = parquet_parts(path)[0]
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read: {exc}") from None
    return [str(name) for name in header.iloc[0]] if len(header) else []


def row_count(path: Path) -> int | None:
    """The number of data rows, when the file says so without being read (Parquet)."""
    if path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def read_chunks(path: Path, rows: int, text_columns: list[str]) -> Iterator[pd.DataFrame]:
    """The table `rows` rows at a time; `text_columns` of a CSV are read as text, as written.

    A cell of a CSV that is not a number makes its chunk's column text; the caller judges
    it row by row.
    """
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
                yield batch.to_pandas()
            return
        with pd.read_csv(path, chunksize=rows, dtype=_csv_dtypes(text_columns)) as reader:
            yield from reader
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read: {exc}") from None


def _csv_dtypes(text_columns: list[str]) -> dict[str, type]:
    return dict.fromkeys(text_columns, str)


def parquet_parts(path: Path) -> list[Path]:
    """The Parquet files of a dataset folder (a lake's table), in name order."""
    return sorted(
        part
        for part in path.rglob("*.parquet")
        if part.is_file()
        and not any(p.startswith(("_", ".")) for p in part.relative_to(path).parts)
    )


class ChunkWriter:
    """Writes DataFrames with the same columns to one CSV or Parquet file, one after another."""

    def __init__(self, path: Path, parquet: bool) -> None:
        self.path = path
        self.parquet = parquet
        self._writer: Any = None
        self._schema: Any = None

    @property
    def written(self) -> bool:
        """Whether a row has been written (the file exists)."""
        return self._writer is not None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        if len(frame) == 0:
            return
        table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            self._writer = self._open(table.schema)
        self._writer.write_table(table)

    def _open(self, schema: Any) -> Any:
        if self.parquet:
            import pyarrow.parquet as pq

            return pq.ParquetWriter(self.path, schema)
        import pyarrow.csv as pa_csv

        return pa_csv.CSVWriter(self.path, schema)

    def close(self, columns: list[str] | None = None) -> None:
        """Finish the file; with no rows written, a file of `columns` and no rows."""
        if self._writer is not None:
            self._writer.close()
            return
        import pandas as pd

        from mlpipeline.files.tables import write_table_to

        write_table_to(self.path, pd.DataFrame(columns=columns or []), parquet=self.parquet)
