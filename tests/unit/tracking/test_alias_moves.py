"""Moving the champion (issue 30, item 16): a version that cannot serve is refused, and moves
of one alias are compare-and-set, serialised, so two at once cannot both record the same
"from" (a rollback would then go to the wrong version)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlpipeline.domain.errors import TrackingError
from mlpipeline.files.paths import ROOT
from mlpipeline.tracking import history, model_versions

MODEL = "iris_classifier"


@pytest.fixture
def store_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite store holding MODEL versions 1-4 (their sources are folders that do not
    exist) with @champion on 1, recorded."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for number in range(1, 5):
        client.create_model_version(MODEL, str(tmp_path / f"gone-{number}"))
    history.move_alias(client, uri, MODEL, "champion", None, "1", "first", "save")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_promote_refuses_a_version_whose_files_are_gone(store_uri: str) -> None:
    with pytest.raises(TrackingError) as caught:
        model_versions.promote(MODEL, "champion", "3", "try")
    message = str(caught.value)
    assert message.startswith(f"{MODEL} version 3 cannot be champion: its files are gone")
    assert "\n" not in message
    assert history.current_version(_client(store_uri), MODEL, "champion") == "1"
    moves, _ = history.read_moves(_client(store_uri), MODEL, "champion")
    assert [m.to_version for m in moves] == ["1"]


def test_promote_refuses_a_failed_registration(store_uri: str, tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # as MLflow marks a failed upload
        db.execute("UPDATE model_versions SET status = 'FAILED_REGISTRATION' WHERE version = 2")
    with pytest.raises(TrackingError) as caught:
        model_versions.promote(MODEL, "champion", "2", "try")
    assert "version 2 cannot be champion: its registration is FAILED_REGISTRATION" in str(
        caught.value
    )
    assert history.current_version(_client(store_uri), MODEL, "champion") == "1"


def test_a_move_from_a_stale_version_changes_nothing(store_uri: str) -> None:
    client = _client(store_uri)
    with pytest.raises(history.AliasMovedError) as caught:
        history.move_alias(client, store_uri, MODEL, "champion", "2", "3", "stale", "promote")
    assert caught.value.current == "1"
    assert "moved to version 1 while this command ran (it read version 2)" in str(caught.value)
    assert history.current_version(client, MODEL, "champion") == "1"
    assert len(history.read_moves(client, MODEL, "champion")[0]) == 1


# Each process reads the alias, waits until all have read it, then moves it.
CONTENDER = """
import sys, time
from pathlib import Path
from mlflow import MlflowClient
from mlpipeline.tracking import history
uri, target, gate = sys.argv[1], sys.argv[2], Path(sys.argv[3])
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
before = history.current_version(client, "iris_classifier", "champion")
(gate / target).touch()
while len(list(gate.iterdir())) < int(sys.argv[4]):
    time.sleep(0.01)
try:
    history.move_alias(client, uri, "iris_classifier", "champion", before, target, "race",
                       "promote")
except history.AliasMovedError:
    sys.exit(9)
"""


def test_two_moves_at_once_record_one_history(store_uri: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    targets = ["2", "3", "4"]
    contenders = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, store_uri, target, str(gate), str(len(targets))],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for target in targets
    ]
    codes = [c.wait(timeout=300) for c in contenders]
    assert sorted(codes) == [0, 9, 9], [c.stderr.read()[-2000:] for c in contenders]
    winner = targets[codes.index(0)]
    client = _client(store_uri)
    moves, current = history.read_moves(client, MODEL, "champion")
    assert current == winner
    assert [(m.from_version, m.to_version) for m in moves] == [(None, "1"), ("1", winner)]
