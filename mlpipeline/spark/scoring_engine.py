"""Batch scoring as a Spark job: the local engine's per-chunk function, run by executors.

pyspark is imported only inside the functions. The driver cuts the input (a CSV file, a
Parquet file or a folder of Parquet parts) into splits and numbers their rows in advance
without parsing (mlpipeline/files/input_splits.py: a CSV's byte ranges and their non-blank
lines, counted at memory speed; Parquet row groups, from the footers): one pass over the data.
Each task of one `mapInPandas` job takes a split, reads it with the local engine's readers
(pandas' CSV parser, pyarrow's row batches) `chunk_rows` at a time, judges and scores each
chunk with mlpipeline.domain.chunk_scoring.score_chunk, the function the local engine calls,
and counts it into the drift reference's bins. No row crosses between the JVM and Python:
Spark schedules, places and retries the tasks.

Each task attempt writes its predictions and rejects with Arrow under its own scratch folder
and returns its counts as data; the driver keeps the files of the attempts that succeeded
(a retried task's earlier attempt is dropped), names them by their first row, adds the
counts (integers, exact sums) and so writes the very drift report the local engine would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from mlpipeline.domain.chunk_scoring import REASON_COLUMN, ROW_COLUMN, Tally, score_chunk
from mlpipeline.domain.drift import BatchCounts
from mlpipeline.domain.errors import DataError
from mlpipeline.files import chunked_tables, input_splits
from mlpipeline.spark import session
from mlpipeline.tracking.scoring_runs import ResolvedModel, load_pipeline

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "predictions.parquet"
REJECTS_DIR = "rejects.parquet"
_SCRATCH = "_attempts"
# Splits per core: more than one, so a task held up by a busy core does not set the time alone.
SPLITS_PER_CORE = 2
# At most this many bytes of a CSV in one split (a retried task repeats no more than that).
SPLIT_BYTES = 128 << 20

# Seconds a session took to start and prove its executors, by session.
_STARTUP: dict[int, float] = {}
# One model per Python worker process, loaded on its first task (spark.python.worker.reuse).
_PIPELINES: dict[str, Any] = {}


@dataclass(frozen=True)
class Job:
    """What executors need to score their partitions (pickled to them once per task)."""

    source: str
    load_uri: str  # models:/<name>/<version>: the version the driver resolved
    columns: list[str]  # the input's columns (a CSV's header)
    features: list[str]  # the model's
    id_column: str | None
    csv: bool
    reference: dict[str, Any] | None
    scratch: str = ""  # where attempts write, reachable by every executor
    splits: list[input_splits.Split] = field(default_factory=list)
    chunk_rows: int = 100_000


@dataclass
class Outcome:
    tally: Tally
    counts: BatchCounts | None
    params: dict[str, object]  # engine, master, executors, partitions
    metrics: dict[str, float]


def master_url(requested: str | None) -> str:
    return session.master_url(requested)


@contextlib.contextmanager
def session_for(master: str, model: ResolvedModel, chunk_rows: int) -> Iterator[Any]:
    """A session on `master` whose executors have shown they can load `model`."""
    import mlflow

    env = session.executor_env(os.environ, _absolute(mlflow.get_tracking_uri()))
    started = time.perf_counter()
    log.info("starting Spark on %s", master)
    with session.spark_session(master, "mlpipeline score", env, chunk_rows) as spark:
        session.check_executors(spark, partial(load_model, model.load_uri), master)
        _STARTUP[id(spark)] = time.perf_counter() - started
        log.info("Spark on %s ready in %.1f s", master, _STARTUP[id(spark)])
        yield spark


def _absolute(tracking_uri: str) -> str:
    """A sqlite:/// or file: URI relative to this folder, made absolute for executors."""
    for scheme in ("sqlite:///", "file:"):
        if tracking_uri.startswith(scheme):
            rest = tracking_uri.removeprefix(scheme)
            if rest.startswith("/"):
                return tracking_uri
            return scheme + str(Path(rest).resolve())
    if "://" not in tracking_uri:
        return str(Path(tracking_uri).resolve())
    return tracking_uri


def score(spark: Any, master: str, job: Job, folder: Path) -> Outcome:
    """Score the job's input into `folder` on `spark`: the counts and what the run records."""
    source = Path(job.source)
    started = time.perf_counter()
    cores = max(spark.sparkContext.defaultParallelism, 1)
    pieces = cores * SPLITS_PER_CORE
    if job.csv:
        pieces = max(pieces, -(-source.stat().st_size // SPLIT_BYTES))
    splits = input_splits.plan(source.resolve(), pieces)
    planned = time.perf_counter() - started  # cutting and numbering: the driver's pass
    scratch = str((folder / _SCRATCH).resolve())  # executors may run in other folders
    job = replace(job, scratch=scratch, splits=splits)
    outcome = run(spark, job, folder)
    seconds = time.perf_counter() - started
    outcome.params = {
        "engine": "spark",
        "spark_master": master,
        **outcome.params,  # executors (that ran a task) and partitions
    }
    outcome.metrics = {
        **outcome.metrics,  # the model's loads by the job's tasks: 0 when start-up's held
        "spark_startup_seconds": _STARTUP.get(id(spark), 0.0),
        "spark_job_seconds": seconds,
        "spark_plan_seconds": planned,
        **session.driver_peak_rss_mib(),
    }
    return outcome


def sample(source: Path, id_column: str | None) -> Any:
    """The input's first 100 rows, read here, for MLflow's dataset schema."""
    first = chunked_tables.parquet_parts(source)[0] if source.is_dir() else source
    chunks = chunked_tables.read_chunks(first, 100, [id_column] if id_column else [])
    return next(iter(chunks), None)


def load_model(load_uri: str) -> Any:
    """The pipeline of `load_uri`, loaded once per Python worker."""
    if load_uri not in _PIPELINES:
        _PIPELINES[load_uri] = load_pipeline(ResolvedModel(load_uri, load_uri))
    return _PIPELINES[load_uri]


def score_partition(job: Job, batches: Iterator[Any]) -> Iterator[Any]:
    """An executor's task: read its split (the one whose index its partition holds), score it
    chunk by chunk, write the results under the attempt's own folder, yield one row with the
    counts (or the data error, as data)."""
    import pandas as pd
    from pyspark import TaskContext

    task = TaskContext.get()
    assert task is not None, "runs inside a Spark task"
    attempt = Path(job.scratch) / f"{task.partitionId():06d}-{task.attemptNumber()}"
    # Not `parents`: a task outliving its killed driver must not recreate the staged folder
    # the next run removed.
    attempt.mkdir(exist_ok=True)
    predictions = chunked_tables.ChunkWriter(attempt / PREDICTIONS_DIR, parquet=True)
    rejects = chunked_tables.ChunkWriter(attempt / REJECTS_DIR, parquet=True)
    tally = Tally()
    counts = BatchCounts(job.reference) if job.reference is not None else None
    first_row = None
    text_columns = [job.id_column] if job.id_column else []
    result: dict[str, Any] = {}
    # Read to the end: a Python worker that leaves input unread is not reused (session._probe).
    indexes = [int(index) for batch in batches for index in batch["id"]]
    # Start-up's probe loaded the model in this worker, unless Spark started a new one.
    loads = 0 if job.load_uri in _PIPELINES else 1
    columns = (
        job.columns if job.csv else [*job.features, *([job.id_column] if job.id_column else [])]
    )
    try:
        pipeline = load_model(job.load_uri)
        for index in indexes:
            split = job.splits[index]
            chunks = input_splits.read_split(split, columns, job.chunk_rows, text_columns)
            for chunk, chunk_first in chunks:
                scored = score_chunk(pipeline, chunk, chunk_first, job.id_column)
                predictions.write(scored.predictions)
                rejects.write(scored.rejects)
                tally.add(scored)
                if counts is not None:
                    counts.add(scored.features, scored.predictions["prediction"])
                first_row = chunk_first if first_row is None else first_row
        for writer in (predictions, rejects):
            if writer.written:
                writer.close()
        result = {"tally": tally, "counts": counts, "first_row": first_row, "loads": loads}
        # Which executor ran it: its host and Python daemon (one per executor JVM).
        result["executor"] = f"{socket.gethostname()}:{os.getppid()}"
    except (DataError, ValueError, UnicodeDecodeError) as exc:  # the input's fault: no retry
        result = {"error": str(exc).splitlines()[0]}
    yield pd.DataFrame(
        {"attempt": [str(attempt)], "outcome": [pickle.dumps(result)]},
    )


def run(spark: Any, job: Job, folder: Path) -> Outcome:
    """Score the job's splits, one task each, into `folder`'s predictions.parquet/ and
    rejects.parquet/."""
    scratch = Path(job.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    tasks = max(len(job.splits), 1)  # no split (no rows): one task finds nothing to score
    scoring = spark.range(0, len(job.splits), 1, tasks).mapInPandas(
        partial(score_partition, job), "attempt string, outcome binary"
    )
    try:
        results = scoring.collect()
    except (Py4JJavaError, PySparkException) as exc:
        raise session.SparkSetupError(
            f"the Spark job failed: {session.python_error(exc)}"
        ) from None
    tally = Tally()
    counts = BatchCounts(job.reference) if job.reference is not None else None
    executors = set()
    loads = 0
    (folder / PREDICTIONS_DIR).mkdir()
    (folder / REJECTS_DIR).mkdir()
    for row in results:
        outcome = pickle.loads(row["outcome"])
        if "error" in outcome:
            raise DataError(outcome["error"])
        executors.add(outcome["executor"])
        loads += outcome["loads"]
        if outcome["first_row"] is None:
            continue
        tally.merge(outcome["tally"])
        if counts is not None:
            counts.merge(outcome["counts"])
        part = f"part-{outcome['first_row']:012d}.parquet"
        for name in (PREDICTIONS_DIR, REJECTS_DIR):
            written = Path(row["attempt"]) / name
            if written.exists():
                written.rename(folder / name / part)
    # A killed executor's Python worker may still be writing its attempt's files for a moment.
    for _ in range(3):
        shutil.rmtree(scratch, ignore_errors=True)
        if not scratch.exists():
            break
        time.sleep(1)
    if not any((folder / REJECTS_DIR).iterdir()):
        columns = [ROW_COLUMN, *([job.id_column] if job.id_column else []), REASON_COLUMN]
        chunked_tables.ChunkWriter(folder / REJECTS_DIR / "part-0.parquet", True).close(columns)
    # One result per task: as many as splits.
    params: dict[str, object] = {
        "spark_partitions": len(results),
        "spark_executors": len(executors),
    }
    return Outcome(tally, counts, params, {"spark_model_loads": float(loads)})
