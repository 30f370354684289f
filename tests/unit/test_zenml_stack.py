"""`make zenml-stack`'s settings and the entry point's line for a failed step container."""

from __future__ import annotations

import pytest

from mlpipeline.commands import zenml_stack
from mlpipeline.domain.errors import PipelineError
from zenml_pipeline.__main__ import container_failure

COMPLETE = {
    "ZENML_S3_PATH": "s3://zenml-artifacts/store",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    "MLFLOW_TRACKING_USERNAME": "pipeline",
    "MLFLOW_TRACKING_PASSWORD": "password",
}


@pytest.fixture
def stack_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in COMPLETE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    return monkeypatch


def test_settings_come_from_the_environment(stack_env: pytest.MonkeyPatch) -> None:
    settings = zenml_stack.settings_from_env("docker")
    assert settings.bucket == "zenml-artifacts"
    assert settings.s3_endpoint == "http://127.0.0.1:9000"
    assert (settings.tracking_username, settings.tracking_password) == ("pipeline", "password")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLFLOW_TRACKING_PASSWORD", "", "zenml stack docker: set MLFLOW_TRACKING_PASSWORD"),
        ("AWS_ACCESS_KEY_ID", "", "zenml stack docker: set AWS_ACCESS_KEY_ID"),
        ("ZENML_S3_PATH", "/data/zenml", "ZENML_S3_PATH: '/data/zenml' is not s3://bucket"),
        ("ZENML_S3_PATH", "s3://", "ZENML_S3_PATH: 's3://' is not s3://bucket"),
        ("MLFLOW_TRACKING_URI", "sqlite:///m.db", "MLFLOW_TRACKING_URI: 'sqlite:///m.db' is not"),
    ],
)
def test_a_bad_setting_is_named(
    stack_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    stack_env.setenv(name, value)
    with pytest.raises(PipelineError) as raised:
        zenml_stack.settings_from_env("docker")
    assert str(raised.value).startswith(message)


def test_a_killed_step_container_is_one_line() -> None:
    from docker.errors import ContainerError

    command = ["--entrypoint_config_source", "x", "--step_name", "train", "--snapshot_id", "1"]
    error = ContainerError(None, 137, command, "dvc-mlops-pipeline:latest", b"")
    assert container_failure(error) == (
        "ZenML step train: its container exited 137 (killed); see its log above"
    )
    assert container_failure(RuntimeError("other")) is None


INTERNAL = zenml_stack.StepsNetwork("steps", "172.30.0.1", internal=True)
OPEN = zenml_stack.StepsNetwork("steps", "172.30.0.1", internal=False)


@pytest.mark.parametrize(
    ("network", "tracking_uri", "s3_endpoint", "refused"),
    [
        (INTERNAL, "http://172.30.0.1:5000", "http://172.30.0.1:9000", None),
        (INTERNAL, "http://127.0.0.1:5000", "http://172.30.0.1:9000", "MLFLOW_TRACKING_URI"),
        (INTERNAL, "http://172.30.0.1:5000", "http://localhost:9000", "MLFLOW_S3_ENDPOINT_URL"),
        (INTERNAL, "https://mlflow.example", "http://172.30.0.1:9000", "MLFLOW_TRACKING_URI"),
        (INTERNAL, "http://172.30.0.1:5000", None, "MLFLOW_S3_ENDPOINT_URL"),  # AWS itself
        (OPEN, "https://mlflow.example", None, None),
        (OPEN, "http://127.0.0.2:5000", "http://172.30.0.1:9000", "MLFLOW_TRACKING_URI"),
    ],
)
def test_the_servers_must_be_where_a_step_container_reaches_them(
    stack_env: pytest.MonkeyPatch,
    network: zenml_stack.StepsNetwork,
    tracking_uri: str,
    s3_endpoint: str | None,
    refused: str | None,
) -> None:
    stack_env.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    if s3_endpoint is None:
        stack_env.delenv("MLFLOW_S3_ENDPOINT_URL")
        stack_env.delenv("AWS_ENDPOINT_URL", raising=False)
    else:
        stack_env.setenv("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
    settings = zenml_stack.settings_from_env("docker")
    if refused is None:
        zenml_stack.check_reachable_from_steps(settings, network)
        return
    with pytest.raises(PipelineError) as raised:
        zenml_stack.check_reachable_from_steps(settings, network)
    assert str(raised.value).startswith(refused)
    assert "serve it on 172.30.0.1, the host's address on that network" in str(raised.value)
