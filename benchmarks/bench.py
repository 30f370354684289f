"""What each workflow costs, as ratios to a plain-Python floor, and how it scales (issue #5).

`make bench` (or `uv run python -m benchmarks.bench [--quick] [--runs N]`) measures, on this
machine, in throwaway git copies of the repository under a temporary folder:

1. floor: benchmarks/floor.py, the same work in one plain Python process;
1b. the anchor: benchmarks/mlflow_script.py, the whole job as one MLflow script;
2. cold `dvc repro` in a fresh copy (embedded MLflow store, nothing cached), and per stage
   (time, imports, peak RSS) from a second copy whose stages run under stage_probe.py;
3. no-op `dvc repro` against `dvc status` on the same, built copy;
4. `dvc exp run -S train.n_estimators=...`: which stages ran and how long it took;
5. the ZenML pipeline: its store created (once per machine), then a project's cold run (fresh
   MLflow store, nothing cached) and the same run again, cached;
5b. `--only zenml-docker` (not in a full `make bench`): the same with every step in its own
   container (`make zenml-stack`'s local_docker stack, image BENCH_IMAGE, default
   dvc-mlops-pipeline:latest, already built), against moto's S3 server and an MLflow server
   on 127.0.0.1: cold and cached;
6. scale: the synthetic source at 10k, 100k and 1M rows, pipeline and floor, per stage;
7. batch scoring (`mlpipeline model score`) of 1M and 10M Iris-like rows with the
   champion: rows per second against benchmarks/score_floor.py (one process, whole file,
   `model.predict`), peak RSS, and the drift computation's seconds;
7b. scoring engines (benchmarks/scoring_engines.py): the same CSV of 1M rows (and 10M with
   BENCH_ENGINES_10M=1) with the local engine, `--engine spark` on local[2] and on a
   standalone cluster of two one-core workers, run by run in turn: rows/s and per core,
   Spark's start-up apart, the driver's peak RSS, and whether the outputs are equal.
8. the team server (`--only team`);
9. the registry after months of use (`--only registry`): `mlpipeline model list`, `list --page
   LAST`, `history`, `card` and the save stage on a built project's store, then on the same
   store grown to 10,000 versions, 100,000 runs and 1,000 alias moves (registry_seed.py);
10. the sweep (benchmarks/sweep.py): 8 trials (--quick: 2) as a plain `dvc exp run` loop
   against `mlpipeline model sweep` on 1 and 2 local Ray workers, rounds interleaved: Ray's
   own cost per trial, each step of a trial's task, the speed-up of 2 workers.

Every figure is the median of the runs with min and max. Results go to benchmarks/results.json
and benchmarks/results.md (--quick or --only: results-quick.*, git-ignored; `--only FIGURE
--merge` puts that figure into results.json/md, keeping the others, and the report says when
and under what load it was measured). Nothing here is run by the tests; timings only mean
something on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import scoring_engines
from benchmarks.latency import latency_by_group, parse_access_log
from benchmarks.registry_seed import seed_registry
from mlpipeline import tool_env as tools
from tests.support import repository
from tests.support import spark as spark_cluster
from tests.support import team as team_stack

log = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks"
VENV_BIN = tools.VENV_BIN
STAGES = ("load", "preprocess", "train", "evaluate", "save")

# Scale runs train with the Iris defaults' train section on both cores (pipeline and floor alike;
# results do not depend on n_jobs): on one core the 1M-row fit alone takes minutes.
SCALE_TRAIN = {"n_jobs": -1}
SCALE_FEATURES = 10
SCALE_CLASSES = 3

# What a user's first ZenML command does once: create ZenML's global config and SQLite store.
ZENML_STORE = "from zenml.client import Client; Client().zen_store.get_store_info()"

# The anchor ("script") is benchmarks/mlflow_script.py: the whole job as one MLflow script with
# the same tracking, what a user would write instead of the pipeline.
TARGETS = {
    "repro_vs_script": ("full dvc repro on Iris", "≤ 2.5× one-process MLflow script", 2.5),
    "exp_vs_script": ("`dvc exp run -S train.n_estimators=…`", "≤ 1.6× the script", 1.6),
    "noop_vs_status": ("no-op dvc repro", "≤ 1.3× dvc status", 1.3),
    # CPU seconds (user + system of the whole process tree), the project's own venv built by
    # `uv sync --compile-bytecode` as `make setup` does: issue #32.
    "make_run_vs_noop_cpu": (
        "`make run` with nothing to do (CPU)",
        "≤ 1.3× a no-op `dvc repro`'s CPU",
        1.3,
    ),
    # Through the team stack's TLS front door, a stage's calls (access log): issue #32.
    "team_p50_ms": ("team server: per call through the front door, p50", "≤ 20 ms", 20.0),
    "team_p99_ms": ("team server: per call through the front door, p99", "≤ 80 ms", 80.0),
    "team_repro_vs_embedded": (
        "team server: `dvc repro --force`",
        "≤ 1.3× on the embedded store",
        1.3,
    ),
    "stage_work_s": (
        "MLflow stage (train, evaluate, save) minus its imports, worst",
        "≤ 1.5 s",
        1.5,
    ),
    "zenml_cached_vs_repro": ("cached ZenML run", "≤ 0.5× full repro", 0.5),
    "zenml_cold_vs_script": ("cold ZenML run", "≤ 1.5× the script", 1.5),
    # The targets are set for 100k and 1M rows; the labels name the sizes measured
    # (--quick: 1k and 10k), whose figures these keys keep in results.json.
    "scale_1m_vs_floor": ("{large} rows: pipeline", "≤ 1.5× floor", 1.5),
    "scale_1m_peak_rss_gib": ("{large} rows: peak RSS of any stage", "≤ 1 GiB", 1.0),
    "scale_growth_100k_1m": ("{small} → {large} rows: pipeline time growth", "≤ 12×", 12.0),
    # Scoring: throughput as time per row against the plain predict (≥ 0.8× its rows per
    # second is ≤ 1.25× its time), at the smaller size (1M); memory at the larger (10M).
    "scoring_vs_predict": (
        "scoring {score_small} rows: time per row",
        "≤ 1.25× `model.predict` (≥ 0.8× its rows/s)",
        1.25,
    ),
    "scoring_peak_rss_gib": ("scoring {score_large} rows: peak RSS", "≤ 1 GiB", 1.0),
    "scoring_rss_growth": (
        "scoring {score_small} → {score_large} rows: peak RSS growth",
        "≤ 1.5× (flat)",
        1.5,
    ),
    # Issue #34: the sweep's fixed costs per trial and what a second worker buys on 2 cores.
    "sweep_ray_cost_s": ("sweep, 1 Ray worker: Ray's own cost per trial", "≤ 2 s", 2.0),
    "sweep_2_vs_loop": (
        "sweep of {sweep_trials} trials on 2 Ray workers: wall time",
        "≤ 0.625× the `dvc exp run` loop (≥ 1.6× faster)",
        0.625,
    ),
}
# The sweep's trials (--quick: 2).
SWEEP_TRIALS = 8
SWEEP_TRIALS_QUICK = 2
# Scoring sizes (--quick: 10k and 100k); the batch is Iris resampled with a little noise.
SCORING_ROWS = [1_000_000, 10_000_000]
SCORING_ROWS_QUICK = [10_000, 100_000]
MLFLOW_STAGES = ("train", "evaluate", "save")
# What `--only` may name; a full run measures all but zenml-docker.
FIGURES = (
    "floor",
    "repro",
    "noop",
    "exp",
    "zenml",
    "zenml-docker",
    "scale",
    "scoring",
    "engines",
    "team",
    "registry",
    "sweep",
)
# The registry after months of use (issue #35): versions, runs and recorded alias moves.
REGISTRY_SIZE = {"versions": 10_000, "runs": 100_000, "moves": 1_000}
REGISTRY_SIZE_QUICK = {"versions": 1_000, "runs": 10_000, "moves": 100}
REGISTRY_MODEL = "iris_classifier"


def rows_label(rows: int | None) -> str:
    """1000 → 1k, 1000000 → 1M: how the tables name a size."""
    if rows is None:
        return "?"
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{unit}"
    return f"{rows:,}"


# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_mib: float  # the largest single process in the tree (ru_maxrss of wait4)
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system of the process and every child it waited for


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the raw values (seconds, MiB or a ratio)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "values": [round(v, 4) for v in values],
    }


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The project's venv first; no inherited MLflow, DVC or ZenML settings; no analytics."""
    return tools.tool_env(extra, git_identity="bench")


def timed(args: Sequence[str | Path], cwd: Path, env: Mapping[str, str]) -> Timed:
    """Run a command to completion: wall seconds and the peak RSS of its largest process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            [str(arg) for arg in args], cwd=cwd, env=dict(env), stdout=out, stderr=err
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {child.returncode} in {cwd}\n"
            f"--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return Timed(seconds, usage.ru_maxrss / 1024, stdout, stderr, cpu)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(command: Sequence[str | Path], env: Mapping[str, str], cwd: Path, url: str):
    """Start a server (its log beside it in `cwd`) and wait until `url` answers."""
    log_path = cwd / f"{Path(str(command[0])).name}.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"{command[0]} did not answer on {url}:\n{log_path.read_text()[-2000:]}")


def snapshot_working_tree(dest: Path) -> Path:
    """The working tree copied once so every run sees the same: git-tracked files, the
    template's Iris defaults as params.yaml, and the data the user tracks with `dvc add`
    (tests/support/repository.py, as the test fixtures do): the figures do not depend on the user's
    params or data.
    """

    return repository.copy_repository(dest, ROOT, tool_env())


def copy_repository(snapshot: Path, dest: Path, edit: Callable[[Path], None] | None = None) -> Path:
    """A fresh git repository holding the snapshot's files (after `edit`)."""
    shutil.copytree(snapshot, dest)
    if edit is not None:
        edit(dest)
    env = tool_env()
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "--allow-empty", "-m", "benchmark copy"],
    ):
        subprocess.run(command, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def probe_stages(root: Path) -> None:
    """Wrap every dvc.yaml cmd in stage_probe.py, which records the stage's time and RSS."""
    dvc_yaml = root / "dvc.yaml"
    spec = yaml.safe_load(dvc_yaml.read_text())
    for name, stage in spec["stages"].items():
        stage["cmd"] = f"python benchmarks/stage_probe.py {name} -- {stage['cmd']}"
    dvc_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))


def set_params(root: Path, changes: Mapping[str, Mapping[str, Any]]) -> None:
    params = root / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    for section, values in changes.items():
        raw[section] = {**raw[section], **values}
    params.write_text(yaml.safe_dump(raw, sort_keys=False))


def stage_summaries(
    runs: Sequence[Mapping[str, Mapping[str, float]]], names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per stage and per figure (seconds, import seconds, peak RSS): the summary over runs."""
    return {
        name: {key: summary([run[name][key] for run in runs]) for key in runs[0][name]}
        for name in names
    }


def read_stage_log(log_dir: Path) -> dict[str, dict[str, float]]:
    records = {}
    for name in STAGES:
        path = log_dir / f"{name}.json"
        if path.exists():
            records[name] = json.loads(path.read_text())
            path.unlink()
    return records


def stages_ran(output: str) -> list[str]:
    return [name for name in STAGES if f"Running stage '{name}'" in output]


def params_train() -> dict[str, Any]:
    """The train section of the Iris defaults every benchmark copy runs with."""
    from tests.support.repository import IRIS_PARAMS

    return yaml.safe_load(IRIS_PARAMS.read_text())["train"]


class Bench:
    def __init__(self, workdir: Path, runs: int) -> None:
        self.workdir = workdir
        self.runs = runs
        self.counter = 0
        self.stage_log = workdir / "stage-log"
        self.stage_log.mkdir()
        self.snapshot = snapshot_working_tree(workdir / "snapshot")

    def fresh_dir(self, label: str) -> Path:
        self.counter += 1
        path = self.workdir / f"{self.counter:02d}-{label}"
        path.mkdir()
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return tool_env({"BENCH_STAGE_LOG": str(self.stage_log), **extra})

    def fresh_project(
        self, label: str, params: Mapping[str, Mapping[str, Any]] = {}, probe: bool = True
    ) -> Path:
        """A fresh copy; with `probe`, every stage runs under stage_probe.py (see there)."""

        def edit(root: Path) -> None:
            if probe:
                probe_stages(root)
            if params:
                set_params(root, params)

        return copy_repository(self.snapshot, self.fresh_dir(label) / "project", edit)

    # --------------------------------------------------------------------- the figures

    def floor_once(self, extra: Sequence[str] = (), train: Mapping[str, Any] | None = None) -> dict:
        """One run of benchmarks/floor.py: seconds, peak RSS and its phases."""
        train = {**params_train(), **(train or {})}
        out = self.fresh_dir("floor")
        command = [sys.executable, HERE / "floor.py", "--out", out, "--train", json.dumps(train)]
        result = timed([*command, *extra], cwd=ROOT, env=self.env())
        record = json.loads(result.stdout.strip().splitlines()[-1])
        shutil.rmtree(out)
        return {
            "seconds": result.seconds,
            "peak_rss_mib": max(p["peak_rss_mib"] for p in record["phases"].values()),
            "phases": {name: phase["seconds"] for name, phase in record["phases"].items()},
        }

    def script_once(self) -> float:
        """One run of the anchor (benchmarks/mlflow_script.py) on a fresh SQLite store."""
        folder = self.fresh_dir("script")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        command = [sys.executable, HERE / "mlflow_script.py", "--train", json.dumps(params_train())]
        result = timed(command, cwd=folder, env=self.env(MLFLOW_TRACKING_URI=uri))
        shutil.rmtree(folder)
        return result.seconds

    def repro_once(
        self, label: str, params: Mapping[str, Mapping[str, Any]], probe: bool = True
    ) -> tuple[dict, Path]:
        """Cold `dvc repro` in a fresh copy: seconds, per-stage records (probed), the copy."""
        project = self.fresh_project(label, params, probe)
        read_stage_log(self.stage_log)
        result = self.timed_dvc(["repro"], project)
        return {
            "seconds": result.seconds,
            "stages": read_stage_log(self.stage_log),
            "peak_rss_mib": result.peak_rss_mib,
        }, project

    def rounds(
        self,
        label: str,
        params: Mapping[str, Mapping[str, Any]] = {},
        floor_args: Sequence[str] = (),
        floor_train: Mapping[str, Any] | None = None,
        with_script: bool = False,
    ) -> tuple[dict[str, Any], Path]:
        """`runs` rounds of floor, (anchor script,) cold repro, interleaved so that load that
        shifts during the benchmark weighs on every figure alike; the last copy is kept built.

        With the script (Iris), each round also runs a plain cold repro: the total is timed
        on it, without stage_probe's `-X importtime` and wrapper process (~0.1 s a stage),
        and the noop and experiment figures use the plain copy. The per-stage figures come
        from the probed repro of the same round.
        """
        floors, scripts, repros, plains = [], [], [], []
        project = None
        for _ in range(self.runs):
            floors.append(self.floor_once(floor_args, floor_train))
            if with_script:
                scripts.append(self.script_once())
            if project is not None:
                shutil.rmtree(project.parent)
            repro, project = self.repro_once(label, params)
            if with_script:
                # The MLflow stages again on the store the cold run created: what every later
                # repro and experiment pays (the cold run's train also creates the store).
                self.timed_dvc(["repro", "--force", "--downstream", "train"], project)
                repro["stages_warm"] = read_stage_log(self.stage_log)
            repros.append(repro)
            if with_script:
                shutil.rmtree(project.parent)
                plain, project = self.repro_once(f"{label}-plain", params, probe=False)
                plains.append(plain)
        assert project is not None
        figures: dict[str, Any] = {
            "floor": {
                "seconds": summary([run["seconds"] for run in floors]),
                "peak_rss_mib": summary([run["peak_rss_mib"] for run in floors]),
                "phases": {
                    name: summary([run["phases"][name] for run in floors])
                    for name in floors[0]["phases"]
                },
            },
            "repro": {
                "seconds": summary([run["seconds"] for run in plains or repros]),
                "probed_seconds": summary([run["seconds"] for run in repros]),
                "stages": stage_summaries([run["stages"] for run in repros], STAGES),
                "peak_rss_mib_bound": max(run["peak_rss_mib"] for run in repros),
            },
        }
        if with_script:
            warm = [run["stages_warm"] for run in repros]
            figures["repro"]["stages_warm"] = stage_summaries(warm, MLFLOW_STAGES)
            figures["script"] = {"seconds": summary(scripts)}
        return figures, project

    def timed_dvc(self, args: Sequence[str], project: Path) -> Timed:
        return timed([VENV_BIN / "dvc", *args], cwd=project, env=self.env())

    def noop(self, project: Path) -> dict:
        repro, status = [], []
        for _ in range(self.runs):
            result = self.timed_dvc(["repro"], project)
            if stages_ran(result.stdout):
                raise RuntimeError(f"no-op dvc repro ran stages:\n{result.stdout}")
            repro.append(result.seconds)
            status.append(self.timed_dvc(["status"], project).seconds)
        ratios = [r / s for r, s in zip(repro, status, strict=True)]
        return {"repro": summary(repro), "status": summary(status), "ratio": summary(ratios)}

    def make_run_noop(self, project: Path, pairs: int = 5) -> dict:
        """CPU of `make run` with nothing to do against a no-op `dvc repro`, in interleaved
        pairs (at least 5), in the project's own venv as `make setup` builds it (`uv sync
        --compile-bytecode`; `uv run` would point the bench's venv at the copy). One untimed
        `make run` first: the check runs in full once after a repro and stamps what it saw."""
        uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
        env = {key: value for key, value in self.env().items() if key != "VIRTUAL_ENV"}
        env["PATH"] = os.pathsep.join(
            part for part in env["PATH"].split(os.pathsep) if part != str(VENV_BIN)
        )
        timed([uv, "sync", "--frozen", "--compile-bytecode", "--quiet"], cwd=project, env=env)
        (project / ".venv" / ".synced").touch()
        make = ["make", "--no-print-directory", "run", f"UV={uv}"]
        timed(make, cwd=project, env=env)
        runs, repros = [], []
        for _ in range(max(pairs, self.runs)):
            result = timed(make, cwd=project, env=env)
            if stages_ran(result.stdout) or "nothing to check" not in result.stderr:
                raise RuntimeError(f"make run had something to do:\n{result.stderr[-3000:]}")
            runs.append(result.cpu_seconds)
            repros.append(timed([project / ".venv" / "bin" / "dvc", "repro"], project, env))
        repro_cpu = [result.cpu_seconds for result in repros]
        ratios = [run / repro for run, repro in zip(runs, repro_cpu, strict=True)]
        return {
            "make_run_cpu": summary(runs),
            "repro_cpu": summary(repro_cpu),
            "ratio": summary(ratios),
        }

    def experiment(self, project: Path) -> dict:
        base = int(params_train()["n_estimators"])
        seconds, ran = [], []
        for i in range(self.runs):
            value = base + 10 * (i + 1)  # a new value each time: no run-cache hit
            result = self.timed_dvc(["exp", "run", "-S", f"train.n_estimators={value}"], project)
            seconds.append(result.seconds)
            ran.append(stages_ran(result.stdout))
            read_stage_log(self.stage_log)
        return {"seconds": summary(seconds), "stages_ran": ran[0], "stages_ran_each": ran}

    def zenml(self) -> dict:
        if not (ROOT / "zenml_pipeline" / "__main__.py").exists():
            return {"available": False, "reason": "zenml_pipeline/ does not exist"}
        store, cold, cached = [], [], []
        for _ in range(self.runs):
            project = self.fresh_project("zenml", probe=False)
            env = self.env(ZENML_CONFIG_PATH=str(project.parent / "zenml-config"))
            # ZenML's global store is created once per machine (user), not per project or run:
            # timed on its own, so the cold run is this project's first, uncached run.
            store.append(timed([sys.executable, "-c", ZENML_STORE], cwd=project, env=env).seconds)
            command = [sys.executable, "-m", "zenml_pipeline"]
            cold.append(timed(command, cwd=project, env=env).seconds)
            cached.append(timed(command, cwd=project, env=env).seconds)
            shutil.rmtree(project.parent)
        return {
            "available": True,
            "store": summary(store),
            "cold": summary(cold),
            "cached": summary(cached),
        }

    def zenml_docker(self, image: str) -> dict:
        """5b: every step in its own container (local_docker), cold and cached, one stack."""
        inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
        if inspect.returncode != 0:
            return {"available": False, "reason": f"image {image} is not built (docker/Dockerfile)"}
        project = self.fresh_project("zenml-docker", probe=False)
        base = project.parent
        s3_port, mlflow_port, zenml_port = free_port(), free_port(), free_port()
        s3_url, mlflow_url = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{mlflow_port}"
        env = self.env(ZENML_CONFIG_PATH=str(base / "zenml-config"))
        servers: list[subprocess.Popen] = []
        try:
            servers.append(
                serve(
                    [VENV_BIN / "moto_server", "-H", "127.0.0.1", "-p", str(s3_port)],
                    env,
                    base,
                    f"{s3_url}/moto-api/",
                )
            )
            servers.append(
                serve(
                    [
                        VENV_BIN / "mlflow",
                        "server",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(mlflow_port),
                        "--workers",
                        "1",
                        "--backend-store-uri",
                        f"sqlite:///{base / 'mlflow.db'}",
                        "--serve-artifacts",
                        "--artifacts-destination",
                        str(base / "mlartifacts"),
                    ],
                    env,
                    base,
                    f"{mlflow_url}/health",
                )
            )
            # A server without logins: any account will do; moto takes any keys.
            stack_env = {
                **env,
                "ZENML_S3_PATH": "s3://zenml-bench/store",
                "MLFLOW_S3_ENDPOINT_URL": s3_url,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
                "MLFLOW_TRACKING_URI": mlflow_url,
                "MLFLOW_TRACKING_USERNAME": "bench",
                "MLFLOW_TRACKING_PASSWORD": "bench",
                "ZENML_STACK": "bench",
                "ZENML_SERVER_PORT": str(zenml_port),
            }
            stack_command = [sys.executable, "-m", "mlpipeline", "team", "zenml-stack"]
            setup = timed(stack_command, cwd=project, env=stack_env).seconds
            command = [sys.executable, "-m", "zenml_pipeline", "--stack", "bench", "--image", image]
            cold = timed(command, cwd=project, env=env).seconds
            cached = timed(command, cwd=project, env=env).seconds
        finally:
            stop = [sys.executable, "-m", "mlpipeline", "team", "zenml-server", "--stop"]
            subprocess.run(stop, cwd=project, env={**env, "ZENML_SERVER_PORT": str(zenml_port)},
                           capture_output=True)  # fmt: skip
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
        return {
            "available": True,
            "image": image,
            "setup": summary([setup]),
            "cold": summary([cold]),
            "cached": summary([cached]),
        }

    def scoring(self, sizes: Sequence[int]) -> list[dict]:
        """Score Iris-like batches with a fresh project's champion; the plain predict beside."""
        project = self.fresh_project("scoring", {"monitor": {"fail_on_drift": False}}, False)
        env = self.env(MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}")
        timed(["dvc", "repro"], cwd=project, env=env)
        model_uri = "models:/iris_classifier@champion"
        entries = []
        for rows in sizes:
            batch = project.parent / f"batch-{rows}.csv"
            write_scoring_batch(project / "data" / "raw" / "dataset.csv", batch, rows)
            figures: dict[str, list[float]] = {
                "score_rows_per_s": [],
                "predict_rows_per_s": [],
                "peak_rss_mib": [],
                "predict_peak_rss_mib": [],
                "drift_seconds": [],
                "seconds": [],
            }
            for _ in range(self.runs):
                out = project.parent / "scored"
                command = ["python", "-m", "mlpipeline", "model", "score", batch, "--output", out]
                scored = timed(command, cwd=project, env=env)
                metrics = json.loads((out / "summary.json").read_text())["metrics"]
                figures["score_rows_per_s"].append(metrics["rows_per_second"])
                figures["drift_seconds"].append(metrics["drift_seconds"])
                figures["peak_rss_mib"].append(scored.peak_rss_mib)
                figures["seconds"].append(scored.seconds)
                floor = [sys.executable, HERE / "score_floor.py", batch, model_uri]
                plain = timed(floor, cwd=project, env=env)
                record = json.loads(plain.stdout.strip().splitlines()[-1])
                figures["predict_rows_per_s"].append(record["rows"] / record["seconds"])
                figures["predict_peak_rss_mib"].append(plain.peak_rss_mib)
            batch.unlink()
            entries.append({"rows": rows, **{key: summary(v) for key, v in figures.items()}})
        shutil.rmtree(project.parent)
        return entries

    def engines(self, sizes: Sequence[int]) -> list[dict]:
        """The local engine, Spark on local[2] and on a standalone cluster, on the same CSVs."""
        project = self.fresh_project("engines", {"monitor": {"fail_on_drift": False}}, False)
        env = self.env(MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}")
        timed(["dvc", "repro"], cwd=project, env=env)
        batches = {}
        for rows in sizes:
            batches[rows] = project.parent / f"batch-{rows}.csv"
            write_scoring_batch(project / "data" / "raw" / "dataset.csv", batches[rows], rows)
        cluster_dir = project.parent / "spark-cluster"
        with spark_cluster.standalone_cluster(cluster_dir, env) as cluster:
            entries = scoring_engines.measure(project, env, batches, self.runs, timed, cluster.url)
        shutil.rmtree(project.parent)
        return entries

    def scale(self, rows: int) -> dict:
        params = {
            "load": {
                "source": "synthetic",
                "synthetic": {
                    "rows": rows,
                    "features": SCALE_FEATURES,
                    "classes": SCALE_CLASSES,
                    "random_state": 42,
                },
            },
            "train": SCALE_TRAIN,
        }
        figures, project = self.rounds(
            f"scale-{rows}",
            params,
            floor_args=[
                "--rows",
                str(rows),
                "--features",
                str(SCALE_FEATURES),
                "--classes",
                str(SCALE_CLASSES),
            ],
            floor_train=SCALE_TRAIN,
        )
        shutil.rmtree(project.parent)
        pipeline, floor = figures["repro"], figures["floor"]
        return {"rows": rows, "pipeline": pipeline, "floor": floor}

    def team(self) -> dict:
        """8: the same probed copy on the team server and on the embedded store, turn about.

        Each store gets one untimed run first: the embedded store and the team experiment
        exist before the timed runs, as on every run after a project's first.
        """
        project = self.fresh_project("team")
        with team_server(self.workdir, self.snapshot) as server:
            stores = {"team": self.env(**server.env), "embedded": self.env()}
            for env in stores.values():
                self.timed_forced_repro(project, env)
            logged_before = len(server.access_log()) if server.access_log else 0
            seconds: dict[str, list[float]] = {name: [] for name in stores}
            stages: dict[str, list[dict]] = {name: [] for name in stores}
            for _ in range(self.runs):
                for name, env in stores.items():
                    seconds[name].append(self.timed_forced_repro(project, env))
                    stages[name].append(read_stage_log(self.stage_log))
            log_lines = server.access_log()[logged_before:] if server.access_log else None
        shutil.rmtree(project.parent)
        per_stage = {name: stage_summaries(stages[name], MLFLOW_STAGES) for name in stores}
        figures: dict[str, Any] = {
            "available": True,
            "server": server.description,
            "repro": {name: summary(values) for name, values in seconds.items()},
            "stages": per_stage,
            "overhead_s": {
                stage: per_stage["team"][stage]["seconds"]["median"]
                - per_stage["embedded"][stage]["seconds"]["median"]
                for stage in MLFLOW_STAGES
            },
        }
        if log_lines is None:
            figures["latency_missing"] = "no access log (BENCH_TEAM_ACCESS_LOG unset)"
        else:
            figures["latency"] = latency_by_group(parse_access_log(log_lines))
        return figures

    def registry(self, size: Mapping[str, int]) -> dict:
        """9: `make run` with nothing to do, `mlpipeline model list|history|card` and the save
        stage on a built project's store, before and after it grows to `size`
        (benchmarks/registry_seed.py), then on a team server (PostgreSQL, S3) grown the same:
        each command from the shell (imports included) and in one process
        (benchmarks/registry_probe.py)."""
        project = self.fresh_project("registry", probe=False)
        env = self.env(PYTHONPATH=str(project))
        timed([VENV_BIN / "dvc", "repro"], cwd=project, env=env)
        figures: dict[str, Any] = {"size": dict(size)}
        figures["one_version"] = self.registry_commands(project, env, "1")
        seed_registry(project / "mlflow.db", REGISTRY_MODEL, size["versions"], size["runs"],
                      size["moves"])  # fmt: skip
        figures["seeded"] = self.registry_commands(project, env, str(size["versions"]))
        shutil.rmtree(project.parent)
        folder = self.fresh_dir("registry-team")
        with local_team_server(folder) as (url, database):
            project = self.fresh_project("registry-team", probe=False)
            env = self.env(PYTHONPATH=str(project), MLFLOW_TRACKING_URI=url)
            timed([VENV_BIN / "dvc", "repro"], cwd=project, env=env)
            seed_registry(database, REGISTRY_MODEL, size["versions"], size["runs"], size["moves"])
            figures["team_seeded"] = self.registry_commands(project, env, str(size["versions"]))
            shutil.rmtree(project.parent)
        return figures

    def registry_commands(self, project: Path, env: Mapping[str, str], newest: str) -> dict:
        """The registry figure's commands in `project` against the store `env` names."""
        last = str(max(1, -(-int(newest) // 20)))
        commands = {
            "list": ["model", "list"],
            "list_last_page": ["model", "list", "--page", last],
            "history": ["model", "history"],
            "card": ["model", "card", newest],
        }
        # What `make run` runs once its venv is set up: the preflight, then `dvc repro`.
        preflight = [VENV_BIN / "mlpipeline", "check", "preflight"]
        timed(preflight, project, env)  # a full check once; later ones compare its stamp
        shell: dict[str, list[float]] = {name: [] for name in ["make_run_noop", *commands, "save"]}
        for _ in range(self.runs):
            start = time.perf_counter()
            timed(preflight, project, env)
            if stages_ran(timed([VENV_BIN / "dvc", "repro"], project, env).stdout):
                raise RuntimeError(f"dvc repro had something to do in {project}")
            shell["make_run_noop"].append(time.perf_counter() - start)
            for name, args in commands.items():
                shell[name].append(timed([VENV_BIN / "mlpipeline", *args], project, env).seconds)
            save = [VENV_BIN / "python", "-m", "stages.save"]
            shell["save"].append(timed(save, project, env).seconds)
        probe = [VENV_BIN / "python", "-m", "benchmarks.registry_probe", REGISTRY_MODEL, newest]
        probe_env = {**env, "PYTHONPATH": f"{project}:{ROOT}"}
        own = json.loads(timed([*probe, str(self.runs)], project, probe_env).stdout)
        return {
            "shell": {name: summary(values) for name, values in shell.items()},
            "in_process": {name: summary(values) for name, values in own.items()},
        }

    def timed_forced_repro(self, project: Path, env: Mapping[str, str]) -> float:
        """`dvc repro --force` in `project`: its seconds; the stage log is left for the caller."""
        read_stage_log(self.stage_log)
        return timed([VENV_BIN / "dvc", "repro", "--force"], cwd=project, env=env).seconds


@dataclass(frozen=True)
class TeamServer:
    description: str
    # MLFLOW_TRACKING_URI, the CA to trust and the pipeline account's login.
    env: dict[str, str]
    # The front door's access log lines so far (docker/proxy.conf's `timed` format), if known.
    access_log: Callable[[], list[str]] | None


@contextlib.contextmanager
def team_server(workdir: Path, snapshot: Path) -> Iterator[TeamServer]:
    """A user's server (BENCH_TEAM_URI, BENCH_TEAM_USERNAME, BENCH_TEAM_PASSWORD, optional
    BENCH_TEAM_CA and BENCH_TEAM_ACCESS_LOG), else the team stack on this machine, up for
    the block and always taken down after it."""
    given = os.environ.get("BENCH_TEAM_URI")
    if given:
        missing = [n for n in ("BENCH_TEAM_USERNAME", "BENCH_TEAM_PASSWORD") if n not in os.environ]
        if missing:
            raise RuntimeError(f"BENCH_TEAM_URI is set, {' and '.join(missing)} not")
        env = {
            "MLFLOW_TRACKING_URI": given,
            "MLFLOW_TRACKING_USERNAME": os.environ["BENCH_TEAM_USERNAME"],
            "MLFLOW_TRACKING_PASSWORD": os.environ["BENCH_TEAM_PASSWORD"],
        }
        if os.environ.get("BENCH_TEAM_CA"):
            env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = os.environ["BENCH_TEAM_CA"]
        log_path = os.environ.get("BENCH_TEAM_ACCESS_LOG")
        access_log = (lambda: Path(log_path).read_text().splitlines()) if log_path else None
        yield TeamServer(f"the user's server {given}", env, access_log)
        return
    folder = workdir / "team-stack"
    project = copy_repository(snapshot, folder / "project")
    for writable in ("cache", "tmp"):
        (project / ".dvc" / writable).mkdir(exist_ok=True)  # the app's writable mount
    # The jobs' entrypoint runs them as the checkout's owner, never root (docker/entrypoint.sh).
    if os.geteuid() == 0:
        team_stack.run(["chown", "-R", "1000:1000", project], project)
    ports = {name: free_port() for name in team_stack.PORTS}
    secrets_dir = team_stack.write_secrets(folder / "secrets")
    image = os.environ.get("BENCH_TEAM_IMAGE", "dvc-mlops-pipeline:bench-team")
    team_stack.write_env(project, team_stack.settings(image, ports, secrets_dir))
    stack = team_stack.Stack(
        project, tool_env({"COMPOSE_PROJECT_NAME": f"mlopsbench{os.getpid()}"})
    )
    try:
        log.info("building and starting the team stack (%s)", image)
        stack.compose("build", "users", "proxy", timeout=team_stack.BUILD_TIMEOUT_S)
        stack.up_server()
        yield TeamServer(
            "the team stack on this machine (docker-compose.yml + docker/docker-compose.team.yml,"
            " one MLflow worker, PostgreSQL, S3 stand-in, nginx TLS front door)",
            {
                "MLFLOW_TRACKING_URI": f"https://localhost:{ports['PROXY_HTTPS_PORT']}",
                "MLFLOW_TRACKING_SERVER_CERT_PATH": str(secrets_dir / "ca.crt"),
                "MLFLOW_TRACKING_USERNAME": team_stack.secrets()["MLFLOW_TRACKING_USERNAME"],
                "MLFLOW_TRACKING_PASSWORD": team_stack.secrets()["MLFLOW_TRACKING_PASSWORD"],
            },
            lambda: stack.logs("proxy").splitlines(),
        )
    finally:
        log.info("taking the team stack down")
        stack.down()


@contextlib.contextmanager
def local_team_server(folder: Path) -> Iterator[tuple[str, str]]:
    """The team stack's MLflow without Docker, for the registry figure: `mlflow server` on a
    local PostgreSQL cluster with its artifacts in moto's S3 (tests/support/team_parts.py);
    its URL and its database's URL (for registry_seed.py). Stopped after the block."""
    from tests.support import team_parts
    from tests.support.servers import serving

    credentials = team_parts.s3_credentials()
    with (
        team_parts.postgres_cluster("bench-" + os.urandom(6).hex()) as postgres,
        team_parts.moto_s3(folder / "moto.log") as s3,
    ):
        team_parts.s3_client(s3, credentials).create_bucket(Bucket="mlflow-artifacts")
        port = free_port()
        command = [VENV_BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", "1", "--backend-store-uri", postgres.uri,
                   "--artifacts-destination", "s3://mlflow-artifacts/artifacts"]  # fmt: skip
        env = tool_env({**credentials, "MLFLOW_S3_ENDPOINT_URL": s3})
        url = f"http://127.0.0.1:{port}"
        with serving(command, f"{url}/health", folder / "mlflow.log", env, cwd=folder):
            yield url, postgres.uri


# ---------------------------------------------------------------------------- the report


def write_scoring_batch(dataset: Path, dest: Path, rows: int, chunk: int = 1_000_000) -> None:
    """`rows` Iris rows drawn with replacement plus N(0, 0.05) noise, written chunk by chunk."""
    import numpy as np
    import pandas as pd

    base = pd.read_csv(dataset).drop(columns=["target"])
    rng = np.random.default_rng(7)
    with dest.open("w") as handle:
        for start in range(0, rows, chunk):
            size = min(chunk, rows - start)
            picked = base.iloc[rng.integers(0, len(base), size)].reset_index(drop=True)
            noisy = picked + rng.normal(0.0, 0.05, picked.shape)
            noisy.to_csv(handle, index=False, header=start == 0, float_format="%.4f")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    versions = {}
    for package in ("dvc", "mlflow", "scikit-learn", "pandas", "zenml"):
        from importlib.metadata import PackageNotFoundError, version

        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_start": os.getloadavg(),
        "bytecode_precompiled": bytecode_precompiled(),
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }


def stage_work(repro: Mapping[str, Any], key: str = "stages") -> dict[str, float]:
    """Per MLflow stage: median seconds minus the median seconds of its imports.

    `stages`: in the cold repro; `stages_warm`: rerun on the store that repro created.
    """
    stages = repro.get(key, {})
    return {
        name: stages[name]["seconds"]["median"] - stages[name]["import_seconds"]["median"]
        for name in MLFLOW_STAGES
        if "import_seconds" in stages.get(name, {})
    }


def bytecode_precompiled() -> bool:
    """Whether the venv's packages were installed with compiled bytecode (`uv sync
    --compile-bytecode`): with PYTHONDONTWRITEBYTECODE=1 and no .pyc every process compiles
    every module it imports.
    """
    import importlib.util

    import mlflow

    return Path(importlib.util.cache_from_source(mlflow.__file__)).exists()


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the measured value (medians), the limit, PASS or MISS."""
    values: dict[str, float | None] = {}
    script = results.get("script_iris", {}).get("seconds", {}).get("median")
    repro_iris = results.get("repro_iris", {})
    repro = repro_iris.get("seconds", {}).get("median")
    values["repro_vs_script"] = repro / script if repro and script else None
    values["noop_vs_status"] = results.get("noop", {}).get("ratio", {}).get("median")
    values["make_run_vs_noop_cpu"] = results.get("make_run_noop", {}).get("ratio", {}).get("median")
    team = results.get("team") or {}
    overall = team.get("latency", {}).get("overall") if team.get("available") else None
    if overall:
        values["team_p50_ms"], values["team_p99_ms"] = overall["p50_ms"], overall["p99_ms"]
    if team.get("available"):
        repro_team = team["repro"]["team"]["median"]
        values["team_repro_vs_embedded"] = repro_team / team["repro"]["embedded"]["median"]
    exp = results.get("experiment", {}).get("seconds", {}).get("median")
    values["exp_vs_script"] = exp / script if exp and script else None
    work = stage_work(repro_iris, "stages_warm") or stage_work(repro_iris)
    values["stage_work_s"] = max(work.values()) if work else None
    cached = results.get("zenml", {}).get("cached", {}).get("median")
    values["zenml_cached_vs_repro"] = cached / repro if cached and repro else None
    cold = results.get("zenml", {}).get("cold", {}).get("median")
    values["zenml_cold_vs_script"] = cold / script if cold and script else None
    by_rows = {entry["rows"]: entry for entry in results.get("scale", [])}
    big = by_rows.get(max(by_rows)) if by_rows else None
    if big is not None:
        values["scale_1m_vs_floor"] = (
            big["pipeline"]["seconds"]["median"] / big["floor"]["seconds"]["median"]
        )
        values["scale_1m_peak_rss_gib"] = (
            max(
                max(s["peak_rss_mib"]["max"] for s in big["pipeline"]["stages"].values()),
                big["pipeline"]["peak_rss_mib_bound"],
            )
            / 1024
        )
    sizes = sorted(by_rows)
    if len(sizes) >= 2:
        small, large = by_rows[sizes[-2]], by_rows[sizes[-1]]
        values["scale_growth_100k_1m"] = (
            large["pipeline"]["seconds"]["median"] / small["pipeline"]["seconds"]["median"]
        )
    scored = sorted(results.get("scoring", []), key=lambda entry: entry["rows"])
    if scored:
        first, last = scored[0], scored[-1]
        values["scoring_vs_predict"] = (
            first["predict_rows_per_s"]["median"] / first["score_rows_per_s"]["median"]
        )
        values["scoring_peak_rss_gib"] = last["peak_rss_mib"]["max"] / 1024
        if len(scored) >= 2:
            growth = last["peak_rss_mib"]["max"] / first["peak_rss_mib"]["max"]
            values["scoring_rss_growth"] = growth
    sweep = results.get("sweep")
    if sweep:
        values["sweep_ray_cost_s"] = sweep["ray_cost_per_trial_s"]["median"]
        values["sweep_2_vs_loop"] = 1 / sweep["speedup_2_workers"]["median"]
    labels = {
        "sweep_trials": str(sweep["trials"]) if sweep else "N",
        "large": rows_label(sizes[-1] if sizes else None),
        "small": rows_label(sizes[-2] if len(sizes) >= 2 else None),
        "score_small": rows_label(scored[0]["rows"] if scored else None),
        "score_large": rows_label(scored[-1]["rows"] if scored else None),
    }
    out = {}
    for key, (what, target, limit) in TARGETS.items():
        value = values.get(key)
        status = "n/a" if value is None else ("PASS" if value <= limit else "MISS")
        what = what.format(**labels)
        out[key] = {"what": what, "target": target, "value": value, "status": status}
    return out


def fmt(stat: Mapping[str, Any] | None, unit: str = "s") -> str:
    if not stat:
        return "n/a"
    return f"{stat['median']:.2f} {unit} ({stat['min']:.2f}–{stat['max']:.2f})"


def row(label: str, stat: Mapping[str, Any] | None) -> str:
    return f"| {label} | {fmt(stat)} |"


def render_markdown(results: dict[str, Any], notes: Mapping[str, str]) -> str:
    info = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`benchmarks/bench.py`); do not edit by hand, except",
        "`benchmarks/notes.md`, which is appended below the tables.",
        "",
        f"- Machine: {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['cpu']}",
        f"- Python {info['python']} on {info['platform']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}",
        f"- Date: {info['date']}; {results['runs']} runs per figure (median, min–max)",
        f"- Load average at start {tuple(round(x, 2) for x in info['load_average_start'])}, "
        f"at end {tuple(round(x, 2) for x in results['load_average_end'])}",
        f"- Total benchmark time: {results['total_seconds'] / 60:.1f} min",
        *[
            f"- Merged later (`--only … --merge`): {', '.join(entry['figures'])}, measured "
            f"{entry['date']} in {entry['minutes']} min, {entry['runs']} run(s) per figure; load "
            f"average at start {tuple(round(x, 2) for x in entry['load_average_start'])}, at end "
            f"{tuple(round(x, 2) for x in entry['load_average_end'])}"
            for entry in results.get("merged", [])
        ],
        f"- Bytecode precompiled in the venv: {info.get('bytecode_precompiled', 'unknown')} "
        f"(PYTHONDONTWRITEBYTECODE={info.get('pythondontwritebytecode') or 'unset'}); "
        "floor, script and pipeline runs interleaved round by round",
        "",
        "## Targets",
        "",
        "| target | limit | measured | status | why |",
        "|---|---|---|---|---|",
    ]
    for key, verdict in results["targets"].items():
        value = verdict["value"]
        unit = " GiB" if key.endswith("gib") else (" s" if key.endswith("_s") else "×")
        unit = " ms" if key.endswith("_ms") else unit
        shown = "n/a" if value is None else f"{value:.2f}{unit}"
        lines.append(
            f"| {verdict['what']} | {verdict['target']} | {shown} | **{verdict['status']}** "
            f"| {notes.get(key, '')} |"
        )
    team = results.get("team")
    if team:
        lines.append(f"| {TEAM_TARGET} | n/a (reported) | {team_measured(team)} | **reported** | |")
    lines += ["", "## Workflows on Iris", "", "| figure | seconds (median, min–max) |", "|---|---|"]
    floor = results.get("floor_iris")
    if floor:
        lines.append(row("1. floor: plain Python, one process", floor["seconds"]))
        imports = floor["phases"]["imports"]
        lines.append(row("&nbsp;&nbsp;of which imports (pandas, scikit-learn)", imports))
    script = results.get("script_iris")
    if script:
        lines.append(
            row("1b. one-process MLflow script (benchmarks/mlflow_script.py)", script["seconds"])
        )
    repro = results.get("repro_iris")
    if repro:
        lines.append(row("2. cold `dvc repro`, fresh copy, embedded MLflow", repro["seconds"]))
        if "probed_seconds" in repro and repro["probed_seconds"] != repro["seconds"]:
            lines.append(
                row(
                    "&nbsp;&nbsp;the same with every stage probed (`-X importtime`), "
                    "which the stage rows come from",
                    repro["probed_seconds"],
                )
            )
        for name in STAGES:
            stage = repro["stages"][name]
            line = row(f"&nbsp;&nbsp;stage {name}", stage["seconds"])
            if "import_seconds" in stage:
                line = line[:-2] + f"; imports {stage['import_seconds']['median']:.2f} s |"
            lines.append(line)
    noop = results.get("noop")
    if noop:
        lines.append(row("3. no-op `dvc repro`", noop["repro"]))
        lines.append(row("&nbsp;&nbsp;`dvc status`, same repo", noop["status"]))
    make_run = results.get("make_run_noop")
    if make_run:
        cpu = "CPU s, `make run` with nothing to do (check + `dvc repro`, own venv)"
        lines.append(row(f"3b. {cpu}", make_run["make_run_cpu"]))
        repro_cpu = "&nbsp;&nbsp;CPU s, no-op `dvc repro`, interleaved"
        lines.append(row(repro_cpu, make_run["repro_cpu"]))
    exp = results.get("experiment")
    if exp:
        ran = ", ".join(exp["stages_ran"])
        lines.append(row(f"4. `dvc exp run -S train.n_estimators=…` (ran: {ran})", exp["seconds"]))
    zenml = results.get("zenml")
    if zenml and zenml.get("available"):
        cold = "5. ZenML pipeline, cold (a new project's first run: fresh MLflow store, no cache)"
        lines.append(row(cold, zenml["cold"]))
        lines.append(row("&nbsp;&nbsp;ZenML pipeline, cached (same params again)", zenml["cached"]))
        if "store" in zenml:
            first = "&nbsp;&nbsp;before them: ZenML's own store created (once per machine)"
            lines.append(row(first, zenml["store"]))
    elif zenml:
        lines.append(f"| 5. ZenML pipeline | not available: {zenml['reason']} |")
    docker = results.get("zenml_docker")
    if docker and docker.get("available"):
        cold = f"5b. ZenML, every step in its own container ({docker['image']}), cold"
        lines.append(row(cold, docker["cold"]))
        lines.append(row("&nbsp;&nbsp;the same, cached (same params again)", docker["cached"]))
        lines.append(row("&nbsp;&nbsp;before them: `make zenml-stack`", docker["setup"]))
    elif docker:
        lines.append(f"| 5b. ZenML in containers | not available: {docker['reason']} |")
    scale = results.get("scale")
    if scale:
        lines += [
            "",
            "## Scale: synthetic source",
            "",
            f"make_classification with {SCALE_FEATURES} features and {SCALE_CLASSES} classes; "
            f"train params {json.dumps(SCALE_TRAIN)} in both pipeline and floor, the rest as",
            "the Iris defaults (tests/iris_params.yaml). Pipeline = cold `dvc repro` in a fresh",
            "copy; per-stage time and peak RSS come from a wrapper around each stage command",
            "(DVC's own bookkeeping between stages is in the total only). Floor phases are timed",
            "inside its one process.",
            "",
            "| rows | | total s | " + " | ".join(STAGES) + " | peak RSS MiB |",
            "|---|---|---|" + "---|" * len(STAGES) + "---|",
        ]
        for entry in scale:
            pipe, floor = entry["pipeline"], entry["floor"]
            stage_cells = " | ".join(
                f"{pipe['stages'][name]['seconds']['median']:.2f} "
                f"({pipe['stages'][name]['peak_rss_mib']['max']:.0f} MiB)"
                for name in STAGES
            )
            peak = max(s["peak_rss_mib"]["max"] for s in pipe["stages"].values())
            total = fmt(pipe["seconds"])
            lines.append(f"| {entry['rows']:,} | pipeline | {total} | {stage_cells} | {peak:.0f} |")
            floor_cells = " | ".join(f"{floor['phases'][name]['median']:.2f}" for name in STAGES)
            lines.append(
                f"| | floor | {fmt(floor['seconds'])} | {floor_cells} | "
                f"{floor['peak_rss_mib']['max']:.0f} |"
            )
        lines += [
            "",
            "Floor phases exclude its imports "
            "(in the total; see `results.json`, `floor.phases.imports`).",
        ]
    scoring = results.get("scoring")
    if scoring:
        lines += [
            "",
            "## Batch scoring",
            "",
            "`mlpipeline model score` with a fresh project's Iris champion on Iris",
            "rows resampled with N(0, 0.05) noise, against benchmarks/score_floor.py (one",
            "process reads the whole CSV and calls `model.predict`). Rows per second count from",
            "the first read to the last write (scoring: chunked read, guard, probabilities,",
            "predictions and rejects written, drift counted), after imports and the model's load.",
            "",
            "| rows | scoring rows/s | predict rows/s | scoring peak RSS MiB "
            "| predict peak RSS MiB | drift s | scoring wall s |",
            "|---|---|---|---|---|---|---|",
        ]
        for entry in scoring:
            lines.append(
                f"| {entry['rows']:,} | {entry['score_rows_per_s']['median']:,.0f} "
                f"| {entry['predict_rows_per_s']['median']:,.0f} "
                f"| {entry['peak_rss_mib']['max']:.0f} "
                f"| {entry['predict_peak_rss_mib']['max']:.0f} "
                f"| {entry['drift_seconds']['median']:.2f} | {entry['seconds']['median']:.1f} |"
            )
    if results.get("engines"):
        lines += scoring_engines.render(results["engines"], statistics.median)
    lines += render_team(results.get("team"))
    lines += render_registry(results.get("registry"))
    if results.get("sweep"):
        from benchmarks import sweep  # it imports this module's helpers

        lines += sweep.render(results["sweep"])
    notes_file = HERE / "notes.md"
    if notes_file.exists():
        lines += ["", notes_file.read_text().rstrip()]
    return "\n".join(lines) + "\n"


TEAM_TARGET = "8. team server: p50/p99 per call a stage makes; stage overhead vs embedded"


def team_measured(team: Mapping[str, Any]) -> str:
    """The Targets row's cell: overall p50/p99 and each MLflow stage's extra seconds."""
    if not team.get("available"):
        return f"not available: {team['reason']}"
    overhead = ", ".join(f"{name} {sec:+.2f} s" for name, sec in team["overhead_s"].items())
    overall = team.get("latency", {}).get("overall")
    calls = f"p50 {overall['p50_ms']:.0f} ms, p99 {overall['p99_ms']:.0f} ms; " if overall else ""
    return f"{calls}{overhead} (see Team server)"


def render_registry(registry: Mapping[str, Any] | None) -> list[str]:
    """The `registry` figure's section: each command on one version, on the seeded embedded
    store and on a seeded team server."""
    if not registry:
        return []
    size = registry["size"]
    stores = {"one_version": "1 version", "seeded": "seeded", "team_seeded": "team, seeded"}
    stores = {key: label for key, label in stores.items() if key in registry}
    lines = [
        "",
        "## The registry after months of use (issue #35)",
        "",
        f"A built project's embedded store, then the same store grown to {size['versions']:,}",
        f"versions, {size['runs']:,} runs and {size['moves']:,} recorded moves of @champion",
        "(benchmarks/registry_seed.py); team: the same size on an `mlflow server` with its",
        "store in PostgreSQL and its artifacts in S3 (moto), started without Docker. Shell: the",
        "command's wall time, imports included; in process: the call alone",
        "(benchmarks/registry_probe.py). Seconds, median (min–max).",
        "",
        "| command | "
        + " | ".join(f"shell, {label}" for label in stores.values())
        + " | "
        + " | ".join(f"in process, {label}" for label in stores.values())
        + " |",
        "|---|" + "---|" * (2 * len(stores)),
    ]
    names = {
        "make_run_noop": "`make run` no-op (preflight + `dvc repro`)",
        "list": "`model list` (page 1)",
        "list_last_page": "`model list --page LAST`",
        "history": "`model history`",
        "card": "`model card NEWEST`",
        "save": "save stage (`python -m stages.save`)",
    }
    for key, label in names.items():
        shell = [fmt(registry[store]["shell"].get(key)) for store in stores]
        own = [fmt(registry[store]["in_process"].get(key)) for store in stores]
        lines.append(f"| {label} | " + " | ".join(shell + own) + " |")
    return lines


def render_team(team: Mapping[str, Any] | None) -> list[str]:
    """The `team` figure's section: latency per endpoint group, then seconds per stage."""
    if not team or not team.get("available"):
        return []
    lines = [
        "",
        "## Team server (issue #19)",
        "",
        f"Server: {team['server']}. One copy of the project ran `dvc repro --force` from the",
        "host, as the pipeline account, against the team server and against the embedded",
        "SQLite store in turn (one untimed run on each first). Latency: the front door's",
        "access log (nginx `$request_time`: first byte of the request to last byte of the",
        "answer) over the timed team runs.",
        "",
    ]
    latency = team.get("latency")
    if latency:
        lines += [
            "| calls to the team server | target | calls | errors | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
            *[
                f"| {group} | n/a (reported) | {row['calls']} | {row['errors']} "
                f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
                for group, row in latency.items()
            ],
            "",
        ]
    else:
        lines += [f"Latency per call not measured: {team.get('latency_missing', 'no calls')}.", ""]
    lines += [
        "| stage (seconds, median, min–max) | target | team server | embedded SQLite | overhead |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | n/a (reported) | {fmt(team['stages']['team'][name]['seconds'])} "
            f"| {fmt(team['stages']['embedded'][name]['seconds'])} "
            f"| {team['overhead_s'][name]:+.2f} s |"
            for name in MLFLOW_STAGES
        ],
        f"| whole `dvc repro --force` | n/a (reported) | {fmt(team['repro']['team'])} "
        f"| {fmt(team['repro']['embedded'])} "
        f"| {team['repro']['team']['median'] - team['repro']['embedded']['median']:+.2f} s |",
    ]
    return lines


def per_stage(seconds: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {sec:.2f} s" for name, sec in seconds.items())


def auto_notes(results: dict[str, Any]) -> dict[str, str]:
    """One line per target naming where the time went, from the measured figures."""
    notes: dict[str, str] = {}
    repro, script = results.get("repro_iris"), results.get("script_iris")
    if repro and script:
        stage_sum = sum(s["seconds"]["median"] for s in repro["stages"].values())
        imports = sum(
            s["import_seconds"]["median"] for s in repro["stages"].values() if "import_seconds" in s
        )
        notes["repro_vs_script"] = (
            f"5 stage processes {stage_sum:.1f} s, of which imports {imports:.1f} s (the script "
            f"imports once); DVC between stages {repro['seconds']['median'] - stage_sum:.1f} s"
        )
    exp = results.get("experiment")
    if exp and script:
        notes["exp_vs_script"] = f"ran {', '.join(exp['stages_ran'])}; load and preprocess skipped"
    if repro:
        work, cold = stage_work(repro, "stages_warm"), stage_work(repro)
        if work:
            notes["stage_work_s"] = (
                f"on an existing store: {per_stage(work)}; "
                f"in the cold repro, whose train also creates the store: {per_stage(cold)}"
            )
        elif cold:
            notes["stage_work_s"] = per_stage(cold)
    noop = results.get("noop")
    if noop:
        notes["noop_vs_status"] = (
            "no stage runs, nothing of ours: repro also imports networkx, builds the stage "
            "graph, collects the stages a second time and takes stage locks (DVC's own work)"
        )
    make_run = results.get("make_run_noop")
    if make_run:
        notes["make_run_vs_noop_cpu"] = (
            f"`make run` {make_run['make_run_cpu']['median']:.2f} s vs `dvc repro` "
            f"{make_run['repro_cpu']['median']:.2f} s of CPU: the check finds its stamp unchanged "
            "(no MLflow import), plus two `uv run` and make"
        )
    zenml = results.get("zenml")
    if zenml and not zenml.get("available"):
        notes["zenml_cached_vs_repro"] = f"not measured: {zenml['reason']}"
        notes["zenml_cold_vs_script"] = notes["zenml_cached_vs_repro"]
    elif zenml and repro:
        notes["zenml_cached_vs_repro"] = (
            "every step cached: ZenML only starts, checks its store and logs the run"
        )
        notes["zenml_cold_vs_script"] = (
            "one process like the script, plus ZenML's start-up and store (a fully cached "
            f"run alone takes {zenml['cached']['median']:.1f} s) and its artifact writes"
        )
        if "store" in zenml:
            notes["zenml_cold_vs_script"] += (
                f"; ZenML's own store, created once per machine before the first run "
                f"({zenml['store']['median']:.1f} s), is not in it"
            )
    scale = sorted(results.get("scale", []), key=lambda entry: entry["rows"])
    if scale:
        small, big = scale[0], scale[-1]
        fixed = small["pipeline"]["seconds"]["median"] - small["floor"]["seconds"]["median"]
        fit = big["pipeline"]["stages"]["train"]["seconds"]["median"]
        floor_fit = big["floor"]["phases"]["train"]["median"]
        notes["scale_1m_vs_floor"] = (
            f"fixed costs that do not grow with rows (start-up, MLflow, log_model, DVC): "
            f"~{fixed:.0f} s, the pipeline-minus-floor gap at {small['rows']:,} rows; "
            f"train stage {fit:.0f} s vs floor fit {floor_fit:.0f} s"
        )
        heaviest = max(
            big["pipeline"]["stages"],
            key=lambda n: big["pipeline"]["stages"][n]["peak_rss_mib"]["max"],
        )
        notes["scale_1m_peak_rss_gib"] = f"heaviest stage: {heaviest}"
        second = rows_label(scale[-2]["rows"] if len(scale) > 1 else None)
        notes["scale_growth_100k_1m"] = f"fixed costs dominate up to {second} rows; fit ~n log n"
    scored = sorted(results.get("scoring", []), key=lambda entry: entry["rows"])
    if scored:
        first = scored[0]
        score, predict = first["score_rows_per_s"]["median"], first["predict_rows_per_s"]["median"]
        drift = first["drift_seconds"]["median"]
        notes["scoring_vs_predict"] = (
            f"{score:,.0f} vs {predict:,.0f} rows/s; of the scoring, the drift computation "
            f"{drift:.2f} s"
        )
    sweep = results.get("sweep")
    if sweep:
        steps = sweep["steps_per_trial_1_worker"]
        made = sum(steps[name]["median"] for name in ("clone", "checkout", "data") if name in steps)
        notes["sweep_ray_cost_s"] = (
            f"Ray's start {sweep['ray_start_s']['median']:.1f} s and stop "
            f"{sweep['ray_stop_s']['median']:.1f} s once per sweep, "
            f"{sweep['ray_dispatch_per_trial_s']['median']:.2f} s per task"
            if "ray_stop_s" in sweep
            else "see Sweep"
        )
        notes["sweep_2_vs_loop"] = (
            f"a trial's task {sweep['sweep_1_task_s']['median']:.1f} s against the loop's "
            f"{sweep['loop_per_trial_s']['median']:.1f} s: its working copy (once per worker) "
            f"{made:.1f} s, `dvc exp run` {steps.get('exp run', {}).get('median', 0):.1f} s, the "
            f"push {steps.get('push', {}).get('median', 0):.1f} s per trial; 2 trials share 2 cores"
        )
    return notes


# The keys of a run's results that describe the run, not a figure.
RUN_KEYS = ("machine", "runs", "load_average_end", "total_seconds", "targets", "merged")


def merge_into(report: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """`report` with the figures of the partial run `partial` in place of its own, and a
    `merged` entry saying when, how many runs and under what load they were measured."""
    figures = [key for key in partial if key not in RUN_KEYS]
    merged = {key: value for key, value in report.items() if key != "targets"}
    merged.update({key: partial[key] for key in figures})
    merged["merged"] = [
        *[entry for entry in report.get("merged", []) if set(entry["figures"]) - set(figures)],
        {
            "figures": figures,
            "date": partial["machine"]["date"],
            "runs": partial["runs"],
            "load_average_start": partial["machine"]["load_average_start"],
            "load_average_end": partial["load_average_end"],
            "minutes": round(partial["total_seconds"] / 60, 1),
        },
    ]
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run, 1k/10k rows: a smoke test")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument(
        "--rows", type=int, nargs="+", help="scale sizes (default 10000 100000 1000000)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=FIGURES,
        help="measure only these figures (for profiling; the report is partial)",
    )
    parser.add_argument("--out", type=Path, help="folder for results.json/md (default benchmarks/)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite results.md from results.json"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: put the figures measured into results.json/md, keeping the others",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s")
    if args.render:
        out_dir = args.out or HERE
        results = json.loads((out_dir / "results.json").read_text())
        (out_dir / "results.md").write_text(render_markdown(results, auto_notes(results)))
        return

    runs = args.runs or (1 if args.quick else 3)
    sizes = args.rows or ([1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    only = set(args.only or [name for name in FIGURES if name != "zenml-docker"])
    if args.merge and (args.quick or not args.only):
        parser.error("--merge takes --only and full sizes: it updates the main report")
    suffix = "-quick" if args.quick or (args.only and not args.merge) else ""
    out_dir = args.out or HERE

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "runs": runs}
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        bench = Bench(workdir, runs)
        if only & {"floor", "repro", "noop", "exp"}:
            log.info("1-2. floor, MLflow script and cold dvc repro on Iris, interleaved")
            figures, project = bench.rounds("iris", with_script=True)
            results["floor_iris"] = figures["floor"]
            results["script_iris"] = figures["script"]
            results["repro_iris"] = figures["repro"]
            if "noop" in only:
                log.info("3. no-op dvc repro vs dvc status; make run with nothing to do")
                results["noop"] = bench.noop(project)
                results["make_run_noop"] = bench.make_run_noop(project)
            if "exp" in only:
                log.info("4. dvc exp run -S train.n_estimators=...")
                results["experiment"] = bench.experiment(project)
        if "zenml" in only:
            log.info("5. ZenML pipeline, cold and cached")
            try:
                results["zenml"] = bench.zenml()
            except RuntimeError as exc:  # a broken ZenML run must not lose the other figures
                log.error("%s", exc)
                reason = str(exc).strip().splitlines()[-1][:200]
                results["zenml"] = {"available": False, "reason": f"the run failed: {reason}"}
        if "zenml-docker" in only:
            log.info("5b. ZenML pipeline, every step in its own container, cold and cached")
            try:
                image = os.environ.get("BENCH_IMAGE", "dvc-mlops-pipeline:latest")
                results["zenml_docker"] = bench.zenml_docker(image)
            except RuntimeError as exc:
                log.error("%s", exc)
                reason = str(exc).strip().splitlines()[-1][:200]
                results["zenml_docker"] = {
                    "available": False,
                    "reason": f"the run failed: {reason}",
                }
        if "scale" in only:
            results["scale"] = []
            for rows in sizes:
                log.info("6. scale: %s rows", f"{rows:,}")
                results["scale"].append(bench.scale(rows))
        if "scoring" in only:
            log.info("7. batch scoring")
            results["scoring"] = bench.scoring(SCORING_ROWS_QUICK if args.quick else SCORING_ROWS)
        if "engines" in only:
            log.info("7b. scoring engines: local, Spark local[2], a standalone Spark cluster")
            engine_rows = scoring_engines.sizes(os.environ)
            results["engines"] = bench.engines(SCORING_ROWS_QUICK if args.quick else engine_rows)
        if "team" in only:
            log.info("8. the team server: latency per call, stage overhead against the embedded")
            try:
                results["team"] = bench.team()
            except (RuntimeError, OSError) as exc:  # includes team_stack.StackError
                log.error("%s", exc)
                reason = str(exc).strip().splitlines()[0][:200]
                results["team"] = {"available": False, "reason": f"the run failed: {reason}"}
        if "registry" in only:
            log.info("9. the registry after months of use: list, history, card, save")
            results["registry"] = bench.registry(
                REGISTRY_SIZE_QUICK if args.quick else REGISTRY_SIZE
            )
        if "sweep" in only:
            log.info("10. the sweep: a dvc exp run loop vs 1 and 2 Ray workers, interleaved")
            from benchmarks import sweep  # it imports this module's helpers

            trials = SWEEP_TRIALS_QUICK if args.quick else SWEEP_TRIALS
            results["sweep"] = sweep.measure(trials, bench.fresh_dir("sweep"), runs)
    finally:
        if args.keep:
            log.info("kept %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - started
    if args.merge:
        results = merge_into(json.loads((out_dir / "results.json").read_text()), results)
    results["targets"] = verdicts(results)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"results{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"results{suffix}.md").write_text(render_markdown(results, auto_notes(results)))
    for verdict in results["targets"].values():
        value = "n/a" if verdict["value"] is None else f"{verdict['value']:.2f}"
        log.info("%-45s %-20s %8s %s", verdict["what"], verdict["target"], value, verdict["status"])
    log.info("wrote %s", out_dir / f"results{suffix}.md")


if __name__ == "__main__":
    main()
