"""Tables: CSV and Parquet files read and written the same way by every stage and step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlpipeline.domain.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


# From this many rows on, CSV bodies go through Arrow's C++ writer: pandas' to_csv formats
# every float in Python and takes ~15-25 s per million rows of 10-20 columns, Arrow ~2 s.
ARROW_CSV_MIN_ROWS = 100_000


def write_table_to(path: Path, frame: pd.DataFrame, parquet: bool) -> None:
    """Write a DataFrame as Parquet or CSV (see `outputs.write_table` for a stage's output)."""
    if parquet:
        frame.to_parquet(path, index=False)
    elif len(frame) >= ARROW_CSV_MIN_ROWS:
        _write_large_csv(path, frame)
    else:
        frame.to_csv(path, index=False)


def _write_large_csv(path: Path, frame: pd.DataFrame) -> None:
    """pandas' header, then Arrow's body: every value reads back the same with pandas.

    Arrow writes floats in shortest round-trip form like pandas, but whole numbers without
    `.0` and text always quoted; small tables keep pandas' exact output.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    frame.head(0).to_csv(path, index=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with path.open("ab") as handle:
        pa_csv.write_csv(table, handle, pa_csv.WriteOptions(include_header=False))


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a CSV whose header repeats a name is a ValueError.

    pandas would rename the second `f1` to `f1.1` and carry on.
    """
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    seen: set[str] = set()
    for name in header.iloc[0] if len(header) else ():
        if name in seen and name:
            raise ValueError(f"column {name!r} appears more than once in the header")
        seen.add(name)
    return pd.read_csv(path)


def read_user_csv(csv_path: Path) -> pd.DataFrame:
    """The table at load.csv_path; a DataError naming the file if it cannot be read."""
    if not csv_path.is_file():
        raise DataError(f"load.csv_path: {csv_path} does not exist")
    try:
        return read_table(csv_path)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        raise DataError(f"load.csv_path: {csv_path} is not a readable CSV: {exc}") from None
