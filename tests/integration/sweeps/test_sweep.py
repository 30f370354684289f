"""`mlpipeline sweep` on a two-node Ray cluster, a real mlflow server, git and DVC remotes.

One Ray cluster for the module (ray.cluster_utils.Cluster: a head that runs no trials and
two nodes of one CPU each, as two machines would be), one bare git remote and DVC remote,
and the sweep's repository a clone of them, as docs/sweeps.md sets a cluster up. The trials
are tiny forests: the machinery is under test, not the model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from mlpipeline.tool_env import tool_env
from tests.support.repository import copy_repository
from tests.support.servers import free_port, mlflow_server_in
from tests.support.tools import run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

# Wide enough that Optuna seldom draws a finished trial again (that one is pruned, not run).
SPACE = {"train.n_estimators": {"int": [2, 40]}, "train.max_depth": {"int": [2, 12]}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The server, remotes, the sweep's clone and the Ray cluster the sweeps run on."""
    from ray.cluster_utils import Cluster

    tmp = tmp_path_factory.mktemp("sweep")
    with mlflow_server_in(tmp) as (port, _), pytest.MonkeyPatch.context() as patch:
        server = f"http://127.0.0.1:{port}"
        env = tool_env({"MLFLOW_TRACKING_URI": server})
        origin = copy_repository(tmp / "origin")
        params = yaml.safe_load((origin / "params.yaml").read_text())
        params["sweep"] = {"space": SPACE, "trials": 4, "parallel": 2, "study_name": "iris"}
        (origin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "remote", "add", "-d", "shared", str(tmp / "dvc-remote")], cwd=origin, env=env)
        run(["git", "commit", "-qam", "sweep section, shared DVC remote"], cwd=origin, env=env)
        remote = tmp / "remote.git"
        run(["git", "clone", "-q", "--bare", str(origin), str(remote)], cwd=tmp, env=env)
        lead = tmp / "lead"
        run(["git", "clone", "-q", str(remote), str(lead)], cwd=tmp, env=env)
        # The nodes' processes (and so the trials) get the tools' environment, as a
        # teammate's machine has its own.
        for name, value in env.items():
            patch.setenv(name, value)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        try:
            yield {
                "env": env,
                "lead": lead,
                "server": server,
                "cluster": cluster,
                "nodes": nodes,
                "storage": f"sqlite:///{tmp / 'study.db'}",
            }
        finally:
            cluster.shutdown()


def sweep_command(setup: dict, *args: str, address: str | None = None) -> list[str]:
    """The sweep on the module's cluster (or at ADDRESS), its study in the module's database."""
    address = address or setup["cluster"].address
    return [
        "python",
        "-m",
        "mlpipeline",
        "model",
        "sweep",
        "--ray-address",
        address,
        "--storage",
        setup["storage"],
        *args,
    ]


def sweep(setup: dict, *args: str, timeout: float = 900) -> tuple[int, str]:
    """Run the sweep in the lead's clone on the module's cluster; exit status and output."""
    command = sweep_command(setup, *args)
    done = run(command, cwd=setup["lead"], env=setup["env"], check=False, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def study(setup: dict, name: str = "iris") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=setup["storage"])


def states(setup: dict, name: str = "iris") -> list[str]:
    return [trial.state.name for trial in study(setup, name).trials]


def children(setup: dict, parent: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=setup["server"])
    experiment = client.get_experiment_by_name("iris_classification")
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"
    )


def exps(setup: dict) -> set[str]:
    listed = run(["dvc", "exp", "list", "--name-only"], cwd=setup["lead"], env=setup["env"])
    return set(listed.stdout.split())


def test_four_trials_are_experiments_child_runs_and_study_trials(setup: dict) -> None:
    from mlflow import MlflowClient

    status, output = sweep(setup)
    assert status == 0, output[-4000:]
    names = {f"iris-{n}" for n in range(4)}
    assert exps(setup) == names, output[-3000:]
    assert states(setup) == ["COMPLETE"] * 4
    parent = study(setup).user_attrs["mlflow_parent_run_id"]
    runs = children(setup, parent)
    assert sorted(r.data.tags["dvc_experiment"] for r in runs) == sorted(names)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["sweep_trial"] for r in runs} == {"0", "1", "2", "3"}
    client = MlflowClient(tracking_uri=setup["server"], registry_uri=setup["server"])
    best = client.get_run(parent).data.tags["best_experiment"]
    assert best in names
    assert f"dvc exp apply {best}" in output
    # Trials register nothing: the registry stays empty until `make run` after an apply.
    assert client.search_registered_models() == []
    shown = json.loads(
        run(["dvc", "exp", "show", "--json"], cwd=setup["lead"], env=setup["env"]).stdout
    )
    shown_names = {exp["name"] for row in shown for exp in row.get("experiments") or []}
    assert names <= shown_names


def test_running_again_resumes_the_study_and_applies_the_best_trial(setup: dict) -> None:
    from mlflow import MlflowClient

    parent = study(setup).user_attrs["mlflow_parent_run_id"]
    status, output = sweep(setup, "--trials", "1", "--parallel", "1", "--apply-best")
    assert status == 0, output[-4000:]
    assert states(setup).count("COMPLETE") == 5
    assert study(setup).user_attrs["mlflow_parent_run_id"] == parent
    assert len(children(setup, parent)) == 5
    assert "iris-4" in exps(setup)
    # --apply-best: the best trial in the workspace, registered by save's usual gate.
    client = MlflowClient(tracking_uri=setup["server"], registry_uri=setup["server"])
    # (save's lineage record drops the run's experiment tags: it is the workspace's run now)
    best = client.get_run(parent).data.tags["best_trial"]
    best_run = next(r for r in children(setup, parent) if r.data.tags["sweep_trial"] == best)
    versions = client.search_model_versions("name = 'iris_classifier'")
    assert [v.run_id for v in versions] == [best_run.info.run_id], output[-3000:]
    workspace = yaml.safe_load((setup["lead"] / "params.yaml").read_text())["train"]
    assert workspace["max_depth"] == int(best_run.data.params["max_depth"])
    # As a user would (docs/sweeps.md): commit it; the next sweeps start from there.
    run(["git", "commit", "-qam", "the sweep's best trial"], cwd=setup["lead"], env=setup["env"])
    unpushed, output = sweep(setup, "--trials", "1")
    assert unpushed == 1 and "is not on the git remote 'origin'" in output, output[-2000:]
    run(["git", "push", "-q", "origin", "HEAD"], cwd=setup["lead"], env=setup["env"])


def test_a_trial_whose_params_fail_validation_fails_alone_with_one_line(
    setup: dict, tmp_path: Path
) -> None:
    params = yaml.safe_load((setup["lead"] / "params.yaml").read_text())
    params["sweep"] = {
        "space": {"train.min_samples_split": {"int": [1, 1]}},
        "trials": 1,
        "parallel": 1,
        "study_name": "invalid",
    }
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params, sort_keys=False))
    status, output = sweep(setup, "--params", str(bad))
    assert status == 0, output[-4000:]
    lines = [line for line in output.splitlines() if "trial 0:" in line and "WARNING" in line]
    assert len(lines) == 1 and "train.min_samples_split" in lines[0], output[-3000:]
    assert states(setup, "invalid") == ["FAIL"]


def test_an_unreachable_ray_cluster_is_one_line_within_a_minute(setup: dict) -> None:
    started = time.monotonic()
    command = sweep_command(setup, address=f"127.0.0.1:{free_port()}")
    done = run(command, cwd=setup["lead"], env=setup["env"], check=False, timeout=120)
    assert time.monotonic() - started < 60
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "unreachable" in errors[0], done.stderr[-2000:]


def test_a_node_killed_mid_trial_leaves_no_running_run_nor_half_pushed_experiment(
    setup: dict, tmp_path: Path
) -> None:
    """Last in the module: it takes a node away.

    In a study of its own: no earlier trial can be drawn again (a repeat is not run), so
    both trials open runs.
    """
    import subprocess

    from mlflow import MlflowClient

    params = yaml.safe_load((setup["lead"] / "params.yaml").read_text())
    params["sweep"] = {"space": SPACE, "trials": 2, "parallel": 2, "study_name": "killed"}
    own = tmp_path / "params.yaml"
    own.write_text(yaml.safe_dump(params, sort_keys=False))

    def opened() -> list:
        try:
            parent = study(setup, "killed").user_attrs.get("mlflow_parent_run_id")
        except KeyError:  # the sweep has not created its study yet
            return []
        return children(setup, parent) if parent else []

    command = sweep_command(setup, "--params", str(own))
    output_to = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    with subprocess.Popen(command, cwd=setup["lead"], env=setup["env"], **output_to) as sweeping:
        deadline = time.monotonic() + 600
        # Both nodes are training once two child runs are open.
        while time.monotonic() < deadline and len(opened()) < 2 and sweeping.poll() is None:
            time.sleep(1)
        if len(opened()) < 2:
            sweeping.kill()
            output, _ = sweeping.communicate(timeout=60)
            raise AssertionError(f"the trials never opened their runs:\n{output[-4000:]}")
        setup["cluster"].remove_node(setup["nodes"][0])
        output, _ = sweeping.communicate(timeout=900)
    assert sweeping.returncode == 0, output[-4000:]
    trials = study(setup, "killed").trials
    assert len(trials) == 2, output[-3000:]
    assert {t.state.name for t in trials} <= {"COMPLETE", "FAIL"}, output[-3000:]
    client = MlflowClient(tracking_uri=setup["server"])
    statuses = [client.get_run(r.info.run_id).info.status for r in opened()]
    assert "RUNNING" not in statuses, output[-3000:]
    # The node died under a trial (Ray ran it again): the run it had open was ended, KILLED
    # by the store's reaper (its process is gone) or FAILED by the sweep, not left RUNNING.
    assert {"KILLED", "FAILED"} & set(statuses), output[-3000:]
    assert "will be retried" in output, output[-3000:]
    # Only complete trials' experiments came back; the remote holds no other of theirs.
    pulled = exps(setup)
    for trial in trials:
        name = trial.user_attrs["dvc_experiment"]
        assert (name in pulled) == (trial.state.name == "COMPLETE"), output[-3000:]
