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
from dataclasses import dataclass
from pathlib import Path

import click

from mlpipeline.batch import inputs, local_engine
from mlpipeline.batch.inputs import Prepared
from mlpipeline.batch.results import Extra, Scored, finish
from mlpipeline.commands.console import EXIT_DRIFT, EXIT_OK, command, params_option
from mlpipeline.domain.challenger import Comparison
from mlpipeline.domain.drift import DriftReport
from mlpipeline.domain.errors import PipelineError
from mlpipeline.domain.params import Params
from mlpipeline.domain.promotion import CHALLENGER_ALIAS
from mlpipeline.files import paths
from mlpipeline.files.output_lock import output_lock
from mlpipeline.files.outputs import staged_outputs
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import stop_cleanly
from mlpipeline.tracking import scoring_runs

log = logging.getLogger("mlpipeline.score")

SCORES_DIR = paths.ROOT / "scores"
CHUNK_ROWS = 100_000
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
    """Resolve the model, stream the input through it, write the results, log the run."""
    if request.engine not in ENGINES:
        raise PipelineError(f"--engine {request.engine}: choose one of {', '.join(ENGINES)}")
    if request.challenger is not None and request.engine != "local":
        raise PipelineError("--with-challenger scores on the local engine only; drop --engine")
    prepared = _prepare(request, params, request.model)
    if request.challenger is not None:
        return _score_with_challenger(request, params, prepared, request.challenger)
    if request.engine == "spark":
        summary, drift = _score_on_spark(request, params, prepared)
    else:
        started = time.perf_counter()
        with staged_outputs() as outputs:
            folder = outputs.folder(request.output)
            (scored,) = local_engine.score_locally([(prepared, folder)], request.chunk_rows)
            summary, drift = finish(prepared, scored, folder, started, params.monitor)
    _log_done(summary, request.output)
    return Result(summary, drift)


def _prepare(request: Request, params: Params, model_uri: str) -> Prepared:
    return inputs.prepare(
        request.input,
        request.output,
        model_uri,
        request.id_column,
        params.mlflow.experiment_name,
        folders=request.engine == "spark",
    )


def _score_on_spark(
    request: Request, params: Params, prepared: Prepared
) -> tuple[dict[str, object], DriftReport | None]:
    from mlpipeline.spark import scoring_engine as spark_engine

    master = spark_engine.master_url(request.spark_master)
    with spark_engine.session_for(master, prepared.model, request.chunk_rows) as spark:
        started = time.perf_counter()
        with staged_outputs() as outputs:
            folder = outputs.folder(request.output)
            job = inputs.spark_job(prepared, request.chunk_rows)
            result = spark_engine.score(spark, master, job, folder)
            scored = Scored(
                result.tally,
                result.counts,
                spark_engine.sample(prepared.source, prepared.id_column),
                result.params,
                result.metrics,
            )
            return finish(prepared, scored, folder, started, params.monitor)


def _score_with_challenger(
    request: Request, params: Params, champion: Prepared, challenger_uri: str
) -> Result:
    """Both models over the same chunks, each into its folder as a scoring alone would write
    it (the challenger's in `challenger/`), their comparison in comparison.json: all or none."""
    try:
        challenger = _prepare(request, params, challenger_uri)
    except scoring_runs.NoSuchModelError:
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
        scored = local_engine.score_locally(lanes, request.chunk_rows, comparison)
        compared = comparison.as_dict()
        (folder / COMPARISON_FILE).write_text(json.dumps(compared, indent=2, sort_keys=True) + "\n")
        extra = Extra(
            metrics={"challenger.agreement": comparison.agreement or 0.0},
            artifacts={str(folder / COMPARISON_FILE): "scoring"},
            summary={"challenger": {"model_version": challenger.model.version, **compared}},
        )
        summary, drift = finish(champion, scored[0], folder, started, params.monitor, extra)
        rival = finish(challenger, scored[1], challenger_folder, started, params.monitor)
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
