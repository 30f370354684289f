"""`mlpipeline`: the project's one command line, its commands grouped by who uses them.

    mlpipeline model list|promote|rollback|history|card|score|serve|reproduce|sweep|gc
    mlpipeline report plots|report|exps|comment
    mlpipeline team users|buckets|zenml-server|zenml-stack
    mlpipeline check preflight|params

A command's module is imported only when that command runs (`mlpipeline check params` never
imports MLflow), and `--help` lists a group from the table below without importing any.
"""

from __future__ import annotations

import importlib

import click

# group → (what it is for, {command → ("module:attribute", one-line help)})
COMMANDS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "model": (
        "The registered model: its versions, the champion alias, scoring, serving, rebuilding.",
        {
            "list": ("registry:list_versions", "Versions, newest first, a page at a time."),
            "promote": ("registry:promote", "Move the champion alias to a version."),
            "rollback": ("registry:rollback", "Move the champion alias back where it came from."),
            "history": ("registry:history", "Who moved the champion alias, when and why."),
            "card": ("registry:card", "Print a version's model card (Markdown)."),
            "score": ("score:score_file", "Score a CSV or Parquet file; exit 3 on drift."),
            "serve": ("serve:serve", "Serve a registered model over HTTP behind a guarded edge."),
            "reproduce": ("reproduce:reproduce_command", "Rebuild a model; exit 4 if it differs."),
            "sweep": ("sweep:sweep", "Hyperparameter sweep: each trial a DVC experiment (Ray)."),
            "gc": ("gc:gc_command", "Delete what the retention: policy lets go (dry run first)."),
        },
    ),
    "report": (
        "Reports for people and pull requests.",
        {
            "plots": ("plots:plots", "Render the dvc plots charts offline (SVG, PNG, HTML)."),
            "report": ("report:report", "Markdown report: the workspace against a base revision."),
            "exps": ("exps:exps", "Experiments: headline metrics and the params that differ."),
            "comment": ("pr_comment:comment", "Post or update the report on a pull request."),
        },
    ),
    "team": (
        "Operating the team stack: accounts, buckets, the ZenML server.",
        {
            "users": ("team_users:users", "Create or update a team MLflow account and its role."),
            "buckets": ("buckets:buckets", "Create S3 buckets unless they exist."),
            "zenml-server": ("zenml_server:zenml_server", "The ZenML server, with a login."),
            "zenml-stack": ("zenml_stack:zenml_stack", "A ZenML server and containerised stack."),
        },
    ),
    "check": (
        "Checks that run before the pipeline does.",
        {
            "preflight": (
                "preflight:preflight_command",
                "What `make run` checks first.",
            ),
            "params": ("check_params:check_params", "Validate params.yaml and print it resolved."),
        },
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when one of them runs."""

    def __init__(self, *args: object, table: dict[str, tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.table = table

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.table)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.table:
            return None
        module_name, attribute = self.table[cmd_name][0].split(":")
        module = importlib.import_module(f"mlpipeline.commands.{module_name}")
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short_help) for name, (_, short_help) in self.table.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The project's commands besides the pipeline itself (`make run` runs that)."""
    from mlpipeline.runner import collect_less_often

    collect_less_often()


for _group, (_help, _table) in COMMANDS.items():
    main.add_command(LazyGroup(name=_group, help=_help, table=_table))
