"""`mlpipeline model score INPUT`: score a CSV or Parquet file with the champion.

mlpipeline model score data/new/batch.csv
mlpipeline model score batch.parquet --model models:/iris_classifier/3
mlpipeline model score batch.csv --with-challenger   # and @challenger, compared

The alias is resolved once, so a promotion during the scoring does not mix two models. The
file is read in chunks (memory stays flat whatever its size); every row is judged by the
model's input guard, as a served request is: refused rows go to rejects.<ext> with their
number and reason, the others to predictions.<ext> with the label and each class's
probability, in the input's order, with the input's `id` column (or --id-column). Both go
to one folder (default scores/<input name>/), written all-or-nothing, and a run of the
`<experiment>-scoring` experiment records the model version, rows, rejects and speed.
Each batch is compared with the training split's profile the model was logged with
(mlpipeline/domain/drift.py): drift.json, drift.html and drift.png join the results and the
run, and a batch whose drift exceeds params.yaml's `monitor` thresholds exits 3 (its results
are written). It fails (exit 1, nothing written) when the columns do not match the model's
or the model refuses every row.

With --with-challenger each chunk is scored by @challenger too, through the same functions:
its results go to challenger/ in the same folder, the two models' labels are compared row by
row (mlpipeline/domain/challenger.py) into comparison.json, and only the champion's drift
sets the exit status.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mlpipeline.commands.console import EXIT_DRIFT, EXIT_OK, command, params_option
from mlpipeline.domain.challenger import Comparison
from mlpipeline.domain.drift import BatchCounts, DriftReport, compare
from mlpipeline.domain.drift_report import render_html, render_png
from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.params import MonitorParams, Params
from mlpipeline.domain.promotion import CHALLENGER_ALIAS
from mlpipeline.domain.scoring import (
    PREDICTION_COLUMN,
    REASON_COLUMN,
    ROW_COLUMN,
    ScoredChunk,
    Tally,
    check_schema,
    choose_id_column,
    feature_columns,
    score_chunk,
)
from mlpipeline.files import chunked_tables, hashes, paths
from mlpipeline.files.output_lock import output_lock
from mlpipeline.files.outputs import staged_outputs
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import stop_cleanly
from mlpipeline.tracking import datasets, drift_reference, runs, scoring

log = logging.getLogger("mlpipeline.score")

SCORES_DIR = paths.ROOT / "scores"
CHUNK_ROWS = 100_000
SUMMARY_FILE = "summary.json"
DRIFT_FILES = ("drift.json", "drift.html", "drift.png")
# --with-challenger: the challenger's results, a folder inside the champion's; the comparison.
CHALLENGER_DIR = "challenger"
COMPARISON_FILE = "comparison.json"


ENGINES = ("local", "spark")


@dataclass(frozen=True)
class Request:
    input: Path
    model: str
    output: Path
    id_column: str | None = None
    chunk_rows: int = CHUNK_ROWS
    engine: str = "local"  # or "spark" (mlpipeline/spark/)
    spark_master: str | None = None  # default $SPARK_MASTER, else local[*]
    challenger: str | None = None  # a second model scoring the same rows (local engine)


@dataclass(frozen=True)
class _Prepared:
    """What both engines start from: the checked input, the pinned model, its reference."""

    source: Path
    columns: list[str]
    model: scoring.ResolvedModel
    pipeline: Any
    id_column: str | None
    reference: dict[str, Any] | None


@dataclass(frozen=True)
class _Extra:
    """What a champion's scoring beside its challenger adds to its run and summary."""

    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)


@dataclass
class _Scored:
    """What an engine hands back: the tally, the drift counts, and what it records."""

    tally: Tally
    counts: BatchCounts | None
    sample: Any  # the input's first rows, for MLflow's dataset schema
    params: dict[str, object]
    metrics: dict[str, float]


@dataclass(frozen=True)
class ChallengerResult:
    """What `--with-challenger` adds: the challenger's summary and drift, and the comparison."""

    summary: dict[str, object]
    drift: DriftReport | None
    comparison: Comparison


@dataclass(frozen=True)
class Result:
    summary: dict[str, object]
    drift: DriftReport | None  # None when the model has no reference
    challenger: ChallengerResult | None = None


def score(request: Request, params: Params) -> Result:
    """Score `request.input` into `request.output`: the summary it wrote and logged, and the
    batch's drift report; with `request.challenger`, the same for the challenger (in
    `challenger/`) and the comparison of the two (comparison.json).

    One scoring at a time writes a folder (a second is refused, naming the first); SIGTERM,
    SIGHUP or the end of the process that started it stop it with nothing written.
    """
    with stop_cleanly("scoring"), output_lock(request.output):
        return _score(request, params)


def _score(request: Request, params: Params) -> Result:
    """Both engines: checks, the pinned model, the scoring, its summary and run."""
    if request.engine not in ENGINES:
        raise PipelineError(f"--engine {request.engine}: choose one of {', '.join(ENGINES)}")
    if request.challenger is not None and request.engine != "local":
        raise PipelineError("--with-challenger scores on the local engine only; drop --engine")
    prepared = _prepare(request, params)
    if request.challenger is not None:
        return _score_with_challenger(request, params, prepared, request.challenger)
    if request.engine == "spark":
        from mlpipeline.spark import engine

        master = engine.master_url(request.spark_master)
        with engine.session_for(master, prepared.model, request.chunk_rows) as spark:
            started = time.perf_counter()
            with staged_outputs() as outputs:
                folder = outputs.folder(request.output)
                result = engine.score(spark, master, _job_of(prepared, request), folder)
                scored = _Scored(
                    result.tally,
                    result.counts,
                    engine.sample(prepared.source, prepared.id_column),
                    result.params,
                    result.metrics,
                )
                summary, drift = _finish(request, params, prepared, scored, folder, started)
    else:
        started = time.perf_counter()
        with staged_outputs() as outputs:
            folder = outputs.folder(request.output)
            (scored,) = _score_locally(request, [(prepared, folder)])
            summary, drift = _finish(request, params, prepared, scored, folder, started)
    _log_done(summary, request.output)
    return Result(summary, drift)


def _score_with_challenger(
    request: Request, params: Params, champion: _Prepared, challenger_uri: str
) -> Result:
    """Both models over the same chunks, each into its folder as a scoring alone would write
    it (the challenger's in `challenger/`), their comparison in comparison.json: all or none."""
    try:
        challenger = _prepare(request, params, challenger_uri)
    except scoring.NoSuchModelError:
        raise PipelineError(
            f"--with-challenger: no {challenger_uri} is set; set one with `mlpipeline model "
            "promote VERSION --challenger`"
        ) from None
    comparison = Comparison()
    started = time.perf_counter()
    with staged_outputs() as outputs:
        folder = outputs.folder(request.output)
        challenger_folder = folder / CHALLENGER_DIR
        challenger_folder.mkdir()
        lanes = [(champion, folder), (challenger, challenger_folder)]
        scored = _score_locally(request, lanes, comparison)
        compared = comparison.as_dict()
        (folder / COMPARISON_FILE).write_text(json.dumps(compared, indent=2, sort_keys=True) + "\n")
        extra = _Extra(
            metrics={"challenger.agreement": comparison.agreement or 0.0},
            artifacts={str(folder / COMPARISON_FILE): "scoring"},
            summary={"challenger": {"model_version": challenger.model.version, **compared}},
        )
        summary, drift = _finish(request, params, champion, scored[0], folder, started, extra)
        rival = _finish(request, params, challenger, scored[1], challenger_folder, started)
    _log_done(summary, request.output)
    return Result(summary, drift, ChallengerResult(rival[0], rival[1], comparison))


def _log_done(summary: dict[str, object], output: Path) -> None:
    metrics = summary["metrics"]
    assert isinstance(metrics, dict)
    log.info(
        "%d rows: %d scored, %d rejected, in %.1f s (%.0f rows/s) → %s",
        metrics["rows"],
        metrics["scored_rows"],
        metrics["rejected_rows"],
        metrics["seconds"],
        metrics["rows_per_second"],
        output,
    )


def _prepare(request: Request, params: Params, model_uri: str | None = None) -> _Prepared:
    """Check the input and the output folder, pin and load the model (`request.model`, or
    `model_uri`), check the input's columns against it and read its drift reference."""
    source = request.input
    chunked_tables.check_readable(source, folders=request.engine == "spark")
    check_output(request.output)
    columns = chunked_tables.columns_of(source)
    runs.configure(params.mlflow.experiment_name + scoring.EXPERIMENT_SUFFIX)
    model = scoring.resolve_model(model_uri or request.model)
    pipeline = scoring.load_pipeline(model)
    features = feature_columns(pipeline)
    check_schema(str(source), columns, features)
    id_column = choose_id_column(str(source), columns, request.id_column)
    log.info("scoring %s with %s", source, model.describe())
    reference = drift_reference.load_reference(model.run_id) if model.run_id else None
    if reference is None:
        log.warning("%s has no drift reference: the batch is not compared", model.describe())
    return _Prepared(source, columns, model, pipeline, id_column, reference)


def _job_of(prepared: _Prepared, request: Request) -> Any:
    from mlpipeline.spark import engine

    return engine.Job(
        source=str(prepared.source),
        load_uri=prepared.model.load_uri,
        columns=prepared.columns,
        features=feature_columns(prepared.pipeline),
        id_column=prepared.id_column,
        csv=prepared.source.is_file() and prepared.source.suffix == ".csv",
        reference=prepared.reference,
    )


def _score_locally(
    request: Request,
    lanes: list[tuple[_Prepared, Path]],
    comparison: Comparison | None = None,
) -> list[_Scored]:
    """The local engine: the file in chunks, in this process, each chunk scored by every
    model of `lanes` (model, its results' folder); `comparison` matches the first two's labels."""
    source, id_column = lanes[0][0].source, lanes[0][0].id_column
    suffix = source.suffix
    parquet = suffix == ".parquet"
    writers = [_LaneWriter(prepared, folder, suffix, parquet) for prepared, folder in lanes]
    chunks = chunked_tables.read_chunks(
        source, request.chunk_rows, [id_column] if id_column else []
    )
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


class _LaneWriter:
    """One model's side of a local scoring: its predictions, rejects, tally and drift counts."""

    def __init__(self, prepared: _Prepared, folder: Path, suffix: str, parquet: bool) -> None:
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

    def close(self, source: str, sample: Any, id_column: str | None) -> _Scored:
        self.tally.check_usable(source)
        self.predictions.close()
        self.rejects.close(columns=[ROW_COLUMN, *([id_column] if id_column else []), REASON_COLUMN])
        metrics = {"drift_seconds": self.drift_seconds} if self.counts is not None else {}
        return _Scored(self.tally, self.counts, sample, {"engine": "local"}, metrics)


def _finish(
    request: Request,
    params: Params,
    prepared: _Prepared,
    scored: _Scored,
    folder: Path,
    started: float,
    extra: _Extra | None = None,
) -> tuple[dict[str, object], DriftReport | None]:
    """Both engines' end: metrics, the drift report, summary.json and the scoring run."""
    source, model, tally = prepared.source, prepared.model, scored.tally
    extra = extra or _Extra()
    tally.check_usable(str(source))
    seconds = time.perf_counter() - started
    metrics = {
        "rows": float(tally.rows),
        "rejected_rows": float(tally.rejected),
        "scored_rows": float(tally.scored),
        "seconds": seconds,
        "rows_per_second": tally.rows / seconds if seconds > 0 else 0.0,
        **{f"class_share.{label}": share for label, share in tally.class_shares().items()},
        **scored.metrics,
        **extra.metrics,
    }
    drift = None
    artifacts = {}
    if scored.counts is not None:
        comparing = time.perf_counter()
        drift = _compare(scored.counts, params.monitor)
        metrics["drift_seconds"] = metrics.get("drift_seconds", 0.0) + (
            time.perf_counter() - comparing
        )
        metrics.update(_drift_metrics(drift))
        artifacts = _write_drift(
            drift, folder, f"Drift of {source.name} against {model.describe()}"
        )
    with runs.mlflow_run(run_name=f"score {source.name}") as run:
        summary: dict[str, object] = {
            "input": str(source),
            "model_uri": model.requested,
            "model_version": model.version,
            "model_run_id": model.run_id,
            "scoring_run_id": run.info.run_id,
            "class_counts": dict(sorted(tally.classes.items())),
            "metrics": metrics,
            "drift": None if drift is None else drift.as_dict()["summary"],
            **extra.summary,
        }
        summary_path = folder / SUMMARY_FILE
        summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        # The digest DVC would record for the file (or folder): one more read, at disk speed.
        datasets.log_file(source, "scoring", hashes.dvc_md5(source), scored.sample)
        scoring.log_scoring(
            model,
            params={"input": source, "id_column": prepared.id_column or "-", **scored.params},
            metrics=metrics,
            artifacts={str(summary_path): "scoring", **artifacts, **extra.artifacts},
            tags=_gate_tags(drift),
        )
    return summary, drift


def check_output(folder: Path) -> None:
    """Refuse an output that is not a folder of earlier results: the results replace it whole."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise PipelineError(f"--output {folder} is a file; name a folder for the results")
    if any(folder.iterdir()) and not (folder / SUMMARY_FILE).is_file():
        raise PipelineError(
            f"--output {folder} holds files that are not scoring results (no {SUMMARY_FILE}); "
            "the results replace the whole folder, so name a new or empty one"
        )


def _compare(counts: BatchCounts, monitor: MonitorParams) -> DriftReport:
    return compare(
        counts,
        psi_threshold=monitor.psi_threshold,
        ks_threshold=monitor.ks_threshold,
        prediction_psi_threshold=monitor.prediction_psi_threshold,
    )


def _drift_metrics(drift: DriftReport) -> dict[str, float]:
    metrics = {
        "drift.prediction_psi": drift.prediction_psi,
        "drift.drifted_features": float(len(drift.drifted_features)),
    }
    for item in drift.features:
        metrics[f"drift.psi.{item.feature}"] = item.psi
        metrics[f"drift.ks.{item.feature}"] = item.ks_statistic
    return metrics


def _write_drift(drift: DriftReport, folder: Path, title: str) -> dict[str, str]:
    """drift.json, drift.html and drift.png in `folder`; file -> its folder in the run."""
    json_file, html_file, png_file = (folder / name for name in DRIFT_FILES)
    json_file.write_text(json.dumps(drift.as_dict(), indent=2, sort_keys=True) + "\n")
    png_file.write_bytes(render_png(drift))
    html_file.write_text(render_html(drift, png_file.name, title))
    return {str(path): "drift" for path in (json_file, html_file, png_file)}


def _gate_tags(drift: DriftReport | None) -> dict[str, str]:
    if drift is None:
        return {"drift_gate": "not checked (the model has no drift reference)"}
    verdict = "failed" if drift.drifted else "passed"
    return {"drift_gate": verdict, "drift_summary": drift.gate_line()[:5000]}


def _progress(total: int | None) -> Any:
    """A progress bar on stderr in a terminal; nothing in logs and pipes."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" rows", unit_scale=True, desc="scoring", disable=None)


@command(
    "score",
    help="Score a CSV or Parquet file with a registered model: predictions and "
    "rejects in one folder, written all-or-nothing, and a scoring run in MLflow. Exit 3: "
    "the batch drifted past params.yaml's monitor gate (its results are written).",
)
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--model",
    help="models:/<name>@<alias> or models:/<name>/<version> (default: the champion, "
    "models:/<mlflow.registered_model_name>@<mlflow.champion_alias>)",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="folder for the results (default: scores/<input name>/)",
)
@click.option("--id-column", help="column carried into the results (default: id)")
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=CHUNK_ROWS,
    show_default=True,
    help="rows per chunk (Spark: per Arrow batch)",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="local: this process; spark: Apache Spark (INPUT may be a folder of Parquet parts; "
    "results as Parquet datasets)",
)
@click.option(
    "--spark-master",
    envvar="SPARK_MASTER",
    help="with --engine spark: local[*] (default), spark://host:7077, yarn, k8s://...",
)
@click.option(
    "--with-challenger",
    is_flag=True,
    help="also score with @challenger (`model promote VERSION --challenger`) into "
    "<output>/challenger/, and compare the two: agreement, classes, confusion "
    "(comparison.json); the exit status stays the champion's drift gate",
)
@params_option
def score_file(
    input_file: Path,
    model: str | None,
    output: Path | None,
    id_column: str | None,
    chunk_rows: int,
    engine: str,
    spark_master: str | None,
    with_challenger: bool,
    params: Path,
) -> int:
    settings = load_params(params)
    names = settings.mlflow
    request = Request(
        input=input_file,
        model=model or names.champion_uri,
        output=output or SCORES_DIR / input_file.stem,
        id_column=id_column,
        chunk_rows=chunk_rows,
        engine=engine,
        spark_master=spark_master,
        challenger=(
            f"models:/{names.registered_model_name}@{CHALLENGER_ALIAS}" if with_challenger else None
        ),
    )
    result = score(request, settings)
    if result.challenger is not None:
        rival = result.challenger
        print(rival.comparison.report(_version_of(result.summary), _version_of(rival.summary)))
        if rival.drift is not None:
            # The challenger serves nothing yet: its drift informs the move, it does not gate.
            log.info("challenger's drift (not gated): %s", rival.drift.gate_line())
    drift = result.drift
    if drift is not None and drift.drifted:
        if settings.monitor.fail_on_drift:
            log.error("drift gate: %s", drift.gate_line())
            return EXIT_DRIFT
        log.warning("drift (monitor.fail_on_drift is false): %s", drift.gate_line())
    elif drift is not None:
        log.info("drift gate: %s", drift.gate_line())
    return EXIT_OK


def _version_of(summary: dict[str, object]) -> str:
    version = summary["model_version"]
    return str(summary["model_uri"]) if version is None else f"version {version}"
