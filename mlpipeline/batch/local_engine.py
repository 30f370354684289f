"""Stream, the local engine: the file in chunks, in this process, each chunk judged and
scored by every model of a scoring (the champion, and its challenger beside it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlpipeline.batch.inputs import Prepared
from mlpipeline.batch.results import Scored
from mlpipeline.domain.challenger import Comparison
from mlpipeline.domain.chunk_scoring import (
    PREDICTION_COLUMN,
    REASON_COLUMN,
    ROW_COLUMN,
    ScoredChunk,
    Tally,
    score_chunk,
)
from mlpipeline.domain.drift import BatchCounts
from mlpipeline.files import chunked_tables


def score_locally(
    lanes: list[tuple[Prepared, Path]],
    chunk_rows: int,
    comparison: Comparison | None = None,
) -> list[Scored]:
    """Every model of `lanes` (model, its results' folder) over the same chunks of the input;
    `comparison` matches the first two's labels."""
    source, id_column = lanes[0][0].source, lanes[0][0].id_column
    suffix = source.suffix
    parquet = suffix == ".parquet"
    writers = [LaneWriter(prepared, folder, suffix, parquet) for prepared, folder in lanes]
    chunks = chunked_tables.read_chunks(source, chunk_rows, [id_column] if id_column else [])
    sample = None
    first_row = 1
    with _progress(chunked_tables.row_count(source)) as progress:
        for chunk in chunks:
            if sample is None:
                sample = chunk.head(100)  # the input's schema, for MLflow
            scored = [writer.add(chunk, first_row, id_column) for writer in writers]
            if comparison is not None:
                comparison.add(scored[0].predictions, scored[1].predictions)
            first_row += len(chunk)
            progress.update(len(chunk))
    # Whose refusal of every row it is, when a second model refuses them all.
    names = [str(source)] + [f"{source} ({p.model.describe()})" for p, _ in lanes[1:]]
    return [
        writer.close(name, sample, id_column) for writer, name in zip(writers, names, strict=True)
    ]


class LaneWriter:
    """One model's side of a local scoring: its predictions, rejects, tally and drift counts."""

    def __init__(self, prepared: Prepared, folder: Path, suffix: str, parquet: bool) -> None:
        self.pipeline = prepared.pipeline
        reference = prepared.reference
        self.counts = BatchCounts(reference) if reference is not None else None
        self.tally = Tally()
        self.predictions = chunked_tables.ChunkWriter(folder / f"predictions{suffix}", parquet)
        self.rejects = chunked_tables.ChunkWriter(folder / f"rejects{suffix}", parquet)
        self.drift_seconds = 0.0  # counting the batch into the reference's bins

    def add(self, chunk: Any, first_row: int, id_column: str | None) -> ScoredChunk:
        scored = score_chunk(self.pipeline, chunk, first_row, id_column)
        self.predictions.write(scored.predictions)
        self.rejects.write(scored.rejects)
        self.tally.add(scored)
        if self.counts is not None:
            counting = time.perf_counter()
            self.counts.add(scored.features, scored.predictions[PREDICTION_COLUMN])
            self.drift_seconds += time.perf_counter() - counting
        return scored

    def close(self, source: str, sample: Any, id_column: str | None) -> Scored:
        self.tally.check_usable(source)
        self.predictions.close()
        self.rejects.close(columns=[ROW_COLUMN, *([id_column] if id_column else []), REASON_COLUMN])
        metrics = {"drift_seconds": self.drift_seconds} if self.counts is not None else {}
        return Scored(self.tally, self.counts, sample, {"engine": "local"}, metrics)


def _progress(total: int | None) -> Any:
    """A progress bar on stderr in a terminal; nothing in logs and pipes."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" rows", unit_scale=True, desc="scoring", disable=None)
