"""`make sweep` on a laptop: no RAY_ADDRESS, so Ray starts here, under make's `uv run`.

Here means a Ray of the sweep's own, even when another Ray runs on the machine.

Its own module, so the module of tests/integration/sweeps/test_sweep.py keeps its one cluster: this
sweep's Ray is started by the sweep itself (sized to `--parallel 2`, two CPUs, the driver
holding none) and stopped when it ends. Three tiny-forest trials on two workers: the third
runs in the working copy a worker made for its first, reset to the sweep's commit.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import optuna
import pytest
import yaml

from mlpipeline.tool_env import tool_env
from mlpipeline.tracking import store
from tests.support.repository import copy_repository
from tests.support.servers import free_port
from tests.support.tools import make, run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SPACE = {"train.n_estimators": {"int": [2, 40]}, "train.max_depth": {"int": [2, 12]}}
STUDY = "laptop"


def test_make_sweep_starts_ray_here_and_reuses_each_workers_copy(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    root = copy_repository(tmp_path / "repo")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sweep"] = {"space": SPACE, "trials": 3, "parallel": 2, "study_name": STUDY}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # Another Ray on this machine (a `ray start`, a test's cluster; here only its address in
    # Ray's temp folder, short for Ray's socket paths): Ray with no address would join it.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
    env = {k: v for k, v in tool_env({"RAY_TMPDIR": str(ray_tmp)}).items() if k != "RAY_ADDRESS"}
    run(["git", "commit", "-qam", "sweep section"], cwd=root, env=env)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    copies = set(Path(tempfile.gettempdir()).glob(f"sweep-{STUDY}-*"))

    try:
        done = make(root, "sweep", f"SWEEP_ARGS=--storage {storage}", env=env, timeout=800)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)

    output = done.stdout + done.stderr
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3, output[-4000:]
    listed = run(["dvc", "exp", "list", "--name-only"], cwd=root, env=env).stdout.split()
    assert sorted(listed) == [f"{STUDY}-{n}" for n in range(3)], output[-3000:]
    # Two workers made a copy each (clone, data); the third trial reset one of them.
    finished = [line for line in output.splitlines() if f"({STUDY}-" in line and " = " in line]
    assert len(finished) == 3, output[-3000:]
    assert sum("clone" in line for line in finished) == 2, "\n".join(finished)
    assert sum("reset" in line and "clone" not in line for line in finished) == 1
    # The copies went with the sweep.
    assert set(Path(tempfile.gettempdir()).glob(f"sweep-{STUDY}-*")) == copies
    # Three FINISHED child runs under the parent, in the embedded store a laptop uses.
    client = MlflowClient(tracking_uri=store.resolve_uri(None, root))
    parent = study.user_attrs["mlflow_parent_run_id"]
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.data.tags["dvc_experiment"] for r in runs) == sorted(listed)
    assert {r.info.status for r in runs} == {"FINISHED"}
    # The trials ran in their copies: the workspace still holds the committed params.
    assert yaml.safe_load((root / "params.yaml").read_text()) == params
