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
