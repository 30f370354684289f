"""A registry after months of use, made in seconds: one real version copied into thousands.

Registering 10,000 versions and 100,000 runs through MLflow's client takes hours on a shared
machine (about 40 ms a call here); the tests and the `registry` benchmark need the store's
size, not the calls. So a project's real version 1 (its run, tags, model card and alias
moves) is copied row by row inside the store's database, in MLflow's own tables: the
embedded SQLite file or a team server's PostgreSQL. Every copy reads back through the client
like one MLflow wrote, and its model files are version 1's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _copy_rows(
    connection: Any,
    table: str,
    where: str,
    where_args: Mapping[str, object],
    changed: list[str],
    rows: Sequence[tuple[object, ...]],
) -> None:
    """Insert one copy of the rows matching `where` per tuple of `rows`, whose values replace
    the columns `changed` (in that order)."""
    from sqlalchemy import inspect, text

    columns = [column["name"] for column in inspect(connection).get_columns(table)]
    select = ", ".join(f":new_{changed.index(c)}" if c in changed else f'"{c}"' for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    statement = text(f"INSERT INTO {table} ({names}) SELECT {select} FROM {table} WHERE {where}")
    for start in range(0, len(rows), 10_000):
        connection.execute(
            statement,
            [
                {**where_args, **{f"new_{i}": value for i, value in enumerate(row)}}
                for row in rows[start : start + 10_000]
            ],
        )


def seed_registry(
    store: Path | str, model_name: str, versions: int, runs: int, moves: int = 0
) -> None:
    """Grow `model_name`, whose version 1 exists in `store` (a SQLite file, or a database URL
    such as a team server's postgresql://...), to `versions` versions, its experiment to at
    least `runs` runs, and its champion's history to `moves` recorded moves. Version n is
    registered n seconds after version 1, from a run of its own."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{store}" if isinstance(store, Path) else store
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _seed(connection, text, model_name, versions, runs, moves)
            if connection.dialect.name == "postgresql":
                # A server's database that grew over months has been analysed by autovacuum;
                # one filled in a second has no statistics until autovacuum's next round (up
                # to a minute), and until then PostgreSQL plans MLflow's searches as if the
                # tables were empty: ~45 ms a version instead of ~4 (benchmarks/notes.md).
                # SQLite has no autovacuum: an embedded store is left as MLflow keeps it.
                connection.execute(text(f"ANALYZE {', '.join(SEEDED_TABLES)}"))
    finally:
        engine.dispose()


# The tables seed_registry grows.
SEEDED_TABLES = ("runs", "model_versions", "model_version_tags", "registered_model_tags")


def _seed(
    connection: Any, text: Any, model_name: str, versions: int, runs: int, moves: int
) -> None:
    model = {"model": model_name}
    (run_id, created) = connection.execute(
        text(
            "SELECT run_id, creation_time FROM model_versions WHERE name = :model AND version = 1"
        ),
        model,
    ).one()
    new_runs = [uuid.uuid4().hex for _ in range(max(runs, versions) - 1)]
    _copy_rows(
        connection,
        "runs",
        "run_uuid = :run",
        {"run": run_id},
        ["run_uuid"],
        [(r,) for r in new_runs],
    )
    copies = [(n, created + 1000 * (n - 1), new_runs[n - 2]) for n in range(2, versions + 1)]
    where = "name = :model AND version = 1"
    _copy_rows(
        connection,
        "model_versions",
        where,
        model,
        ["version", "creation_time", "run_id"],
        copies,
    )
    connection.execute(
        text(
            "UPDATE model_versions SET last_updated_time = creation_time "
            "WHERE name = :model AND version > 1"
        ),
        model,
    )
    _copy_rows(
        connection, "model_version_tags", where, model, ["version"], [(n,) for n, *_ in copies]
    )
    if moves:
        (key,) = connection.execute(
            text(
                "SELECT key FROM registered_model_tags WHERE name = :model AND key LIKE "
                "'alias_history.%' ORDER BY key LIMIT 1"
            ),
            model,
        ).one()
        # Keys sort by time: the copies are older than the real move, one a second.
        prefix, epoch_ms, _ = key.rsplit(".", 2)
        keys = [
            (f"{prefix}.{int(epoch_ms) - 1000 * (moves - i):013d}.{i:04x}",)
            for i in range(moves - 1)
        ]
        _copy_rows(
            connection,
            "registered_model_tags",
            "name = :model AND key = :key",
            {**model, "key": key},
            ["key"],
            keys,
        )
