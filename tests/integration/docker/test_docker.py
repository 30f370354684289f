"""The compose stack for real: build, `docker-compose up`, and check every service.

Run by `make test-docker`, which first runs .ci/ci-setup.sh (Docker Engine, compose v1,
dockerd and a base image, offline when no registry answers). The stack runs on a git copy
of the repository, on free 127.0.0.1 ports, and is always taken down with its volumes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.compose import APP_UID, IMAGE, UP_TIMEOUT_S, ComposeProject, base_image
from tests.support.http import http
from tests.support.iris import KNOWN_ROWS
from tests.support.repository import REPO, copy_repository
from tests.support.servers import free_port
from tests.support.team import COMPOSE, secret_files, write_secrets
from tests.support.tools import run

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(1800)]

# The checkout's owner: a second user on a shared server, a uid the image does not know.
OWNER = 4321


@dataclass(frozen=True, kw_only=True)
class Stack(ComposeProject):
    mlflow_url: str
    serve_url: str
    jupyter_url: str
    token: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole compose stack on a git copy of the repository, taken down afterwards."""
    if shutil.which(COMPOSE) is None:
        pytest.fail(f"{COMPOSE} is not installed; run .ci/ci-setup.sh (make test-docker does)")
    project = copy_repository(tmp_path_factory.mktemp("compose") / "project")
    # Owned by neither root nor the image's user: the services must write it as its owner
    # and Jupyter must start, with nothing set in the environment.
    # The app's writable mounts must exist, as docs/deploy.md has a fresh clone make them.
    for folder in ("cache", "tmp"):
        (project / ".dvc" / folder).mkdir(exist_ok=True)
    run(["chown", "-R", f"{OWNER}:{OWNER}", project], cwd=project)
    ports = {name: free_port() for name in ("MLFLOW_PORT", "SERVE_PORT", "JUPYTER_PORT")}
    token = "test-token-" + os.urandom(8).hex()
    env = tool_env(
        {
            "COMPOSE_PROJECT_NAME": f"mlopstest{os.getpid()}",
            "IMAGE": IMAGE,
            "BASE_IMAGE": base_image(),
            "JUPYTER_TOKEN": token,
            "MLFLOW_WORKERS": "1",
            **{name: str(port) for name, port in ports.items()},
        }
    )
    stack = Stack(
        project=project,
        env=env,
        mlflow_url=f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
        serve_url=f"http://127.0.0.1:{ports['SERVE_PORT']}",
        jupyter_url=f"http://127.0.0.1:{ports['JUPYTER_PORT']}",
        token=token,
    )
    try:
        # One build: every service runs the one image (x-project-image), and compose v1
        # would build it again, from cache, for each of the four.
        stack.compose("build", "app", timeout=1500)
        stack.compose("up", "-d", timeout=UP_TIMEOUT_S)
        # serve starts only after app (dvc repro) exited 0.
        stack.wait_until_healthy("serve", jobs=("app",), servers=("mlflow", "jupyter", "serve"))
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)


def test_ports_bind_to_loopback_only(stack: Stack) -> None:
    for service, port in (("mlflow", 5000), ("serve", 5001), ("jupyter", 8888)):
        published = stack.compose("port", service, str(port)).stdout.strip()
        assert published.startswith("127.0.0.1:"), (service, published)


def test_mlflow_api_answers(stack: Stack) -> None:
    status, body = http(f"{stack.mlflow_url}/health")
    assert status == 200, body
    status, body = http(
        f"{stack.mlflow_url}/api/2.0/mlflow/experiments/get-by-name"
        "?experiment_name=iris_classification"
    )
    assert status == 200, body
    assert json.loads(body)["experiment"]["name"] == "iris_classification"


def test_app_run_is_in_the_server_with_its_metrics(stack: Stack) -> None:
    from mlflow import MlflowClient

    assert stack.state("app")["ExitCode"] == 0
    run_id = json.loads((stack.project / "models" / "mlflow_run.json").read_text())["run_id"]
    metrics = json.loads((stack.project / "metrics" / "metrics.json").read_text())
    client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
    logged = client.get_run(run_id).data.metrics
    assert logged["accuracy"] == pytest.approx(metrics["accuracy"])
    assert logged["accuracy"] >= 0.9
    champion = client.get_model_version_by_alias("iris_classifier", "champion")
    assert champion.run_id == run_id


def test_serve_predicts_known_iris_rows(stack: Stack) -> None:
    header = (stack.project / "data" / "raw" / "dataset.csv").read_text().splitlines()[0]
    columns = [name for name in header.split(",") if name != "target"]
    payload = {"dataframe_split": {"columns": columns, "data": list(KNOWN_ROWS.values())}}
    status, body = http(f"{stack.serve_url}/invocations", payload)
    assert status == 200, body
    assert json.loads(body)["predictions"] == list(KNOWN_ROWS)


def test_serve_answers_through_the_edge(stack: Stack) -> None:
    """The service runs `mlpipeline model serve` (docs/scoring.md): FastAPI's
    pages are gone, and a bad request gets one JSON line without the request's values."""
    status, body = http(f"{stack.serve_url}/docs")
    assert status == 404 and json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND"
    payload = {"dataframe_split": {"columns": ["sepal_length"], "data": [[123.456]]}}
    status, body = http(f"{stack.serve_url}/invocations", payload)
    assert status == 400, body
    assert set(json.loads(body)) == {"error_code", "message"}
    assert b"123.456" not in body and b"Traceback" not in body
    # It mounts only the library: the image's user, not the (root) owner of the checkout.
    uid = stack.compose("exec", "-T", "serve", "stat", "-c", "%u", "/proc/1").stdout.strip()
    assert uid == str(APP_UID)


def test_jupyter_needs_the_token(stack: Stack) -> None:
    status, _ = http(f"{stack.jupyter_url}/api/status?token={stack.token}")
    assert status == 200
    status, _ = http(f"{stack.jupyter_url}/api/status")
    assert status == 403
    status, _ = http(f"{stack.jupyter_url}/api/status?token=wrong-{stack.token}")
    assert status == 403
    status, body = http(f"{stack.jupyter_url}/api/contents/notebooks?token={stack.token}")
    assert status == 200, body
    assert any(item["name"].endswith(".ipynb") for item in json.loads(body)["content"])


def test_app_wrote_the_checkout_as_its_owner(stack: Stack) -> None:
    for output in ("metrics/metrics.json", "models/pipeline.pkl", "dvc.lock"):
        assert (stack.project / output).stat().st_uid == OWNER, output
    # Jupyter, as the owner of notebooks/, passes its healthcheck.
    deadline = time.monotonic() + 120
    while stack.state("jupyter").get("Health", {}).get("Status") != "healthy":
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(2)


@pytest.mark.parametrize("owner", [OWNER, APP_UID])
def test_the_entrypoint_runs_as_the_owner_of_the_checkout(
    stack: Stack, tmp_path: Path, owner: int
) -> None:
    """A checkout of any uid, also one the image does not know, is written by its owner."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    run(["git", "init", "-q"], cwd=checkout)
    run(["chown", "-R", f"{owner}:{owner}", checkout], cwd=tmp_path)
    script = 'id -u; id -g; touch /workspace/made "$HOME/.probe"; git status --short'
    made = run(
        ["docker", "run", "--rm", "-v", f"{checkout}:/workspace", IMAGE, "sh", "-c", script],
        cwd=tmp_path,
    )
    assert made.stdout.split()[:2] == [str(owner), str(owner)]
    assert (checkout / "made").stat().st_uid == owner


def test_a_checkout_owned_by_root_is_refused_not_run_as_root(stack: Stack, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    run(["chown", "0:0", checkout], cwd=tmp_path)
    refused = run(
        [
            "docker",
            "run",
            "--rm",
            "-v",
            f"{checkout}:/workspace",
            IMAGE,
            "touch",
            "/workspace/made",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert refused.returncode == 78, refused.stderr
    assert "/workspace belongs to root" in refused.stderr
    assert "chown" in refused.stderr
    assert not (checkout / "made").exists()


def test_services_run_with_least_privilege(stack: Stack) -> None:
    read_only = {"mlflow", "serve"}
    for service in ("mlflow", "app", "jupyter", "serve"):
        container = stack.container(service)
        host = json.loads(
            run(
                ["docker", "inspect", "-f", "{{json .HostConfig}}", container], cwd=stack.project
            ).stdout
        )
        assert host["CapDrop"] == ["ALL"], service
        assert set(host["CapAdd"]) == {"CAP_SETUID", "CAP_SETGID"} or set(host["CapAdd"]) == {
            "SETUID",
            "SETGID",
        }, (service, host["CapAdd"])
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["ReadonlyRootfs"] is (service in read_only), service
        assert host["Memory"] > 0 and host["PidsLimit"] > 0, service
        if service == "app":
            continue  # finished; it wrote the checkout as its owner (above)
        status = run(["docker", "exec", container, "cat", "/proc/1/status"], cwd=stack.project)
        uids = next(line for line in status.stdout.splitlines() if line.startswith("Uid:"))
        assert "0" not in uids.split()[1:], (service, uids)


def test_jupyter_sees_notebooks_writable_the_rest_read_only_and_no_git(stack: Stack) -> None:
    container = stack.container("jupyter")
    # As the user Jupyter and its kernels run as.
    probe = (
        "touch /workspace/notebooks/.probe && rm /workspace/notebooks/.probe"
        " && ! touch /workspace/mlpipeline/.probe 2>/dev/null"
        " && ! touch /workspace/params.yaml 2>/dev/null"
        " && test ! -e /workspace/.git && test ! -e /workspace/.env"
        " && test -f /workspace/data/raw/dataset.csv && echo confined"
    )
    confined = run(
        ["docker", "exec", "-u", f"{OWNER}:{OWNER}", container, "sh", "-c", probe],
        cwd=stack.project,
        check=False,
    )
    assert confined.stdout.strip() == "confined", confined.stderr


def test_jupyter_logs_hold_no_token_and_it_refuses_to_start_without_one(stack: Stack) -> None:
    logs = stack.compose("logs", "--no-color", "jupyter").stdout
    assert "jupyter" in logs.lower()
    assert stack.token not in logs
    # Host check on: a foreign Host header is refused.
    status, _ = http_with_host(f"{stack.jupyter_url}/api/status?token={stack.token}", "evil.test")
    assert status == 403
    refused = run(
        [COMPOSE, "run", "--rm", "--no-deps", "-e", "JUPYTER_TOKEN=", "jupyter"],
        cwd=stack.project,
        env=stack.env,
        check=False,
        timeout=300,
    )
    assert refused.returncode == 78, refused.stdout + refused.stderr
    assert "JUPYTER_TOKEN is not set" in refused.stderr + refused.stdout


def http_with_host(url: str, host: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_team_override_resolves_and_keeps_secrets_out_of_the_configuration(
    tmp_path: Path,
) -> None:
    import yaml

    files = ["-f", "docker-compose.yml", "-f", "docker/docker-compose.team.yml"]
    no_env_file = tmp_path / "empty.env"
    no_env_file.write_text("")
    base = [COMPOSE, "--env-file", no_env_file, *files, "config"]
    secrets_dir = write_secrets(tmp_path / "secrets")
    settings = {
        "MINIO_ROOT_USER": "minio-user",
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
        "MLFLOW_TRACKING_USERNAME": "pipeline",
        "SECRETS_DIR": str(secrets_dir),
        # A secret left in the environment by habit must not reach any service.
        "POSTGRES_PASSWORD": "pg-secret",
        "MLFLOW_TRACKING_PASSWORD": "pipeline-secret",
    }
    resolved = run(base, cwd=REPO, env=tool_env(settings)).stdout
    for secret in [*secret_files().values(), "pg-secret", "pipeline-secret"]:
        assert secret not in resolved
    config = yaml.safe_load(resolved)
    # Compose v1's `config` lists a profile's services too (the spark profile): not started.
    services = {name: spec for name, spec in config["services"].items() if not spec.get("profiles")}
    assert {"mlflow", "app", "jupyter", "serve", "postgres", "minio", "buckets", "users"} <= set(
        services
    )
    assert {name: Path(spec["file"]).parent for name, spec in config["secrets"].items()} == {
        name: secrets_dir for name in [*secret_files(), "tls_certificate", "tls_private_key"]
    }
    mlflow = services["mlflow"]
    assert mlflow["command"][0] == "mlflow-team-server"
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"] == ""
    assert mlflow["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/mlflow_db_password"
    assert {item["source"] for item in services["postgres"]["secrets"]} == {
        "postgres_password",
        "mlflow_db_password",
    }
    assert mlflow["environment"]["MLFLOW_ARTIFACTS_DESTINATION"] == (
        "s3://mlflow-artifacts/artifacts"
    )
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["environment"]["MLFLOW_AUTH_DEFAULT_PERMISSION"] == "NO_PERMISSIONS"
    for client, account in [("app", "pipeline"), ("jupyter", "reader"), ("serve", "reader")]:
        environment = services[client]["environment"]
        assert environment["MLFLOW_TRACKING_USERNAME"] == account
        assert (
            environment["MLFLOW_TRACKING_PASSWORD_FILE"]
            == f"/run/secrets/mlflow_{account}_password"
        )
        assert [item["source"] for item in services[client]["secrets"]] == [
            f"mlflow_{account}_password"
        ]
    assert services["app"]["depends_on"]["users"]["condition"] == "service_completed_successfully"
    # MLflow's own port is off the network of the containers a user works in: they reach it
    # through the proxy's inner door (test_team_security.py probes it from jupyter).
    networks = {
        name: tuple(sorted(spec.get("networks") or ["default"])) for name, spec in services.items()
    }
    assert networks == {
        **dict.fromkeys(("mlflow", "postgres", "buckets", "users"), ("backend",)),
        # the DVC remote of the app's `dvc push`, every request signed with the S3 key
        **dict.fromkeys(("proxy", "minio"), ("backend", "default")),
        **dict.fromkeys(("app", "jupyter", "serve"), ("default",)),
    }
    for client in ("app", "jupyter", "serve"):
        assert services[client]["environment"]["MLFLOW_TRACKING_URI"] == "http://proxy:8000"
    # Every image pinned to a release: no `latest`, no bare major version.
    for name in ("postgres", "minio"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith((":latest", ":16")), (name, image)
    # Buckets through the S3 API from the project's image, not with MinIO's client.
    assert services["buckets"]["image"] == services["app"]["image"]
    assert services["buckets"]["command"][:5] == ["python", "-m", "mlpipeline", "team", "buckets"]
    assert services["mlflow"]["environment"]["TMPDIR"] == "/dev/shm"
    # The proxy is the one service published beyond loopback; BIND_ADDRESS widens the plain
    # port of MLflow's address (MLFLOW_PORT) only, never serve (no login), Jupyter or the
    # object store. MLflow's own port is not published: MLFLOW_PORT is the proxy's inner door
    # (its ban and limits; docker-compose.override.yml, which publishes mlflow:5000 in the
    # single-machine stack, is not read with -f).
    exposed = yaml.safe_load(
        run(base, cwd=REPO, env=tool_env({**settings, "BIND_ADDRESS": "0.0.0.0"})).stdout
    )
    published = {
        name: {port["host_ip"] for port in _ports(service)}
        for name, service in exposed["services"].items()
        if service.get("ports") and not service.get("profiles")
    }
    assert published == {
        "serve": {"127.0.0.1"},
        "jupyter": {"127.0.0.1"},
        "minio": {"127.0.0.1"},
        "proxy": {"0.0.0.0"},
    }
    default = yaml.safe_load(resolved)["services"]
    assert not default["mlflow"].get("ports")
    inner_door = [port for port in _ports(default["proxy"]) if port["target"] == 8000]
    assert inner_door == [{"host_ip": "127.0.0.1", "target": 8000, "published": 5000}]
    assert default["proxy"]["environment"]["PROXY_LOOPBACK_PORT"] == "5000"
    # The single-machine stack (no -f: docker-compose.yml and docker-compose.override.yml)
    # publishes MLflow's own port on loopback.
    single = yaml.safe_load(
        run([COMPOSE, "--env-file", no_env_file, "config"], cwd=REPO, env=tool_env()).stdout
    )
    assert _ports(single["services"]["mlflow"]) == [
        {"host_ip": "127.0.0.1", "target": 5000, "published": 5000}
    ]
    for service in exposed["services"].values():
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["mem_limit"] and service["pids_limit"]

    for missing in ("SECRETS_DIR", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_TRACKING_USERNAME"):
        without = {key: value for key, value in settings.items() if key != missing}
        refused = run(base, cwd=REPO, env=tool_env(without), check=False)
        assert refused.returncode != 0
        assert f"set {missing} in .env" in refused.stderr


def _ports(service: dict) -> list[dict]:
    """Published ports as mappings (address, host port, container port), from either the
    short syntax (compose v1's `config`) or the long one (v2's)."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            host_ip, published, target = (
                port.get("host_ip", ""),
                port.get("published"),
                port["target"],
            )
        else:
            host_ip, published, target = port.split("/")[0].split(":")
        ports.append({"host_ip": host_ip, "target": int(target), "published": int(published)})
    return ports


def test_the_spark_profile_adds_a_hardened_cluster_on_loopback(tmp_path: Path) -> None:
    """`docker compose --profile spark`: a master and a worker on the project's image, with
    the stack's hardening and ports, and nothing of it without the profile."""
    import yaml

    no_env_file = tmp_path / "empty.env"
    no_env_file.write_text("")
    base = [COMPOSE, "--env-file", no_env_file, "-f", "docker-compose.yml"]
    plain = yaml.safe_load(run([*base, "config"], cwd=REPO).stdout)["services"]
    # Compose v2 leaves a profile's services out of `config`; v1 lists them with their profile.
    for name in ("spark-master", "spark-worker"):
        assert name not in plain or plain[name]["profiles"] == ["spark"], plain.get(name)
    assert all("profiles" not in plain[name] for name in ("mlflow", "app", "jupyter", "serve"))
    services = yaml.safe_load(run([*base, "--profile", "spark", "config"], cwd=REPO).stdout)[
        "services"
    ]
    master, worker = services["spark-master"], services["spark-worker"]
    for service in (master, worker):
        assert service["image"] == services["app"]["image"]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["read_only"] is True
        assert service["mem_limit"] and service["pids_limit"]
        shell, flag, script = service["command"]
        assert (shell, flag) == ("sh", "-c") and "\nexec spark-class org.apache" in script
        # Spark's argument parser takes `--host spark-master`; `--host=spark-master` is a usage
        # error and the daemon exits.
        assert not [arg for arg in script.split() if arg.startswith("--") and "=" in arg]
        # spark.authenticate, its secret from .env (never on a command line), no start without.
        assert 'export _SPARK_AUTH_SECRET="$$SPARK_AUTH_SECRET"' in script
        assert '[ -z "$${SPARK_AUTH_SECRET:-}" ]' in script and "exit 78" in script
        assert service["environment"]["SPARK_AUTH_SECRET"] == ""
    assert master["environment"]["SPARK_MASTER_OPTS"].split() == [
        "-Dspark.authenticate=true",
        "-Dspark.master.rest.enabled=false",
    ]
    assert worker["environment"]["SPARK_WORKER_OPTS"] == "-Dspark.authenticate=true"
    # The driver holds the secret; a notebook does not.
    assert "SPARK_AUTH_SECRET" in services["app"]["environment"]
    assert "SPARK_AUTH_SECRET" not in services["jupyter"]["environment"]
    # As the app's mounts: the checkout read-only, data/ writable, .dvc/ a tmpfs.
    checkout, data = worker["volumes"]
    assert checkout.endswith(":/workspace:ro"), checkout
    assert data["target"] == "/workspace/data" and not data.get("read_only"), data
    assert "/workspace/.dvc" in worker["tmpfs"]
    # Executors map the native libraries they unpack into /tmp: not a noexec tmpfs.
    assert "/tmp:exec,mode=1777" in worker["tmpfs"]
    assert {port["host_ip"] for port in _ports(master)} == {"127.0.0.1"}
    assert not worker.get("ports")
    assert " spark://spark-master:7077 " in worker["command"][2]
    assert worker["environment"]["PYTHONPATH"] == "/workspace"
    assert worker["depends_on"]["spark-master"]["condition"] == "service_healthy"
