"""The stages' edge turns a server's refusal into one line naming the account."""

from __future__ import annotations

import logging

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

from mlpipeline.runner import exit_on_user_error, permission_refused

STORE = "MLflow store http://mlflow:5000"
# What MLflow's REST client raises for a 403 whose body is not JSON (basic-auth's).
RAW_403 = (
    "API request to endpoint /api/2.0/mlflow/runs/create failed with error code 403 != 200. "
    "Response body: 'Permission denied'"
)


@pytest.mark.parametrize(
    ("username", "account"), [("alice", "user 'alice'"), (None, "an anonymous client")]
)
def test_a_403_names_the_account_and_the_call(
    username: str | None, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if username:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    exc = MlflowException(RAW_403, error_code=PERMISSION_DENIED)
    message = permission_refused(exc, STORE)
    assert message is not None and "\n" not in message
    assert message.startswith(f"{STORE} refused {account} /api/2.0/mlflow/runs/create (HTTP 403")
    assert "Response body" not in message


def test_other_errors_are_not_refusals() -> None:
    assert (
        permission_refused(MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST), STORE)
        is None
    )
    assert permission_refused(ValueError("x"), STORE) is None


def test_the_edge_exits_1_with_the_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    logger = logging.getLogger("test_runner")
    with (
        pytest.raises(SystemExit) as exited,
        caplog.at_level(logging.ERROR),
        exit_on_user_error(logger),
    ):
        raise MlflowException(RAW_403, error_code=PERMISSION_DENIED)
    assert exited.value.code == 1
    (record,) = caplog.records
    assert "refused user 'alice' /api/2.0/mlflow/runs/create (HTTP 403" in record.getMessage()
