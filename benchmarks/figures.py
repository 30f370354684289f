"""The figures: each one measured by a method of `Bench`, in throwaway copies of the project;
the team server the `team` figure runs against (benchmarks/bench.py lists them)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import scoring_engines
from benchmarks.latency import latency_by_group, parse_access_log
from benchmarks.measuring import (
    HERE,
    MLFLOW_STAGES,
    ROOT,
    SCALE_CLASSES,
    SCALE_FEATURES,
    SCALE_TRAIN,
    STAGES,
    VENV_BIN,
    ZENML_STORE,
    Timed,
    copy_repository,
    params_train,
    probe_stages,
    read_stage_log,
    serve,
    set_params,
    snapshot_working_tree,
    stage_summaries,
    stages_ran,
    summary,
    timed,
    tool_env,
    write_scoring_batch,
)
from benchmarks.registry_seed import seed_registry
from tests.support import spark as spark_cluster
from tests.support import team as team_stack
from tests.support.process import free_port

log = logging.getLogger("benchmarks")

# The registry figure's model (issue #35).
REGISTRY_MODEL = "iris_classifier"


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
        command: list[str | Path] = [
            sys.executable,
            HERE / "floor.py",
            "--out",
            out,
            "--train",
            json.dumps(train),
        ]
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
        command: list[str | Path] = [
            sys.executable,
            HERE / "mlflow_script.py",
            "--train",
            json.dumps(params_train()),
        ]
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
        plain: bool = True,
    ) -> tuple[dict[str, Any], Path]:
        """`runs` rounds of floor, (anchor script,) cold repro, interleaved so that load that
        shifts during the benchmark weighs on every figure alike; the last copy is kept built.

        With the script (Iris), each round also runs a plain cold repro: the total is timed
        on it, without stage_probe's `-X importtime` and wrapper process (~0.1 s a stage),
        and the noop and experiment figures use the plain copy. The per-stage figures come
        from the probed repro of the same round. Without `plain` (--quick: a smoke run) the
        probed repro stands in for it.
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
            if with_script and plain:
                shutil.rmtree(project.parent)
                plain_repro, project = self.repro_once(f"{label}-plain", params, probe=False)
                plains.append(plain_repro)
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
        from mlpipeline.commands.zenml_stack import steps_network

        project = self.fresh_project("zenml-docker", probe=False)
        base = project.parent
        s3_port, mlflow_port, zenml_port = free_port(), free_port(), free_port()
        # The steps' own network; the servers listen on the host's address on it (its gateway).
        network = f"mlpipeline-zenml-steps-bench-{os.getpid()}"
        gateway = steps_network(network).gateway
        s3_url, mlflow_url = f"http://{gateway}:{s3_port}", f"http://{gateway}:{mlflow_port}"
        env = self.env(ZENML_CONFIG_PATH=str(base / "zenml-config"))
        servers: list[subprocess.Popen] = []
        try:
            servers.append(
                serve(
                    [VENV_BIN / "moto_server", "-H", gateway, "-p", str(s3_port)],
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
                        gateway,
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
                "ZENML_STEPS_NETWORK": network,
            }
            stack_command = [sys.executable, "-m", "mlpipeline", "team", "zenml-stack"]
            setup = timed(stack_command, cwd=project, env=stack_env).seconds
            command = [sys.executable, "-m", "zenml_pipeline", "--stack", "bench", "--image", image]
            cold = timed(command, cwd=project, env=env).seconds
            cached = timed(command, cwd=project, env=env).seconds
        finally:
            stop = [sys.executable, "-m", "mlpipeline", "team", "zenml-server", "--stop"]
            subprocess.run(
                stop,
                cwd=project,
                env={**env, "ZENML_SERVER_PORT": str(zenml_port)},
                capture_output=True,
            )
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
            # Its step containers stay listed (ZenML leaves them): they go with the network.
            listed = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"network={network}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if listed:
                subprocess.run(["docker", "rm", "-f", *listed], capture_output=True)
            subprocess.run(["docker", "network", "rm", network], capture_output=True)
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
                command: list[str | Path] = [
                    "python",
                    "-m",
                    "mlpipeline",
                    "model",
                    "score",
                    batch,
                    "--output",
                    out,
                ]
                scored = timed(command, cwd=project, env=env)
                metrics = json.loads((out / "summary.json").read_text())["metrics"]
                figures["score_rows_per_s"].append(metrics["rows_per_second"])
                figures["drift_seconds"].append(metrics["drift_seconds"])
                figures["peak_rss_mib"].append(scored.peak_rss_mib)
                figures["seconds"].append(scored.seconds)
                floor: list[str | Path] = [
                    sys.executable,
                    HERE / "score_floor.py",
                    batch,
                    model_uri,
                ]
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
        params: dict[str, dict[str, Any]] = {
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
        seed_registry(
            project / "mlflow.db", REGISTRY_MODEL, size["versions"], size["runs"], size["moves"]
        )
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
            "list_before": ["model", "list", "--before", "21"],
            "history": ["model", "history"],
            "card": ["model", "card", newest],
        }
        # What `make run` runs once its venv is set up: the preflight, then `dvc repro`.
        preflight: list[str | Path] = [VENV_BIN / "mlpipeline", "check", "preflight"]
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
            save: list[str | Path] = [VENV_BIN / "python", "-m", "stages.save"]
            shell["save"].append(timed(save, project, env).seconds)
        probe: list[str | Path] = [
            VENV_BIN / "python",
            "-m",
            "benchmarks.registry_probe",
            REGISTRY_MODEL,
            newest,
        ]
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
    from tests.support.team_parts import mlflow_on_postgres_and_s3

    with mlflow_on_postgres_and_s3(folder) as server:
        yield server.url, server.postgres.uri
