"""Measuring: run a command and time it, copies of the repository to run it in, the machine.

The figures (benchmarks/figures.py) and the sweep (benchmarks/sweep.py) are measured with these.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlpipeline import tool_env as tools
from tests.support import repository
from tests.support.process import start_logged

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

MLFLOW_STAGES = ("train", "evaluate", "save")


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


def serve(command: Sequence[str | Path], env: Mapping[str, str], cwd: Path, url: str):
    """Start a server (its log beside it in `cwd`) and wait until `url` answers."""
    log_path = cwd / f"{Path(str(command[0])).name}.log"
    process = start_logged(command, env, log_path, cwd)
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
    versions: dict[str, str | None] = {}
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


def bytecode_precompiled() -> bool:
    """Whether the venv's packages were installed with compiled bytecode (`uv sync
    --compile-bytecode`): with PYTHONDONTWRITEBYTECODE=1 and no .pyc every process compiles
    every module it imports.
    """
    import importlib.util

    import mlflow

    return Path(importlib.util.cache_from_source(mlflow.__file__)).exists()
