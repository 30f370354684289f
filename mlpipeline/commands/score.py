"""`python -m mlpipeline.commands.score INPUT`: score a CSV or Parquet file with the champion.

python -m mlpipeline.commands.score data/new/batch.csv
python -m mlpipeline.commands.score batch.parquet --model models:/iris_classifier/3

The alias is resolved once, so a promotion during the scoring does not mix two models. The
file is read in chunks (memory stays flat whatever its size); every row is judged by the
model's input guard, as a served request is: refused rows go to rejects.<ext> with their
number and reason, the others to predictions.<ext> with the label and each class's
probability, in the input's order, with the input's `id` column (or --id-column). Both go
to one folder (default scores/<input name>/), written all-or-nothing, and a run of the
`<experiment>-scoring` experiment records the model version, rows, rejects and speed.
It fails (exit 1, nothing written) when the columns do not match the model's or the model
refuses every row.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipeline.domain.params import Params
from mlpipeline.domain.scoring import (
    REASON_COLUMN,
    ROW_COLUMN,
    Tally,
    check_schema,
    choose_id_column,
    feature_columns,
    score_chunk,
)
from mlpipeline.files import chunked_tables, paths
from mlpipeline.files.outputs import staged_outputs
from mlpipeline.files.params_yaml import load_params
from mlpipeline.runner import exit_on_user_error
from mlpipeline.tracking import runs, scoring

log = logging.getLogger("mlpipeline.score")

SCORES_DIR = paths.ROOT / "scores"
CHUNK_ROWS = 100_000
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Request:
    input: Path
    model: str
    output: Path
    id_column: str | None = None
    chunk_rows: int = CHUNK_ROWS


def score(request: Request, params: Params) -> dict[str, object]:
    """Score `request.input` into `request.output`; returns the summary it wrote and logged."""
    source = request.input
    chunked_tables.check_readable(source)
    columns = chunked_tables.columns_of(source)
    runs.configure(params.mlflow.experiment_name + scoring.EXPERIMENT_SUFFIX)
    model = scoring.resolve_model(request.model)
    pipeline = scoring.load_pipeline(model)
    features = feature_columns(pipeline)
    check_schema(str(source), columns, features)
    id_column = choose_id_column(str(source), columns, request.id_column)
    log.info("scoring %s with %s", source, model.describe())

    suffix = source.suffix
    parquet = suffix == ".parquet"
    tally = Tally()
    started = time.perf_counter()
    with staged_outputs() as outputs:
        folder = outputs.folder(request.output)
        predictions = chunked_tables.ChunkWriter(folder / f"predictions{suffix}", parquet)
        rejects = chunked_tables.ChunkWriter(folder / f"rejects{suffix}", parquet)
        chunks = chunked_tables.read_chunks(
            source, request.chunk_rows, [id_column] if id_column else []
        )
        with _progress(chunked_tables.row_count(source)) as progress:
            for chunk in chunks:
                scored = score_chunk(pipeline, chunk, tally.rows + 1, id_column)
                predictions.write(scored.predictions)
                rejects.write(scored.rejects)
                tally.add(scored)
                progress.update(len(chunk))
        tally.check_usable(str(source))
        predictions.close()
        rejects.close(columns=[ROW_COLUMN, *([id_column] if id_column else []), REASON_COLUMN])
        seconds = time.perf_counter() - started
        metrics = {
            "rows": float(tally.rows),
            "rejected_rows": float(tally.rejected),
            "scored_rows": float(tally.scored),
            "seconds": seconds,
            "rows_per_second": tally.rows / seconds if seconds > 0 else 0.0,
            **{f"class_share.{label}": share for label, share in tally.class_shares().items()},
        }
        with runs.mlflow_run(run_name=f"score {source.name}") as run:
            summary: dict[str, object] = {
                "input": str(source),
                "model_uri": model.requested,
                "model_version": model.version,
                "model_run_id": model.run_id,
                "scoring_run_id": run.info.run_id,
                "class_counts": dict(sorted(tally.classes.items())),
                "metrics": metrics,
            }
            summary_path = folder / SUMMARY_FILE
            summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
            scoring.log_scoring(
                model,
                params={"input": source, "id_column": id_column or "-"},
                metrics=metrics,
                artifacts={str(summary_path): "scoring"},
            )
    log.info(
        "%d rows: %d scored, %d rejected, in %.1f s (%.0f rows/s) → %s",
        tally.rows,
        tally.scored,
        tally.rejected,
        seconds,
        metrics["rows_per_second"],
        request.output,
    )
    return summary


def _progress(total: int | None) -> Any:
    """A progress bar on stderr in a terminal; nothing in logs and pipes."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" rows", unit_scale=True, desc="scoring", disable=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mlpipeline.commands.score",
        description="Score a CSV or Parquet file with a registered model: predictions and "
        "rejects in one folder, written all-or-nothing, and a scoring run in MLflow.",
    )
    parser.add_argument("input", type=Path, help="a .csv or .parquet file of feature rows")
    parser.add_argument(
        "--model",
        help="models:/<name>@<alias> or models:/<name>/<version> (default: the champion, "
        "models:/<mlflow.registered_model_name>@<mlflow.champion_alias>)",
    )
    parser.add_argument(
        "--output", type=Path, help="folder for the results (default: scores/<input name>/)"
    )
    parser.add_argument("--id-column", help="column carried into the results (default: id)")
    parser.add_argument(
        "--chunk-rows", type=int, default=CHUNK_ROWS, help="rows per chunk (default: %(default)s)"
    )
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="default: %(default)s")
    args = parser.parse_args(argv)
    if args.chunk_rows < 1:
        parser.error("--chunk-rows must be at least 1")
    logging.basicConfig(level=logging.INFO, format="[score] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        params = load_params(args.params)
        names = params.mlflow
        request = Request(
            input=args.input,
            model=args.model or f"models:/{names.registered_model_name}@{names.champion_alias}",
            output=args.output or SCORES_DIR / args.input.stem,
            id_column=args.id_column,
            chunk_rows=args.chunk_rows,
        )
        score(request, params)
    sys.exit(0)


if __name__ == "__main__":
    main()
