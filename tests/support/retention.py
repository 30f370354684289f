"""The gc tests' project: a policy that keeps one version, and the versions it judges.

tests/integration/registry/test_gc.py and test_gc_team.py start alike: the retention policy
(the newest version only, no age grace) committed, version 1 from a committed `dvc repro`,
then one `dvc exp run -S train.n_estimators=N` a version.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.repository import set_params
from tests.support.tools import run

MODEL = "iris_classifier"


def train_versions(
    root: Path, trees: Sequence[int], env: Mapping[str, str] | None = None
) -> list[str]:
    """Commit the keep-1-version policy, `dvc repro` and commit, then an experiment for each
    entry of `trees`: the version numbers the save stage registered, in order."""
    set_params(root, retention__keep_versions=1, retention__keep_days=0)
    run(["git", "commit", "-qam", "retention: keep 1 version"], cwd=root, env=env)
    versions = [registered(run(["dvc", "repro"], cwd=root, env=env))]
    run(["git", "add", "-A"], cwd=root, env=env)
    run(["git", "commit", "-qm", "version 1"], cwd=root, env=env)
    for n_estimators in trees:
        experiment = ["dvc", "exp", "run", "-S", f"train.n_estimators={n_estimators}"]
        versions.append(registered(run(experiment, cwd=root, env=env)))
    return versions


def registered(proc: subprocess.CompletedProcess[str]) -> str:
    """The version the save stage's log line says it registered."""
    match = re.search(rf"registered {MODEL} version (\d+)", proc.stderr + proc.stdout)
    assert match, proc.stderr[-3000:]
    return match[1]
