"""A registry after months of use, made in seconds: one real version copied into thousands.

Registering 10,000 versions and 100,000 runs through MLflow's client takes hours on a shared
machine (about 40 ms a call here); the tests and the `registry` benchmark need the store's
size, not the calls. So a project's real version 1 (its run, tags, model card and alias
moves) is copied row by row inside the embedded SQLite store, in MLflow's own tables: every
copy reads back through the client like one MLflow wrote, and its model files are version 1's.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _copy_rows(
    db: sqlite3.Connection,
    table: str,
    where: str,
    where_args: tuple[object, ...],
    changed: dict[str, int],
    rows: list[tuple[object, ...]],
) -> None:
    """Insert one copy of the rows matching `where` per tuple of `rows`, whose values replace
    the columns of `changed` (column → position in the tuple)."""
    columns = _columns(db, table)
    select = ", ".join("?" if c in changed else f'"{c}"' for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    # The placeholders of the SELECT list come first, in column order; then the WHERE's.
    order = [changed[c] for c in columns if c in changed]
    db.executemany(
        f"INSERT INTO {table} ({names}) SELECT {select} FROM {table} WHERE {where}",
        [tuple(row[i] for i in order) + where_args for row in rows],
    )


def seed_registry(db_path: Path, model_name: str, versions: int, runs: int, moves: int = 0) -> None:
    """Grow `model_name`, whose version 1 exists in the SQLite store `db_path`, to `versions`
    versions, its experiment to at least `runs` runs, and its champion's history to `moves`
    recorded moves. Version n is registered n seconds after version 1, from a run of its own."""
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        (run_id, created) = db.execute(
            "SELECT run_id, creation_time FROM model_versions WHERE name = ? AND version = 1",
            (model_name,),
        ).fetchone()
        new_runs = [uuid.uuid4().hex for _ in range(max(runs, versions) - 1)]
        _copy_rows(db, "runs", "run_uuid = ?", (run_id,), {"run_uuid": 0}, [(r,) for r in new_runs])
        copies = [(n, created + 1000 * (n - 1), new_runs[n - 2]) for n in range(2, versions + 1)]
        where = "name = ? AND version = 1"
        _copy_rows(
            db,
            "model_versions",
            where,
            (model_name,),
            {"version": 0, "creation_time": 1, "last_updated_time": 1, "run_id": 2},
            copies,
        )
        _copy_rows(
            db,
            "model_version_tags",
            where,
            (model_name,),
            {"version": 0},
            [(n,) for n, *_ in copies],
        )
        if moves:
            (key,) = db.execute(
                "SELECT key FROM registered_model_tags WHERE name = ? AND key LIKE "
                "'alias_history.%' ORDER BY key LIMIT 1",
                (model_name,),
            ).fetchone()
            # Keys sort by time: the copies are older than the real move, one a second.
            prefix, epoch_ms, _ = key.rsplit(".", 2)
            keys = [
                (f"{prefix}.{int(epoch_ms) - 1000 * (moves - i):013d}.{i:04x}",)
                for i in range(moves - 1)
            ]
            _copy_rows(
                db,
                "registered_model_tags",
                "name = ? AND key = ?",
                (model_name, key),
                {"key": 0},
                keys,
            )
