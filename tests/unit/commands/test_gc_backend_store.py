"""Where `mlpipeline model gc --yes` purges: a SQLite store itself, a server only through the
database the user names (`--backend-store-uri`, default `MLFLOW_BACKEND_STORE_URI`).

The refusal on a real server, before anything is deleted, is
tests/integration/registry/test_gc_team.py's.
"""

from __future__ import annotations

import click
import pytest

from mlpipeline.commands.gc import BACKEND_STORE_ENV, backend_store, gc_command
from mlpipeline.domain.errors import PipelineError

SERVER = "http://127.0.0.1:5000"
DATABASE = "postgresql://mlflow:pw@db/mlflow"


@pytest.mark.parametrize(
    ("uri", "given", "purged"),
    [
        ("sqlite:////srv/mlflow.db", None, "sqlite:////srv/mlflow.db"),
        ("sqlite:////srv/mlflow.db", DATABASE, "sqlite:////srv/mlflow.db"),
        (SERVER, DATABASE, DATABASE),
    ],
)
def test_the_store_purged(uri: str, given: str | None, purged: str) -> None:
    assert backend_store(uri, given) == purged


def test_a_server_without_its_database_is_refused_naming_both_ways_to_give_it() -> None:
    with pytest.raises(PipelineError) as refused:
        backend_store(SERVER, None)
    assert "--backend-store-uri" in str(refused.value)
    assert BACKEND_STORE_ENV in str(refused.value)


def test_the_option_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    [option] = [param for param in gc_command.params if param.name == "backend_store_uri"]
    monkeypatch.setenv(BACKEND_STORE_ENV, DATABASE)
    assert option.get_default(click.Context(gc_command), call=True) == DATABASE
    monkeypatch.delenv(BACKEND_STORE_ENV)
    assert option.get_default(click.Context(gc_command), call=True) is None
