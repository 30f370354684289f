"""The one command line: every command of the table exists, helps, and loads only itself."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from mlpipeline.cli import COMMANDS, main
from mlpipeline.commands import console
from mlpipeline.tool_env import VENV_BIN

ALL = [(group, name) for group, (_, table) in COMMANDS.items() for name in table]


@pytest.mark.parametrize(("group", "name"), ALL, ids=lambda value: value)
def test_every_command_resolves_and_has_help(group: str, name: str) -> None:
    command = main.commands[group].get_command(click.Context(main), name)  # type: ignore[attr-defined]
    assert isinstance(command, click.Command)
    with pytest.raises(SystemExit) as exited:
        command.main(["--help"], prog_name=f"mlpipeline {group} {name}", standalone_mode=True)
    assert exited.value.code == 0


def test_the_installed_script_lists_the_groups_without_loading_a_command() -> None:
    listing = subprocess.run(
        [VENV_BIN / "mlpipeline", "model", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert all(name in listing for name in COMMANDS["model"][1])
    code = (
        "import sys; from mlpipeline.cli import main\n"
        "try: main(['check', 'params'])\n"
        "except SystemExit as exit: assert exit.code == 0, exit.code\n"
        "heavy = {'mlflow', 'sklearn', 'pandas', 'zenml', 'dvc'} & set(sys.modules)\n"
        "assert not heavy, sorted(heavy)\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)


def test_an_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [VENV_BIN / "mlpipeline", "model", "nosuch"], capture_output=True, text=True
    )
    assert proc.returncode == console.EXIT_USAGE
    assert "No such command 'nosuch'" in proc.stderr


def test_a_command_returns_its_exit_status_and_user_errors_are_one_line() -> None:
    from mlpipeline.domain.errors import PipelineError

    @console.command("probe")
    @click.argument("what")
    def probe(what: str) -> int:
        if what == "fail":
            raise PipelineError("the probe failed: a line the user can act on")
        return console.EXIT_DRIFT

    with pytest.raises(SystemExit) as drifted:
        probe.main(["drift"], standalone_mode=True)
    assert drifted.value.code == console.EXIT_DRIFT
    with pytest.raises(SystemExit) as failed:
        probe.main(["fail"], standalone_mode=True)
    assert failed.value.code == console.EXIT_ERROR
