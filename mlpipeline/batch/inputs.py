"""Resolve: the checked input, the pinned and loaded model, its drift reference."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipeline.domain.chunk_scoring import check_schema, choose_id_column, feature_columns
from mlpipeline.domain.errors import PipelineError
from mlpipeline.files import chunked_tables
from mlpipeline.tracking import drift_reference, runs, scoring_runs

log = logging.getLogger("mlpipeline.score")

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Prepared:
    """What every engine starts from: the checked input, the pinned model, its reference."""

    source: Path
    columns: list[str]
    model: scoring_runs.ResolvedModel
    pipeline: Any
    id_column: str | None
    reference: dict[str, Any] | None


def prepare(
    source: Path,
    output: Path,
    model_uri: str,
    id_column: str | None,
    experiment_name: str,
    folders: bool = False,
) -> Prepared:
    """Check the input and the output folder, pin and load the model, check the input's
    columns against it and read its drift reference.

    Args:
        folders: the input may be a folder of Parquet parts (the Spark engine).
    """
    chunked_tables.check_readable(source, folders=folders)
    check_output(output)
    columns = chunked_tables.columns_of(source)
    runs.configure(experiment_name + scoring_runs.EXPERIMENT_SUFFIX)
    model = scoring_runs.resolve_model(model_uri)
    pipeline = scoring_runs.load_pipeline(model)
    features = feature_columns(pipeline)
    check_schema(str(source), columns, features)
    chosen_id = choose_id_column(str(source), columns, id_column)
    log.info("scoring %s with %s", source, model.describe())
    reference = drift_reference.load_reference(model.run_id) if model.run_id else None
    if reference is None:
        log.warning("%s has no drift reference: the batch is not compared", model.describe())
    return Prepared(source, columns, model, pipeline, chosen_id, reference)


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


def spark_job(prepared: Prepared, chunk_rows: int) -> Any:
    """The Spark engine's job for the prepared input and model, read `chunk_rows` at a time."""
    from mlpipeline.spark import scoring_engine as spark_engine

    return spark_engine.Job(
        source=str(prepared.source),
        load_uri=prepared.model.load_uri,
        columns=prepared.columns,
        features=feature_columns(prepared.pipeline),
        id_column=prepared.id_column,
        csv=prepared.source.is_file() and prepared.source.suffix == ".csv",
        reference=prepared.reference,
        chunk_rows=chunk_rows,
    )
