"""The ZenML pipeline with every step in its own container (docs/zenml.md).

`mlpipeline team zenml-stack` sets up, on free ports of the host's address on the step
containers' own Docker network (internal, made here): a local ZenML server with a login
(`team zenml-server`), the `local_docker` orchestrator running the project's image
(docker/Dockerfile, tag DOCKER_TEST_IMAGE) hardened, on that network, an S3 artifact store on
moto's S3 server and, as experiment tracker, MLflow's basic-auth server as the team runs it
(SQLite backend here), as the pipeline account. Then `python -m zenml_pipeline --stack ...
--image ...` runs in a copy of the repository. ZenML's config lives in a temp folder; its
server is stopped at the end, the network removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from mlpipeline.commands.zenml_stack import steps_network
from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.compose import IMAGE, base_image
from tests.support.repository import REPO, copy_repository
from tests.support.servers import free_port, serving, team_server_in
from tests.support.tools import run
from tests.support.zenml import STEPS, run_id, statuses, zenml_client_for

if TYPE_CHECKING:
    from zenml.client import Client

# The run test took 819 s (setup 229 s with the image build) on the shared 2-core machine at
# load 20, 2026-12-07; pyproject's 600 s default would cut it. Twice that, bounded.
pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.timeout(1800)]

STACK = "containers"
# This module's own steps network (docs/zenml.md), removed after it.
NETWORK = f"mlpipeline-zenml-steps-test-{os.getpid()}"
S3_PATH = "s3://zenml-artifacts/store"
# Test-only credentials for servers that live as long as this module; moto accepts any.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "zenml-test-key",
    "AWS_SECRET_ACCESS_KEY": "zenml-test-secret-" + os.urandom(6).hex(),
    "AWS_DEFAULT_REGION": "us-east-1",
}
ADMIN = {
    "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-pw-" + os.urandom(6).hex(),
}
PIPELINE = {
    "MLFLOW_TRACKING_USERNAME": "pipeline",
    "MLFLOW_TRACKING_PASSWORD": "pipeline-pw-" + os.urandom(6).hex(),
}


@dataclass(frozen=True)
class Servers:
    root: Path
    env: dict[str, str]  # the user's shell: ZenML config, no secret
    s3_url: str
    mlflow_url: str
    zenml_port: int
    # The host's address on NETWORK, where every server listens.
    gateway: str

    def zenml(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "zenml_pipeline", "--stack", STACK, "--image", IMAGE]
        return run([*command, *args], self.root, self.env, check, timeout=1500)

    def mlflow(self):
        from mlflow import MlflowClient

        os.environ.update(PIPELINE)
        return MlflowClient(tracking_uri=self.mlflow_url, registry_uri=self.mlflow_url)

    def step_containers(self) -> list[dict]:
        """The containers ZenML started for this module's server: `docker inspect` of each."""
        listed = run(["docker", "ps", "-a", "-q", "--filter", f"ancestor={IMAGE}"], REPO)
        ids = listed.stdout.split()
        if not ids:
            return []
        inspected = json.loads(run(["docker", "inspect", *ids], REPO).stdout)
        ours = f"ZENML_STORE_URL=http://{self.gateway}:{self.zenml_port}"
        return [c for c in inspected if ours in (c["Config"]["Env"] or [])]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("zenml-docker")
    root = copy_repository(base / "project")
    run(
        [
            "docker",
            "build",
            "-t",
            IMAGE,
            "-f",
            "docker/Dockerfile",
            "--build-arg",
            f"BASE_IMAGE={base_image()}",
            ".",
        ],
        REPO,
        timeout=1500,
    )
    env = tool_env(
        {
            "ZENML_CONFIG_PATH": str(base / "zenml_config"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_LOGGING_COLORS_DISABLED": "true",
            "ZENML_ENABLE_RICH_TRACEBACK": "false",
        }
    )
    s3_port, zenml_port = free_port(), free_port()
    with ExitStack() as running:
        running.callback(run, ["docker", "network", "rm", NETWORK], REPO, check=False)
        gateway = steps_network(NETWORK).gateway
        s3_url = f"http://{gateway}:{s3_port}"
        s3 = {**S3_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3_url}
        moto = [VENV_BIN / "moto_server", "-H", gateway, "-p", str(s3_port)]
        running.enter_context(serving(moto, f"{s3_url}/moto-api/", base / "moto.log", env, base))
        run(
            [VENV_BIN / "python", "-m", "mlpipeline", "team", "buckets", "mlflow-artifacts"],
            REPO,
            {**env, **s3},
        )
        mlflow_url, _ = running.enter_context(
            team_server_in(
                base,
                {
                    **env,
                    **s3,
                    **ADMIN,
                    "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{base / 'mlflow.db'}",
                    "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow-artifacts/artifacts",
                },
                "--serve-artifacts",
                host=gateway,
            )
        )
        running.callback(_remove_what_zenml_started, root, env, zenml_port, gateway)
        team = {**env, **ADMIN, **PIPELINE, "MLFLOW_TRACKING_URI": mlflow_url}
        run([VENV_BIN / "python", "-m", "mlpipeline", "team", "users", "pipeline"], root, team)
        # What `make zenml-stack` reads; the secrets reach ZenML's secret store only.
        stack_env = {
            **env,
            **s3,
            **PIPELINE,
            "MLFLOW_TRACKING_URI": mlflow_url,
            "ZENML_S3_PATH": S3_PATH,
            "ZENML_STACK": STACK,
            "ZENML_SERVER_PORT": str(zenml_port),
            "ZENML_STEPS_NETWORK": NETWORK,
        }
        command = [VENV_BIN / "python", "-m", "mlpipeline", "team", "zenml-stack"]
        for _ in range(2):  # idempotent: the second run updates in place
            made = run(command, root, stack_env, timeout=600)
        assert f"stack {STACK}: local_docker on network {NETWORK}, s3 {S3_PATH}" in made.stderr
        yield Servers(root, env, s3_url, mlflow_url, zenml_port, gateway)


def _remove_what_zenml_started(
    root: Path, env: dict[str, str], zenml_port: int, gateway: str
) -> None:
    """The step containers of this module's ZenML server, and the server."""
    ids = [c["Id"] for c in Servers(root, env, "", "", zenml_port, gateway).step_containers()]
    if ids:
        run(["docker", "rm", "-f", *ids], REPO, check=False)
    stop = [VENV_BIN / "python", "-m", "mlpipeline", "team", "zenml-server", "--stop"]
    run(stop, root, {**env, "ZENML_SERVER_PORT": str(zenml_port)}, check=False, timeout=120)


@pytest.fixture(scope="module")
def zenml_client(servers: Servers) -> Iterator[Client]:
    with zenml_client_for(servers.env, servers.root) as client:
        yield client


def test_the_stack_keeps_credentials_in_secrets_only(servers: Servers, zenml_client: Client):
    from zenml.enums import StackComponentType

    stack = zenml_client.get_stack(STACK)
    flavors = {kind: components[0].flavor_name for kind, components in stack.components.items()}
    assert flavors == {
        StackComponentType.ORCHESTRATOR: "local_docker",
        StackComponentType.ARTIFACT_STORE: "s3",
        StackComponentType.IMAGE_BUILDER: "local",
        StackComponentType.EXPERIMENT_TRACKER: "mlflow",
    }
    stored = json.dumps(
        [c.configuration for components in stack.components.values() for c in components]
    )
    for secret in (S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], PIPELINE["MLFLOW_TRACKING_PASSWORD"]):
        assert secret not in stored
    assert "{{containers-mlflow.MLFLOW_TRACKING_PASSWORD}}" in stored
    assert "{{containers-s3.aws_secret_access_key}}" in stored


def test_steps_run_in_containers_match_dvc_and_a_killed_step_heals(
    servers: Servers, zenml_client: Client, tmp_path: Path
) -> None:
    first = zenml_client.get_pipeline_run(run_id(servers.zenml()))
    assert statuses(first) == dict.fromkeys(STEPS, "completed")
    # One container per step, from the project's image, each exited 0.
    containers = [c for c in servers.step_containers() if str(first.snapshot.id) in c["Args"]]
    step_names = sorted(c["Args"][c["Args"].index("--step_name") + 1] for c in containers)
    assert step_names == sorted(STEPS)
    assert {c["State"]["ExitCode"] for c in containers} == {0}
    # Hardened as the compose services are (docs/zenml.md): the image's user, not root.
    for container in containers:
        host = container["HostConfig"]
        assert container["Config"]["User"] == "app", container["Config"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], host
        assert host["SecurityOpt"] == ["no-new-privileges:true"], host
        assert host["Memory"] == 2 * 1024**3 and host["PidsLimit"] == 256, host
        assert host["ReadonlyRootfs"] is True, host
        # On the steps network, not the host's (docs/zenml.md).
        assert host["NetworkMode"] == NETWORK, host
        # ZenML's own mount, its local stores folder, read-write (it adds it after run_args):
        # a new empty folder for the run, not the client's, removed after it.
        mounts = container["Mounts"]
        assert [mount["Type"] for mount in mounts] == ["bind"], mounts
        assert Path(mounts[0]["Source"]).name.startswith("step-mount-"), mounts
        assert not Path(mounts[0]["Source"]).exists(), mounts
    secrets = zenml_client.list_secrets(name=f"startswith:{STACK}-").items
    assert sorted(secret.name for secret in secrets) == [f"{STACK}-mlflow", f"{STACK}-s3"]
    assert all(secret.private for secret in secrets)
    # The outputs are in S3, and read back from there.
    classifier_uri = first.steps["train"].outputs["classifier"][0].uri
    assert classifier_uri.startswith(f"{S3_PATH}/")
    # The DVC path on the same params, in its own copy on the embedded store.
    dvc_copy = copy_repository(tmp_path / "dvc")
    run(["dvc", "repro"], cwd=dvc_copy, env=tool_env(), timeout=900)
    dvc_metrics = json.loads((dvc_copy / "metrics" / "metrics.json").read_text())
    trees = yaml.safe_load((dvc_copy / "params.yaml").read_text())["train"]["n_estimators"]
    assert first.steps["evaluate"].outputs["metrics"][0].load() == dvc_metrics
    # The MLflow run on the team server, as the pipeline account: what `dvc repro` logs.
    mlflow = servers.mlflow()
    mlflow_run_id = first.steps["train"].outputs["mlflow_run_id"][0].load()
    logged = mlflow.get_run(mlflow_run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["zenml_pipeline_run_id"] == str(first.id)
    assert logged.data.params["n_estimators"] == str(trees)
    assert logged.data.metrics["accuracy"] == dvc_metrics["accuracy"]
    assert logged.data.metrics["f1_score"] == dvc_metrics["f1_score"]
    version = first.steps["save"].outputs["model_version"][0].load()
    assert mlflow.get_model_version("iris_classifier", version).run_id == mlflow_run_id

    # A train step killed mid-run (its MLflow run open): the ZenML run fails, and the rerun
    # settles the orphaned MLflow run, reuses load and preprocess and trains again. A bigger
    # forest keeps train's run open for seconds (the fit, then the model's upload); its
    # container is found first, so the kill follows the run's opening within a poll.
    forest = 400
    changed = ("--set", f"train.n_estimators={forest}")
    killed = subprocess.Popen(
        [sys.executable, "-m", "zenml_pipeline", "--stack", STACK, "--image", IMAGE, *changed],
        cwd=servers.root,
        env=servers.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    experiment_id = logged.info.experiment_id
    deadline = time.monotonic() + 900
    train_container, open_runs = None, []
    while not open_runs and time.monotonic() < deadline and killed.poll() is None:
        if train_container is None:
            running = [
                c["Id"]
                for c in servers.step_containers()
                if c["State"]["Running"] and "train" in c["Args"]
            ]
            assert len(running) <= 1, running
            train_container = running[0] if running else None
        else:
            open_runs = mlflow.search_runs([experiment_id], "attributes.status = 'RUNNING'")
        time.sleep(0.2)
    assert open_runs, f"train never opened its MLflow run:\n{killed.communicate()[0][-4000:]}"
    run(["docker", "kill", train_container], REPO)
    output, _ = killed.communicate(timeout=600)
    assert killed.returncode != 0, output[-4000:]
    assert "ZenML step train: its container exited 137 (killed)" in output
    failed = zenml_client.get_pipeline("training_pipeline").last_run
    assert failed.status.value == "failed", output[-4000:]
    # Ended by the entry point that saw the container die, its unfinished model with it.
    assert mlflow.get_run(open_runs[0].info.run_id).info.status == "KILLED"

    healed = zenml_client.get_pipeline_run(run_id(servers.zenml(*changed)))
    assert statuses(healed) == {
        "load": "cached",
        "preprocess": "cached",
        "train": "completed",
        "evaluate": "completed",
        "save": "completed",
    }
    healed_run = mlflow.get_run(healed.steps["train"].outputs["mlflow_run_id"][0].load())
    assert healed_run.info.status == "FINISHED"
    assert healed_run.data.params["n_estimators"] == str(forest)
    healed_metrics = healed.steps["evaluate"].outputs["metrics"][0].load()
    assert healed_run.data.metrics["accuracy"] == healed_metrics["accuracy"]


# Run in a container as the orchestrator runs a step: prints, for each HOST:PORT argument,
# "open" or "closed" (refused, unreachable or timed out).
REACH_PROBE = """
import socket, sys

for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        print(target, "open")
    except OSError:
        print(target, "closed")
"""


def test_a_step_container_reaches_the_stacks_servers_and_no_loopback_port(
    servers: Servers, zenml_client: Client
) -> None:
    """A container with the stack's run_args (its network, as ZenML adds host.docker.internal)
    reaches the ZenML, S3 and MLflow servers at the host's address on the steps network, and
    not a port the host serves on 127.0.0.1 only (host networking reached every one)."""
    import socket
    from urllib.parse import urlsplit

    from docker.client import DockerClient
    from zenml.enums import StackComponentType

    components = zenml_client.get_stack(STACK).components
    run_args = components[StackComponentType.ORCHESTRATOR][0].configuration["run_args"]
    doors = [
        f"{servers.gateway}:{servers.zenml_port}",
        f"{servers.gateway}:{urlsplit(servers.s3_url).port}",
        f"{servers.gateway}:{urlsplit(servers.mlflow_url).port}",
    ]
    with socket.socket() as loopback_only:
        loopback_only.bind(("127.0.0.1", 0))
        loopback_only.listen()
        port = loopback_only.getsockname()[1]
        elsewhere = [f"127.0.0.1:{port}", f"{servers.gateway}:{port}"]
        elsewhere.append(f"host.docker.internal:{port}")
        output = DockerClient.from_env().containers.run(
            IMAGE,
            entrypoint=["python", "-c", REACH_PROBE],
            command=[*doors, *elsewhere],
            extra_hosts={"host.docker.internal": "host-gateway"},
            remove=True,
            **run_args,
        )
    answers = dict(line.rsplit(" ", 1) for line in output.decode().splitlines())
    assert answers == {
        **dict.fromkeys(doors, "open"),
        **dict.fromkeys(elsewhere, "closed"),
    }, answers
