"""The environment the real tools (dvc, mlflow, zenml) run in as subprocesses.

`reproduce`, the tests and the benchmarks run them with the project's venv first on PATH and
none of the caller's store settings (MLFLOW_*, DVC_*, ZENML_*), so that a run never lands in
the user's own store by accident.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
_STRIPPED = ("MLFLOW_", "DVC_", "ZENML_", "PYTEST_", "VIRTUAL_ENV")


def tool_env(
    extra: Mapping[str, str] | None = None, git_identity: str | None = "tests"
) -> dict[str, str]:
    """The environment the real tools run in: the project's venv first, no inherited stores.

    Args:
        git_identity: author and committer name for commits the tools make; None keeps the
            caller's git identity.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(_STRIPPED)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "ZENML_ANALYTICS_OPT_IN": "false",
            "DVC_NO_ANALYTICS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONHASHSEED": "0",
        }
    )
    if git_identity is not None:
        email = f"{git_identity}@example.invalid"
        env.update(
            {
                "GIT_AUTHOR_NAME": git_identity,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": git_identity,
                "GIT_COMMITTER_EMAIL": email,
            }
        )
    env.update(extra or {})
    return env
