"""Experiments on several machines, the way DVC supports it since `dvc machine` was removed.

Two worker clones of one git remote each queue two experiments and run them with `dvc queue
start -j 2`; DVC_EXP_AUTO_PUSH / DVC_EXP_GIT_REMOTE push every finished experiment's ref to
the git remote and its outputs to the DVC remote, and every run logs to one `mlflow server`.
A third clone `dvc exp pull`s them, `make exps` lists all four, and `make reproduce`
rebuilds a worker's experiment from its ref. docs/deploy.md, "Run experiments on several
machines", has the same commands.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import copy_repository
from tests.support.tools import make, run, run_queue

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

TREES = {"worker-1": (11, 12), "worker-2": (21, 22)}


def test_two_workers_queue_experiments_a_third_clone_pulls_lists_and_reproduces_them(
    tmp_path: Path, mlflow_server: str
) -> None:
    from mlflow import MlflowClient

    # The team's git remote and DVC remote (a bare repository and a folder here; an S3 URL
    # works the same), committed in .dvc/config so that every clone has it.
    origin = copy_repository(tmp_path / "origin")
    env = tool_env({"MLFLOW_TRACKING_URI": mlflow_server})
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "dvc-remote")], cwd=origin, env=env)
    run(["git", "commit", "-qam", "shared DVC remote"], cwd=origin, env=env)
    remote = tmp_path / "remote.git"
    run(["git", "clone", "-q", "--bare", str(origin), str(remote)], cwd=tmp_path, env=env)

    worker_env = {**env, "DVC_EXP_AUTO_PUSH": "true", "DVC_EXP_GIT_REMOTE": "origin"}
    workers = {name: tmp_path / name for name in TREES}
    for name, clone in workers.items():
        run(["git", "clone", "-q", str(remote), str(clone)], cwd=tmp_path, env=env)
        for trees in TREES[name]:
            run(
                [
                    "dvc",
                    "exp",
                    "run",
                    "--queue",
                    "-n",
                    f"{name}-{trees}",
                    "-S",
                    f"train.n_estimators={trees}",
                ],
                cwd=clone,
                env=worker_env,
            )
    # Both workers at once: four pipelines against one server.
    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        queues = [pool.submit(run_queue, clone, worker_env, 2, 900) for clone in workers.values()]
        for queue in queues:
            queue.result()

    names = {f"{name}-{trees}" for name, trees_list in TREES.items() for trees in trees_list}
    pushed = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=remote).stdout
    assert {ref.rsplit("/", 1)[-1] for ref in pushed.split()} == names, pushed

    # Another machine: a plain clone pulls every experiment of its commit, with its outputs.
    lead = tmp_path / "lead"
    run(["git", "clone", "-q", str(remote), str(lead)], cwd=tmp_path, env=env)
    run(["dvc", "exp", "pull", "origin"], cwd=lead, env=env, timeout=600)
    listed = run(["dvc", "exp", "list", "--name-only"], cwd=lead, env=env).stdout.split()
    assert set(listed) == names
    rows = json.loads(make(lead, "-s", "exps", "EXPS_ARGS=--json", env=env).stdout)
    experiments = {exp["name"] for row in rows for exp in row.get("experiments") or []}
    assert names <= experiments, experiments

    # Every run landed in the one experiment on the server, each with its ref.
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    runs = client.search_runs(
        [client.get_experiment_by_name("iris_classification").experiment_id],
        filter_string="attributes.status = 'FINISHED'",
    )
    by_ref = {r.data.tags.get("dvc_experiment_ref", ""): r for r in runs}
    refs = {ref.rsplit("/", 1)[-1]: ref for ref in by_ref if ref.startswith("refs/exps/")}
    assert set(refs) == names, sorted(by_ref)
    teammate_run = by_ref[refs["worker-2-21"]]
    assert teammate_run.data.params["n_estimators"] == "21"

    # The lead rebuilds a teammate's experiment from its ref, bit for bit.
    rebuilt = make(lead, "reproduce", f"MODEL={teammate_run.info.run_id}", env=env, check=False)
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    assert f"at {refs['worker-2-21']}" in rebuilt.stdout
    assert "match   models/classifier.pkl" in rebuilt.stdout
    assert "DIFFERS" not in rebuilt.stdout
