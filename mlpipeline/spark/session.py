"""A Spark session for the scoring command, and the one-line failures of getting one.

pyspark is imported only inside the functions. Before a session starts: Java is found and a
standalone master answers; once it has started, a first small job proves that executors
exist and can load the model, within EXECUTOR_WAIT seconds, so a master with no workers or
executors without the tracking server fail in under a minute with the cause and the fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mlpipeline.domain.errors import PipelineError

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"
MASTER_ENV = "SPARK_MASTER"
# Seconds to wait for executors to run the first job (a standalone executor starts a JVM and
# a Python worker: a few seconds on a quiet machine).
EXECUTOR_WAIT = 30.0
MASTER_CONNECT_TIMEOUT = 5.0
# Kept small: the driver only plans the job and adds up counts; executors hold one chunk.
DRIVER_MEMORY = os.environ.get("SPARK_DRIVER_MEMORY", "512m")
EXECUTOR_MEMORY = os.environ.get("SPARK_EXECUTOR_MEMORY", "512m")
# What executors need to reach the tracking server and its artifact store, passed on when set.
EXECUTOR_ENV_NAMES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)
# Those of them that are secrets: they reach the driver's JVM in a private file, never on
# spark-submit's command line (private_settings).
SECRET_ENV_NAMES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY")
# The shared secret of a cluster started with spark.authenticate (docker-compose.yml's spark
# profile): the driver must hold it too, or the master refuses it.
AUTH_SECRET_ENV = "SPARK_AUTH_SECRET"


class SparkSetupError(PipelineError):
    """Spark cannot run the job: no Java, no master, no executors, or executors without the
    model."""


def master_url(requested: str | None) -> str:
    """--spark-master, else $SPARK_MASTER, else local[*]."""
    return requested or os.environ.get(MASTER_ENV) or DEFAULT_MASTER


def check_java() -> None:
    """A SparkSetupError unless a `java` is at $JAVA_HOME/bin or on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return
    if shutil.which("java"):
        return
    raise SparkSetupError(
        "Spark needs Java 17 or newer and finds no `java` (PATH, JAVA_HOME): install it "
        "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    )


def check_master(master: str) -> None:
    """A SparkSetupError unless each host:port of a spark:// master accepts a connection."""
    if not master.startswith("spark://"):
        return
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=MASTER_CONNECT_TIMEOUT):
                pass
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise SparkSetupError(
                f"the Spark master {master} cannot be reached ({reason}): start it "
                "(spark-class org.apache.spark.deploy.master.Master) or name another with "
                f"--spark-master / ${MASTER_ENV}"
            ) from None


def executor_env(environ: Mapping[str, str], tracking_uri: str) -> dict[str, str]:
    """The environment executors get: the tracking URI the driver resolved (absolute), and the
    credentials set here."""
    env = {name: environ[name] for name in EXECUTOR_ENV_NAMES if environ.get(name)}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


def auth_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """spark.authenticate with the cluster's secret, when $SPARK_AUTH_SECRET holds one."""
    secret = environ.get(AUTH_SECRET_ENV)
    if not secret:
        return {}
    return {"spark.authenticate": "true", "spark.authenticate.secret": secret}


def _properties_value(value: str) -> str:
    """`value` as a Java properties file reads it back (Spark then trims its ends)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


@contextlib.contextmanager
def private_settings(settings: Mapping[str, str]) -> Iterator[None]:
    """While the driver's JVM starts: `settings` in a properties file only this user reads.

    pyspark puts every builder setting on spark-submit's command line, which `ps` shows to
    every user of the machine (the host's, for a container's processes); spark-submit's
    `--properties-file` (through PYSPARK_SUBMIT_ARGS) keeps secrets off it. The file is
    removed once the JVM has read it.
    """
    if not settings:
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="mlpipeline-spark-"))  # mode 700
    path = folder / "secret.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{key}={_properties_value(value)}\n" for key, value in settings.items())
    previous = os.environ.get("PYSPARK_SUBMIT_ARGS")
    submit_args = previous or "pyspark-shell"
    os.environ["PYSPARK_SUBMIT_ARGS"] = f"--properties-file {shlex.quote(str(path))} {submit_args}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYSPARK_SUBMIT_ARGS", None)
        else:
            os.environ["PYSPARK_SUBMIT_ARGS"] = previous
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def spark_session(
    master: str, app_name: str, env: Mapping[str, str], chunk_rows: int
) -> Iterator[Any]:
    """A SparkSession on `master`, stopped on the way out."""
    check_java()
    check_master(master)
    # pyspark 4.x warns that it does not fully support pandas 3 at every pandas UDF; what this
    # job uses of it (Arrow batches to and from pandas) is tested to give the local engine's
    # bits (tests/integration/scoring/test_score_spark*.py).
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    from pyspark.sql import SparkSession

    # Executors run this environment's Python, unless told otherwise: pyspark sends the
    # interpreter named by PYSPARK_PYTHON with each task.
    python = os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", DRIVER_MEMORY)
        .config("spark.executor.memory", EXECUTOR_MEMORY)
        .config("spark.pyspark.python", python)
        # One Python worker per core, kept between tasks: the model loads once per worker.
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
    )
    secret = auth_settings(os.environ)
    for name, value in env.items():
        if name in SECRET_ENV_NAMES:
            secret[f"spark.executorEnv.{name}"] = value
        else:
            builder = builder.config(f"spark.executorEnv.{name}", value)
    with private_settings(secret):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def driver_peak_rss_mib() -> dict[str, float]:
    """The driver's peak resident memory, MiB: this Python process and the JVM it started
    (its child; Linux's /proc/<pid>/status VmHWM, 0 where there is no /proc)."""
    import resource

    python = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    jvm = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid ...: comm may hold spaces and parentheses
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent != os.getpid():
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                jvm = max(jvm, int(line.split()[1]) / 1024)
    return {"spark_driver_python_peak_rss_mib": python, "spark_driver_jvm_peak_rss_mib": jvm}


def _probe(load: Any) -> Any:
    def probe(batches: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        # Read to the end: a Python worker that leaves input unread is not reused (pyspark's
        # worker exits when its input does not end where it stopped), and the scoring's
        # tasks would load the model again in new workers.
        for _ in batches:
            pass
        try:
            load()
        except Exception as exc:  # reported to the driver as data: the cause, not a retry
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            yield pd.DataFrame({"status": ["error"], "message": [message]})
            return
        yield pd.DataFrame({"status": ["ok"], "message": [""]})

    return probe


def python_error(exc: BaseException) -> str:
    """The last Python exception a failed Spark job's message quotes, else its first line."""
    quoted = re.findall(r"^(\w+(?:Error|Exception)): (.+)$", str(exc), re.MULTILINE)
    if quoted:
        name, message = quoted[-1]
        return f"{name}: {message}"
    return str(exc).strip().splitlines()[0][:300]


def _run_job(context: Any, job: Any, wait: float | None) -> list[Any] | None:
    """`job(context)`'s result; None if it has not finished within `wait` seconds (then it
    is cancelled). A failed job is a SparkSetupError naming the Python error it met."""
    group = f"probe-{uuid.uuid4().hex}"
    outcome: dict[str, Any] = {}

    def run() -> None:
        context.setJobGroup(group, "mlpipeline: are there executors", interruptOnCancel=True)
        try:
            outcome["results"] = job(context)
        except Exception as exc:  # the driver's own failure, raised below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    if thread.is_alive():
        context.cancelJobGroup(group)
        return None
    if "error" in outcome:
        raise SparkSetupError(python_error(outcome["error"]))
    return outcome["results"]


def check_executors(spark: Any, load: Any, master: str, wait: float = EXECUTOR_WAIT) -> None:
    """A SparkSetupError if no executor runs a task within `wait` seconds, or if executors
    cannot run `load` (the model's loader; once per core)."""
    context = spark.sparkContext
    cores = max(context.defaultParallelism, 1)
    log.info("Spark's driver is up; waiting up to %.0f s for an executor", wait)
    started = _run_job(context, lambda c: c.parallelize([0], 1).collect(), wait)
    if started is None:
        raise SparkSetupError(
            f"no Spark executor ran a task within {wait:.0f} s: the master {master} has no "
            f"workers, or none with {EXECUTOR_MEMORY} of memory and a core free; start one "
            f"(spark-class org.apache.spark.deploy.worker.Worker {master}) or lower "
            "SPARK_EXECUTOR_MEMORY"
        )
    fix = (
        f"executors run {os.environ['PYSPARK_PYTHON']} (PYSPARK_PYTHON), which needs this "
        "project's environment, and reach the tracking server and artifact store with "
        "MLFLOW_TRACKING_URI and the credentials passed on from here (docs/scoring.md)"
    )
    # A job of the scoring's kind (mapInPandas) on every core, whose Python workers stay in
    # the pool with the model loaded for the scoring's tasks (_probe reads its input to the
    # end so they do; the model's loads by the scoring job were 13-30 s each before,
    # benchmarks/notes.md, issue #33).
    frame = spark.range(0, cores, 1, cores)
    try:
        results = _run_job(
            context,
            lambda _: frame.mapInPandas(_probe(load), "status string, message string").collect(),
            None,
        )
    except SparkSetupError as exc:
        raise SparkSetupError(f"Spark's executors cannot load the model: {exc}; {fix}") from None
    failures = sorted({message for status, message in results or [] if status != "ok"})
    if failures:
        raise SparkSetupError(f"Spark's executors cannot load the model: {failures[0]}; {fix}")
