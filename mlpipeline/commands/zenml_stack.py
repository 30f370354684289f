"""A ZenML stack that runs every step in its own container: `make zenml-stack`.

    mlpipeline team zenml-stack            # stack `docker`, then:
    python -m zenml_pipeline --stack docker --image dvc-mlops-pipeline:latest

What it sets up (docs/zenml.md, "Every step in its own container"):

- the Docker network the step containers run on, ZENML_STEPS_NETWORK (default
  mlpipeline-zenml-steps), made if missing: internal (no route out of it) and with no
  traffic between its containers, so a step reaches only the host's address on it, its
  gateway, and only the servers listening there; never the host's loopback;
- a local ZenML server with ZenML's password login (`team zenml-server`, port
  ZENML_SERVER_PORT, default 8237) on that gateway, which this client logs in to and the
  step containers report to;
- the `local_docker` orchestrator (steps on that network; the image's non-root user, no
  capability, limits, a read-only root) with ZenML's local image builder beside it;
- an S3 artifact store at ZENML_S3_PATH (s3://bucket/prefix) on the S3 server
  MLFLOW_S3_ENDPOINT_URL (else AWS_ENDPOINT_URL, else AWS itself); its bucket is created if
  missing;
- the MLflow server MLFLOW_TRACKING_URI as experiment tracker, logged in as the pipeline
  account.

One configuration serves the client here and the step containers, so the S3 and MLflow
addresses must mean the same on both sides: on an internal network, the gateway's address
(the host reaches its own address too); a loopback one is refused, naming the gateway.

Credentials come from the environment only (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) and go into two private ZenML secrets
(only the server's account reads them), `<stack>-s3` and `<stack>-mlflow`; the components
hold `{{secret.key}}` references, never a value, and nothing secret is on a command line.
Idempotent: a second run updates the secrets, components and stack in place.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from mlpipeline.commands.buckets import endpoint_url, ensure_buckets
from mlpipeline.commands.console import command
from mlpipeline.commands.zenml_server import ensure_logged_in, port_option
from mlpipeline.domain.errors import PipelineError

if TYPE_CHECKING:
    from zenml.client import Client
    from zenml.enums import StackComponentType

log = logging.getLogger("mlpipeline.zenml_stack")

DEFAULT_STACK = "docker"
# Keys of the `<stack>-mlflow` secret: the step containers get them as environment variables
# (ZenML sets a component's secrets in the step's environment), the names MLflow reads.
MLFLOW_LOGIN_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# docker-py's `containers.run` arguments for every step container, as the compose services
# run: the image's own non-root user (not ZenML's default, the caller's uid: root under
# sudo), no capability and no way to gain one, memory and process limits (a step of the
# Iris pipeline peaks under 1 GB), a read-only root filesystem with tmpfs where a step
# writes: /app (ZenML downloads the code there) and /tmp, the step's HOME (ZenML's config).
# Not the host's network: register_stack adds the steps network (`network`). ZenML's own
# read-write mount, its local stores folder, is a new empty one per run (zenml_pipeline's
# empty_local_stores).
STEP_CONTAINER_RUN_ARGS = {
    "user": "app",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "mem_limit": "2g",
    "pids_limit": 256,
    "read_only": True,
    "tmpfs": {"/app": "size=512m,mode=1777", "/tmp": "size=512m,mode=1777"},
    "environment": {"HOME": "/tmp"},
}


# The step containers' Docker network, made by zenml-stack when missing (ZENML_STEPS_NETWORK).
DEFAULT_STEPS_NETWORK = "mlpipeline-zenml-steps"


@dataclass(frozen=True)
class StepsNetwork:
    name: str
    # The host's address on it, where the servers a step needs listen.
    gateway: str
    # No route out of it: a step reaches the gateway and nothing else.
    internal: bool


def steps_network(name: str) -> StepsNetwork:
    """The Docker network NAME, made if missing: internal, with no traffic between its
    containers (Docker's bridge option enable_icc false)."""
    from docker.client import DockerClient
    from docker.errors import DockerException, NotFound

    try:
        client = DockerClient.from_env()
        try:
            network = client.networks.get(name)
        except NotFound:
            network = client.networks.create(
                name,
                driver="bridge",
                internal=True,
                options={"com.docker.network.bridge.enable_icc": "false"},
            )
            network.reload()
    except DockerException as exc:
        raise PipelineError(f"ZENML_STEPS_NETWORK {name}: {exc}") from None
    configs = network.attrs.get("IPAM", {}).get("Config") or []
    gateways = [c["Gateway"] for c in configs if "." in (c.get("Gateway") or "")]
    if not gateways:
        raise PipelineError(f"ZENML_STEPS_NETWORK {name}: the Docker network has no IPv4 gateway")
    return StepsNetwork(name, gateways[0], bool(network.attrs.get("Internal")))


def check_reachable_from_steps(settings: StackSettings, network: StepsNetwork) -> None:
    """Fail unless a step container on NETWORK reaches the S3 and MLflow servers at the
    addresses this client uses: never a loopback one, and on an internal network only the
    gateway's."""
    servers = [("MLFLOW_TRACKING_URI", settings.tracking_uri)]
    servers.append(("MLFLOW_S3_ENDPOINT_URL", settings.s3_endpoint or "https://s3.amazonaws.com"))
    for variable, url in servers:
        host = urlsplit(url).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback or (network.internal and host != network.gateway):
            raise PipelineError(
                f"{variable} {url}: a step container (Docker network {network.name}"
                f"{', internal' if network.internal else ''}) does not reach it; serve it on "
                f"{network.gateway}, the host's address on that network, and use that address "
                "here too (docs/zenml.md)"
            )


@dataclass(frozen=True)
class StackSettings:
    name: str
    s3_path: str
    s3_endpoint: str | None
    s3_key: str
    s3_secret: str
    tracking_uri: str
    tracking_username: str
    tracking_password: str

    @property
    def bucket(self) -> str:
        return self.s3_path.removeprefix("s3://").split("/", 1)[0]


def settings_from_env(name: str) -> StackSettings:
    """The stack's settings; a missing variable fails naming it."""
    required = (
        "ZENML_S3_PATH",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_TRACKING_URI",
        *MLFLOW_LOGIN_KEYS,
    )
    missing = [key for key in required if not os.environ.get(key)]
    if missing:
        raise PipelineError(f"zenml stack {name}: set {', '.join(missing)} (docs/zenml.md)")
    s3_path = os.environ["ZENML_S3_PATH"]
    if not s3_path.startswith("s3://") or not s3_path.removeprefix("s3://").split("/")[0]:
        raise PipelineError(f"ZENML_S3_PATH: {s3_path!r} is not s3://bucket[/prefix]")
    tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
    if not tracking_uri.startswith(("http://", "https://")):
        raise PipelineError(
            f"MLFLOW_TRACKING_URI: {tracking_uri!r} is not an MLflow server (http[s]://...): "
            "a step container cannot reach a local store"
        )
    return StackSettings(
        name=name,
        s3_path=s3_path,
        s3_endpoint=endpoint_url(),
        s3_key=os.environ["AWS_ACCESS_KEY_ID"],
        s3_secret=os.environ["AWS_SECRET_ACCESS_KEY"],
        tracking_uri=tracking_uri,
        tracking_username=os.environ["MLFLOW_TRACKING_USERNAME"],
        tracking_password=os.environ["MLFLOW_TRACKING_PASSWORD"],
    )


def put_secret(client: Client, name: str, values: dict[str, str]) -> None:
    from zenml.exceptions import EntityExistsError

    try:
        client.create_secret(name=name, values=values, private=True)
    except EntityExistsError:
        client.update_secret(name, add_or_update_values=values)


def put_component(
    client: Client,
    component_type: StackComponentType,
    name: str,
    flavor: str,
    configuration: dict,
    secrets: list[str] | None = None,
) -> None:
    try:
        existing = client.get_stack_component(component_type, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(
            name=name,
            flavor=flavor,
            component_type=component_type,
            configuration=configuration,
            secrets=secrets,
        )
        return
    if existing.flavor_name != flavor:
        raise PipelineError(
            f"zenml {component_type.value} {name} exists with flavor {existing.flavor_name}, "
            f"not {flavor}: remove it or choose another stack name"
        )
    client.update_stack_component(
        name, component_type, configuration=configuration, add_secrets=secrets
    )


def register_stack(settings: StackSettings, network: StepsNetwork) -> None:
    """Secrets, components and the stack, created or brought up to date."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    s3_secret, mlflow_secret = f"{settings.name}-s3", f"{settings.name}-mlflow"
    s3_keys = {"aws_access_key_id": settings.s3_key, "aws_secret_access_key": settings.s3_secret}
    put_secret(client, s3_secret, s3_keys)
    login = dict(
        zip(
            MLFLOW_LOGIN_KEYS, (settings.tracking_username, settings.tracking_password), strict=True
        )
    )
    put_secret(client, mlflow_secret, login)
    s3_config: dict = {
        "path": settings.s3_path,
        "key": f"{{{{{s3_secret}.aws_access_key_id}}}}",
        "secret": f"{{{{{s3_secret}.aws_secret_access_key}}}}",
    }
    if settings.s3_endpoint:
        s3_config["client_kwargs"] = {"endpoint_url": settings.s3_endpoint}
    name = settings.name
    put_component(client, StackComponentType.ARTIFACT_STORE, name, "s3", s3_config)
    put_component(client, StackComponentType.IMAGE_BUILDER, name, "local", {})
    put_component(
        client,
        StackComponentType.ORCHESTRATOR,
        name,
        "local_docker",
        {"run_args": {**STEP_CONTAINER_RUN_ARGS, "network": network.name}},
    )
    put_component(
        client,
        StackComponentType.EXPERIMENT_TRACKER,
        name,
        "mlflow",
        {
            "tracking_uri": settings.tracking_uri,
            "tracking_username": f"{{{{{mlflow_secret}.MLFLOW_TRACKING_USERNAME}}}}",
            "tracking_password": f"{{{{{mlflow_secret}.MLFLOW_TRACKING_PASSWORD}}}}",
        },
        # The step containers get the login as MLFLOW_TRACKING_USERNAME / _PASSWORD.
        secrets=[mlflow_secret],
    )
    components = {
        StackComponentType.ARTIFACT_STORE: name,
        StackComponentType.IMAGE_BUILDER: name,
        StackComponentType.ORCHESTRATOR: name,
        StackComponentType.EXPERIMENT_TRACKER: name,
    }
    try:
        client.get_stack(name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack(name=name, components=components)
    else:
        client.update_stack(name, component_updates=components)


@command("zenml-stack", help="Set up the ZenML server and the containerised stack (docs/zenml.md).")
@click.option(
    "--name",
    envvar="ZENML_STACK",
    default=DEFAULT_STACK,
    show_default=True,
    help="stack name (default: $ZENML_STACK or docker)",
)
@click.option(
    "--network",
    envvar="ZENML_STEPS_NETWORK",
    default=DEFAULT_STEPS_NETWORK,
    show_default=True,
    help="the step containers' Docker network, made (internal) if missing",
)
@port_option
def zenml_stack(name: str, network: str, port: int) -> None:
    settings = settings_from_env(name)
    steps = steps_network(network)
    check_reachable_from_steps(settings, steps)
    created = ensure_buckets([settings.bucket], settings.s3_endpoint)
    server = ensure_logged_in(port, steps.gateway)
    register_stack(settings, steps)
    log.info(
        "ZenML server %s; stack %s: local_docker on network %s, s3 %s%s, mlflow %s",
        server.url,
        settings.name,
        steps.name,
        settings.s3_path,
        " (bucket created)" if created else "",
        settings.tracking_uri,
    )
