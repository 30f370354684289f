"""`mlpipeline check params`: the params check that runs before DVC does."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from mlpipeline.commands.check_params import check_params
from mlpipeline.files.params_yaml import load_params
from mlpipeline.tool_env import VENV_BIN, tool_env
from tests.support.repository import REPO
from tests.support.tools import run

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def main(argv: list[str]) -> int:
    """`mlpipeline check params ARGV` in this process: its exit status."""
    with pytest.raises(SystemExit) as exited:
        check_params.main(argv, prog_name="mlpipeline check params")
    return exited.value.code or 0


def write_params(path: Path, **changes: object) -> Path:
    """params.yaml with `section__key=value` changes."""
    params = {section: dict(keys) for section, keys in PARAMS.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_prints_the_resolved_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_params().model_dump(mode="json")
    assert printed["train"]["bootstrap"] is True


def test_fills_in_the_synthetic_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_params(tmp_path / "params.yaml", load__source="synthetic")
    assert main(["--params", str(path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["load"]["synthetic"] == {
        "rows": 10_000,
        "features": 10,
        "classes": 3,
        "random_state": 42,
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # What `dvc exp run -S train.bootstrap=1` leaves in params.yaml.
        ({"train__bootstrap": 1}, "train.bootstrap: Input should be a valid boolean (got 1)"),
        ({"train__n_estimators": True}, "train.n_estimators: Input should be a valid integer"),
        ({"train__n_estimator": 10}, "train.n_estimator: unknown key"),
        ({"preprocess__test_size": 1.5}, "preprocess.test_size: Input should be less than 1"),
    ],
)
def test_invalid_params_exit_1_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict, message: str
) -> None:
    path = write_params(tmp_path / "params.yaml", **changes)
    assert main(["--params", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("params.yaml is invalid:\n")
    assert message in captured.err


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "file not found"), ("train: [", "not valid YAML"), ("- a list", "expected a mapping")],
)
def test_unreadable_params_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "params.yaml"
    if content is not None:
        path.write_text(content)
    assert main(["--params", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_runs_as_a_command(tmp_path: Path) -> None:
    good = run(["python", "-m", "mlpipeline", "check", "params"], cwd=REPO)
    assert yaml.safe_load(good.stdout) == load_params().model_dump(mode="json")
    bad = write_params(tmp_path / "params.yaml", train__bootstrap=1)
    proc = run(
        ["python", "-m", "mlpipeline", "check", "params", "--params", bad], cwd=REPO, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "params.yaml is invalid:",
        "  - train.bootstrap: Input should be a valid boolean (got 1)",
    ]


@pytest.fixture
def project_with_venv(project: Path) -> Path:
    """A copy of the repository that uses this checkout's virtualenv."""
    (project / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)
    return project


def test_the_pre_commit_hook_checks_params_yaml(project_with_venv: Path) -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    hook = hooks["params"]
    assert re.search(hook["files"], "params.yaml")
    assert hook["pass_filenames"] is False
    entry = shlex.split(hook["entry"])  # pre-commit runs it from the repository's root
    run(entry, cwd=project_with_venv)
    write_params(project_with_venv / "params.yaml", train__bootstrap=1)
    proc = run(entry, cwd=project_with_venv, check=False)
    assert proc.returncode == 1
    assert "train.bootstrap" in proc.stderr


@pytest.mark.integration
def test_make_lint_validates_params_yaml(project_with_venv: Path) -> None:
    """`make lint` checks params.yaml first: a bad one fails it before ruff or mypy start,
    and a good one passes that step (the whole `make lint` on the project is CI's first
    step, and runs in the slow suite's test_setup_paths)."""
    uv = shutil.which("uv") or REPO / ".tools" / "bin" / "uv"
    env = tool_env()
    if Path(uv).is_file():  # else the Makefile bootstraps its own, which only takes longer
        env["PATH"] = f"{Path(uv).parent}:{env['PATH']}"
    params_file = project_with_venv / "params.yaml"
    good = params_file.read_text()
    write_params(params_file, train__bootstrap=1)
    proc = run(["make", "lint"], cwd=project_with_venv, env=env, check=False)
    assert proc.returncode != 0
    assert "train.bootstrap: Input should be a valid boolean (got 1)" in proc.stderr
    assert "ruff" not in proc.stdout and "mypy" not in proc.stdout  # it stopped there

    planned = run(["make", "-n", "lint"], cwd=project_with_venv, env=env).stdout.splitlines()
    params_step = next(line for line in planned if "check params" in line)
    later_steps = planned[planned.index(params_step) + 1 :]
    assert any("ruff check" in line for line in later_steps)
    assert any(line.split()[-1:] == ["mypy"] for line in later_steps)
    params_file.write_text(good)
    run(["bash", "-c", params_step], cwd=project_with_venv, env=env)
