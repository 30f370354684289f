"""A user makes the project theirs, as README says, and the suite and benchmarks still pass.

The README's own "Change the data" commands run in a copy (a local folder stands in for the
S3 remote), a train param of the user's is committed too, then `make test` and `make bench`
run inside that copy. (That param is not trained, README's "Update the model": the copies
that `make test` and `make bench` make run on Iris params whatever the user's say, and a
rerun on a changed param is tests/integration/pipeline/test_dvc_pipeline.py's.) The full
suite there would take most of an hour on two cores, so `make test` runs a representative
part: every test not marked `integration` (the params of the user validate, README's DAG,
the unit tests on Iris defaults) and the integration tests that build a copy of the user's
repository (its Iris copy needs the user's DVC-tracked table from their cache) and check it
through MLflow. `make bench --quick` measures only the figure the report must show.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.repository import REPO, copy_repository, set_params, use_session_venv
from tests.support.tools import make, run

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(3600)]

README = (REPO / "README.md").read_text()


def readme_commands(section: str) -> str:
    """The first bash block under a README heading."""
    match = re.search(rf"### {re.escape(section)}\n.*?```bash\n(.*?)```", README, re.S)
    assert match, f"README has no bash block under '### {section}'"
    return match.group(1)


def user_table(path: Path) -> Path:
    """Iris under other names: a label column `species`, as the README example has it."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    names = dict(enumerate(["setosa", "versicolor", "virginica"]))
    frame["species"] = frame.pop("target").map(names)
    frame.to_csv(path, index=False)
    return path


def test_change_the_data_then_make_test_and_bench_pass(tmp_path: Path) -> None:
    root = copy_repository(tmp_path / "project")
    table = user_table(tmp_path / "my_table.csv")
    remote = tmp_path / "remote"
    env = tool_env()
    uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    env["PATH"] = f"{VENV_BIN}:{Path(uv).parent}:{env['PATH']}"
    use_session_venv(root)

    commands = readme_commands("Change the data")
    commands = commands.replace("~/my_table.csv", str(table))
    commands = re.sub(r"s3://\S+", str(remote), commands)
    run(["bash", "-euo", "pipefail", "-c", commands], cwd=root, env=env, timeout=1800)
    assert yaml.safe_load((root / "params.yaml").read_text())["load"]["source"] == "csv"
    assert run(["git", "status", "--porcelain"], cwd=root, env=env).stdout == ""
    assert any(path.is_file() for path in remote.rglob("*"))  # dvc push reached the remote

    # A train param of the user's as well.
    set_params(root, train__max_depth=3)
    run(["git", "commit", "-q", "-m", "Shallower trees", "params.yaml"], cwd=root, env=env)

    pytest_env = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    basetemp = f"--basetemp={tmp_path / 'pytest'}"
    for selection in (
        '-m "not integration"',
        "tests/integration/pipeline/test_dvc_pipeline.py "
        "-k 'full_repro_tracks_everything or second_repro'",
    ):
        pytest_env["PYTEST_ADDOPTS"] = f"-x -p no:cacheprovider {basetemp} {selection}"
        # One process (TEST_JOBS=0): on CI's busy cores two workers only add their start-up.
        out = make(root, "test", "TEST_JOBS=0", env=pytest_env, timeout=2400).stdout
        # The summary line (the duration report above it may name a test "..._failed_...").
        assert re.search(r"\d+ passed", out) and not re.search(r"\d+ failed", out), out[-2000:]

    bench_env = {**env, "BENCH_ARGS": f"--quick --only repro --out {tmp_path / 'bench'}"}
    make(root, "bench", env=bench_env, timeout=1800)
    report = (tmp_path / "bench" / "results-quick.md").read_text()
    assert "full dvc repro on Iris" in report
