"""The Spark driver keeps secrets off the command line: the cluster's spark.authenticate
secret and the credentials its executors get reach Spark's JVM in a private properties file
(pyspark puts every other builder setting on spark-submit's command line, which `ps` shows
to every user of the machine), and arrive intact."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlpipeline.spark import session

# One local Spark session: a JVM start, tens of seconds on a shared machine.
pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUTH_SECRET = "auth-" + os.urandom(8).hex()
# A backslash and '=' survive the properties file's escaping.
PASSWORD = "pw-" + os.urandom(8).hex() + "\\=x"


def command_lines() -> str:
    """Every process's command line, as `ps` shows them to any user."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # a process that ended meanwhile
            continue
    return "\n".join(lines)


def test_the_private_file_is_0600_and_gone_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
    with session.private_settings({"spark.authenticate.secret": AUTH_SECRET}):
        args = os.environ["PYSPARK_SUBMIT_ARGS"].split()
        assert args[0] == "--properties-file" and args[-1] == "pyspark-shell", args
        path = Path(args[1])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.read_text() == f"spark.authenticate.secret={AUTH_SECRET}\n"
    assert "PYSPARK_SUBMIT_ARGS" not in os.environ
    assert not path.parent.exists()


def test_secrets_reach_spark_but_not_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(session.AUTH_SECRET_ENV, AUTH_SECRET)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    with session.spark_session("local[1]", "secrets", env, 100) as spark:
        commands = command_lines()
        conf = dict(spark.sparkContext.getConf().getAll())
        seen = (
            spark.sparkContext.parallelize([0], 1)
            .map(lambda _: os.environ.get("MLFLOW_TRACKING_PASSWORD"))
            .collect()
        )
    assert "org.apache.spark.deploy.SparkSubmit" in commands
    assert AUTH_SECRET not in commands and PASSWORD not in commands
    assert conf["spark.authenticate"] == "true"
    assert conf["spark.authenticate.secret"] == AUTH_SECRET
    # Not secret: still an ordinary setting.
    assert conf["spark.executorEnv.MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9"
    assert seen == [PASSWORD]
