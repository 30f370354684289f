"""The rows `mlflow gc` leaves behind: the links of purged runs and logged models.

MLflow 3's `mlflow gc` purges a run's metrics, params and tags and a logged model's own
rows, but not the `inputs` rows that link them (a dataset to the run that used it, a run to
the model it logged or read), nor those links' `input_tags`, nor a dataset no run uses any
more: in a store that keeps months of runs those rows pile up in PostgreSQL. MLflow's client
has no call that deletes them, so this module removes them with SQL, in one transaction,
from the database `mlflow gc` itself was given (sqlalchemy is imported inside).

Only links whose run or logged model no longer exists are touched: what MLflow's own
readers could never reach again. Run after a successful `mlflow gc`; any later run also
removes what an interrupted one left.
"""

from __future__ import annotations

from dataclasses import dataclass

# Links naming a run or a logged model that no longer exists (MLflow's `inputs` edge types).
ORPHAN_LINKS = """
    SELECT input_uuid, source_type, source_id FROM inputs WHERE
      (destination_type = 'RUN' AND destination_id NOT IN (SELECT run_uuid FROM runs))
      OR (source_type IN ('RUN_INPUT', 'RUN_OUTPUT')
          AND source_id NOT IN (SELECT run_uuid FROM runs))
      OR (destination_type IN ('MODEL_INPUT', 'MODEL_OUTPUT')
          AND destination_id NOT IN (SELECT model_id FROM logged_models))
"""


@dataclass(frozen=True)
class Removed:
    links: int
    datasets: int


def remove_orphan_links(backend_store_uri: str) -> Removed:
    """Delete the links (and their tags) of runs and logged models that no longer exist, then
    the datasets only those links used."""
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(backend_store_uri)
    try:
        with engine.begin() as connection:
            found = connection.execute(text(ORPHAN_LINKS)).all()
            links = [row.input_uuid for row in found]
            datasets = sorted({row.source_id for row in found if row.source_type == "DATASET"})
            if not links:
                return Removed(0, 0)
            for statement in (
                "DELETE FROM input_tags WHERE input_uuid IN :links",
                "DELETE FROM inputs WHERE input_uuid IN :links",
            ):
                connection.execute(
                    text(statement).bindparams(bindparam("links", expanding=True)),
                    {"links": links},
                )
            unused = connection.execute(
                text(
                    "DELETE FROM datasets WHERE dataset_uuid IN :datasets AND NOT EXISTS "
                    "(SELECT 1 FROM inputs WHERE source_type = 'DATASET' "
                    "AND source_id = datasets.dataset_uuid)"
                ).bindparams(bindparam("datasets", expanding=True)),
                {"datasets": datasets},
            )
            return Removed(len(links), unused.rowcount if datasets else 0)
    finally:
        engine.dispose()
