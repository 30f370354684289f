"""`mlpipeline model gc` / `make gc` on a real store: dry run first, then exactly what it listed.

Several versions trained by `dvc repro` and `dvc exp run` (tests/support/retention.py) in a
copy of the repository, on the embedded SQLite store; the real `mlflow gc` and `dvc gc` do
the deleting; a kept version is then rebuilt bit for bit by `mlpipeline model reproduce`.
On a tracking server (its database, its artifact proxy): test_gc_team.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.repository import copy_repository
from tests.support.retention import MODEL, train_versions
from tests.support.tools import make, run

pytestmark = pytest.mark.slow

# dvc.yaml's `cache: false` output: dvc.lock names it, the cache never holds it.
UNCACHED = {"metrics/metrics.json"}


def client(root: Path):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def mlpipeline(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["python", "-m", "mlpipeline", *args], cwd=root, check=check)


def snapshot(root: Path) -> dict[str, set[str]]:
    """Everything gc may touch: versions, runs (and their stage), logged models, experiment
    refs, DVC cache files, files and folders under the artifact root."""
    from mlflow.entities import ViewType

    mlflow_client = client(root)
    experiment = mlflow_client.get_experiment_by_name("iris_classification").experiment_id
    runs = mlflow_client.search_runs([experiment], run_view_type=ViewType.ALL, max_results=1000)
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=root).stdout
    return {
        "versions": {
            str(v.version) for v in mlflow_client.search_model_versions(f"name='{MODEL}'")
        },
        "runs": {f"{r.info.run_id} {r.info.lifecycle_stage}" for r in runs},
        "logged models": {m.model_id for m in mlflow_client.search_logged_models([experiment])},
        "refs": {ref for ref in refs.split() if not ref.startswith("refs/exps/exec/")},
        "cache": {p.relative_to(root).as_posix() for p in (root / ".dvc/cache").rglob("*")},
        "artifacts": {p.relative_to(root).as_posix() for p in (root / "mlartifacts").rglob("*")},
    }


def listed(output: str, kind: str) -> set[str]:
    """The names of one kind of item in gc's output (`would delete  KIND  NAME  (why)`)."""
    pattern = rf"^(?:would delete|deleting)  {kind}\s+(\S+)  \("
    return set(re.findall(pattern, output, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Four versions: 1 @champion (committed `dvc repro`), 2 an experiment that never held
    the alias, 3 an experiment that held it, 4 the newest; a RUNNING run and a finished run
    that registered nothing, both from long ago. The policy keeps 1 version, 0 days."""
    root = copy_repository(tmp_path_factory.mktemp("gc") / "project")
    assert train_versions(root, (20, 30, 40)) == ["1", "2", "3", "4"]
    mlpipeline(root, "model", "promote", "3", "--reason", "try it")
    mlpipeline(root, "model", "promote", "1", "--reason", "back")

    mlflow_client = client(root)
    experiment = mlflow_client.get_experiment_by_name("iris_classification").experiment_id
    running = mlflow_client.create_run(experiment, start_time=1_000).info.run_id
    orphan = mlflow_client.create_run(experiment, start_time=2_000).info.run_id
    mlflow_client.set_terminated(orphan, "FAILED", end_time=3_000)
    version = {v: mlflow_client.get_model_version(MODEL, v) for v in ("1", "2", "3", "4")}
    # The logged model each version was registered from (its source, models:/<id>).
    logged = {v: mv.source.removeprefix("models:/") for v, mv in version.items()}
    tags = {v: mlflow_client.get_run(mv.run_id).data.tags for v, mv in version.items()}
    return {
        "root": root,
        "version": version,
        "logged": logged,
        "tags": tags,
        "running": running,
        "orphan": orphan,
    }


def test_dry_run_lists_then_yes_deletes_exactly_that_and_a_kept_version_rebuilds(
    seeded: dict[str, object], mounts: list[Path]
) -> None:
    root: Path = seeded["root"]  # type: ignore[assignment]
    version = seeded["version"]
    tags = seeded["tags"]
    run2 = version["2"].run_id  # type: ignore[index]
    ref2 = tags["2"]["dvc_experiment_ref"]  # type: ignore[index]

    before = snapshot(root)
    dry = make(root, "gc").stdout
    assert snapshot(root) == before, "a dry run changed something"
    assert listed(dry, "version") == {f"{MODEL}/2"}
    assert listed(dry, "run") == {run2, seeded["orphan"]}
    assert listed(dry, "logged model") == {seeded["logged"]["2"]}  # type: ignore[index]
    assert listed(dry, "experiment ref") == {ref2}
    assert "dry run: " in dry and "nothing deleted" in dry

    # A fault half-way: run 2's artifacts cannot be deleted (a read-only mount; tests run
    # as root). The gc stops with one line; the rerun finishes the job.
    run_folder = root / "mlartifacts" / run2
    subprocess.run(["mount", "--bind", str(run_folder), str(run_folder)], check=True)
    mounts.append(run_folder)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(run_folder)], check=True)
    failed = mlpipeline(root, "model", "gc", "--yes", check=False)
    assert failed.returncode == 1, failed.stderr[-3000:]
    errors = [line for line in failed.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "mlflow gc" in errors[0], failed.stderr[-3000:]
    subprocess.run(["umount", str(run_folder)], check=True)
    mounts.remove(run_folder)

    healed = make(root, "gc", "GC_ARGS=--yes").stdout
    # What the first attempt purged before the fault is gone; run 2 and the rest are left.
    assert run2 in listed(healed, "run") <= {run2, seeded["orphan"]}, healed
    assert listed(healed, "logged model") == {seeded["logged"]["2"]}  # type: ignore[index]
    assert listed(healed, "experiment ref") == {ref2}
    after = snapshot(root)
    assert after["versions"] == before["versions"] - {"2"}
    gone_runs = {f"{run2} active", f"{seeded['orphan']} active"}
    assert after["runs"] == before["runs"] - gone_runs
    assert after["logged models"] == before["logged models"] - {seeded["logged"]["2"]}  # type: ignore[index]
    assert after["refs"] == before["refs"] - {ref2}
    gone_artifacts = {
        path
        for path in before["artifacts"]
        if path.startswith((f"mlartifacts/{run2}", f"mlartifacts/models/{seeded['logged']['2']}"))  # type: ignore[index]
    }
    assert gone_artifacts and after["artifacts"] == before["artifacts"] - gone_artifacts
    assert not (root / ".dvc/tmp/mlpipeline-gc.json").exists()
    running = client(root).get_run(str(seeded["running"]))
    assert (running.info.status, running.info.lifecycle_stage) == ("RUNNING", "active")

    # The removed experiment's data goes at the next gc, through `dvc gc`; what main and the
    # kept experiments' dvc.lock name stays.
    second = mlpipeline(root, "model", "gc").stdout
    objects = listed(second, "dvc cache")
    assert objects, second
    mlpipeline(root, "model", "gc", "--yes")
    assert all(not Path(path).exists() for path in objects)
    for revision in ["HEAD", tags["3"]["dvc_experiment_ref"], tags["4"]["dvc_experiment_ref"]]:  # type: ignore[index]
        lock = yaml.safe_load(run(["git", "show", f"{revision}:dvc.lock"], cwd=root).stdout)
        for stage in lock["stages"].values():
            for out in stage.get("outs", []):
                if out["path"] in UNCACHED:
                    continue
                md5 = out["md5"]
                assert (root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).exists(), out
    assert mlpipeline(root, "model", "gc").stdout.startswith("dry run: 0 to delete")

    # Version 3, an experiment that held the alias, rebuilds bit for bit. (The champion's
    # commit is main's: its cache objects are checked above, and a commit's rebuild is
    # tests/integration/pipeline/test_reproduce.py's.)
    rebuilt = mlpipeline(root, "model", "reproduce", f"models:/{MODEL}/3")
    assert "OK: all" in rebuilt.stdout, rebuilt.stdout
    assert json.loads((root / "models/mlflow_run.json").read_text())["run_id"] == (
        version["4"].run_id  # type: ignore[index]
    )
