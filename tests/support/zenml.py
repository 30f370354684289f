"""ZenML as the tests drive it: the steps, the run a `python -m zenml_pipeline` reported, a
client in the test process, each step's status."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from zenml.client import Client
    from zenml.models import PipelineRunResponse

STEPS = ["load", "preprocess", "train", "evaluate", "save"]
RUN_LINE = re.compile(r"ZenML run (\S+) \(([0-9a-f-]{36})\): (\w+)")


def run_id(proc: subprocess.CompletedProcess[str]) -> str:
    """The ZenML run id from the entry point's summary line."""
    match = RUN_LINE.search(proc.stderr + proc.stdout)
    assert match, f"no run summary in the output:\n{proc.stderr[-4000:]}"
    assert match.group(3) == "completed", match.group(0)
    return match.group(2)


@contextmanager
def zenml_client_for(env: Mapping[str, str], source_root: Path) -> Iterator[Client]:
    """A ZenML Client in this process, on the ZenML config `env` names."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("ZENML_CONFIG_PATH", "ZENML_ANALYTICS_OPT_IN"):
            patch.setenv(name, env[name])
        from zenml.client import Client
        from zenml.config.global_config import GlobalConfiguration
        from zenml.utils import source_utils

        GlobalConfiguration._reset_instance()
        Client._reset_instance()
        # Loading an artifact resolves sources against the main module's folder, which a
        # pytest-xdist worker does not have: the project is the source root.
        source_utils.set_custom_source_root(str(source_root))
        yield Client()
        source_utils.set_custom_source_root(None)
        GlobalConfiguration._reset_instance()
        Client._reset_instance()


def statuses(run: PipelineRunResponse) -> dict[str, str]:
    return {name: step.status.value for name, step in run.steps.items()}
