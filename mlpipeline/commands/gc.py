"""Retention: delete what params.yaml's `retention:` policy lets go, listing it first.

    mlpipeline model gc            # dry run: one line per item it would delete, and why
    mlpipeline model gc --yes      # delete them (make gc GC_ARGS=--yes)

Registry versions, their runs and logged models (rows and artifacts), the DVC experiment
refs of those runs, and DVC cache objects that no branch, tag, commit, experiment or the
workspace names (DVC's own `dvc gc`). docs/retention.md has the policy and recovery.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlpipeline.commands.console import command, params_option
from mlpipeline.domain import retention_plan as retention
from mlpipeline.domain.errors import PipelineError
from mlpipeline.files.params_yaml import load_params
from mlpipeline.files.paths import ROOT
from mlpipeline.tracking import dvc_retention, server, store
from mlpipeline.tracking import mlflow_retention as edges
from mlpipeline.tracking import runs as tracking

if TYPE_CHECKING:
    from mlflow import MlflowClient

BACKEND_STORE_ENV = "MLFLOW_BACKEND_STORE_URI"
DVC_WHY = "named by no branch, tag, commit, experiment or the workspace"


def make_plan(
    client: MlflowClient, params_path: Path, root: Path
) -> tuple[retention.Plan, list[str]]:
    """The plan, with what an interrupted gc left; and the kept commits `dvc gc` would miss."""
    params = load_params(params_path)
    facts = edges.read_facts(client, params.mlflow.experiment_name)
    plan = retention.plan(
        params.retention,
        facts.versions,
        facts.aliases,
        facts.held,
        facts.runs,
        facts.logged_models,
        dvc_retention.protected_runs(root),
        int(time.time() * 1000),
    )
    journal = edges.read_journal(root)
    planned_models = {model.model_id for model in plan.logged_models}
    left_models = [
        retention.LoggedModelFact(model_id, None)
        for model_id in edges.pending_logged_models(journal)
        if model_id not in planned_models
    ]
    kept_refs = {r.experiment_ref for r in facts.runs if r.run_id in plan.kept_runs}
    refs = sorted(set(plan.experiment_refs) | set(journal.get("experiment_refs", [])) - kept_refs)
    refs = dvc_retention.existing_refs(refs, root)
    left = "left by an interrupted gc"
    items = [i for i in plan.items if i.kind != "experiment ref"]
    items += [retention.Item("logged model", m.model_id, left) for m in left_models]
    items += [
        retention.Item(
            "experiment ref", ref, "its runs are deleted" if ref in plan.experiment_refs else left
        )
        for ref in refs
    ]
    plan = dataclasses.replace(
        plan,
        logged_models=plan.logged_models + left_models,
        experiment_refs=refs,
        items=items,
    )
    return plan, dvc_retention.unreachable_commits(plan.kept_versions, facts.runs, root)


def backend_store(uri: str, given: str | None) -> str:
    """Where `mlflow gc` purges: the SQLite store itself, else the server's database."""
    if store.sqlite_path(uri) is not None:
        return uri
    if given:
        return given
    raise PipelineError(
        f"the runs of {uri} can be purged only through its server's database: pass "
        f"--backend-store-uri (or set {BACKEND_STORE_ENV}) to it, e.g. "
        "postgresql://user:password@host/mlflow, with the artifact store's credentials"
    )


def gc(yes: bool, backend_store_uri: str | None, params: Path, root: Path = ROOT) -> int:
    uri = tracking.tracking_uri()
    tracking.use_client_defaults()
    server.check_reachable(uri)
    store.require_existing(uri)
    purge_store = backend_store(uri, backend_store_uri) if yes else None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    plan, unreachable = make_plan(client, params, root)
    dvc_objects = [] if unreachable else dvc_retention.dvc_gc(root, dry=True)
    verb = "deleting" if yes else "would delete"
    for item in plan.items:
        print(f"{verb}  {item.line()}")
    for path in dvc_objects:
        print(f"{verb}  {'dvc cache':<15} {path}  ({DVC_WHY})")
    if unreachable:
        print(
            f"keeping the DVC cache: kept versions name {', '.join(unreachable)}, on no "
            "branch, tag or experiment ref here (fetch or tag them, then run gc again)"
        )
    total = len(plan.items) + len(dvc_objects)
    if not yes:
        print(f"dry run: {total} to delete, nothing deleted (`make gc GC_ARGS=--yes` deletes them)")
        return 0
    edges.delete_mlflow(client, plan, uri, str(purge_store), root)
    if not unreachable:
        # Before the refs go: `dvc gc` collects exactly the objects listed above; those of
        # the refs removed now are collected by the next gc.
        dvc_retention.dvc_gc(root, dry=False)
    dvc_retention.remove_experiment_refs(plan.experiment_refs, root)
    edges.finish(root)
    print(f"deleted {total}")
    return 0


@command(
    "gc",
    help="Delete old versions, runs, logged models, experiment refs and DVC cache "
    "by params.yaml's retention: policy; without --yes only list them.",
)
@click.option("--yes", is_flag=True, help="delete; without it a dry run that deletes nothing")
@click.option(
    "--backend-store-uri",
    default=lambda: os.environ.get(BACKEND_STORE_ENV),
    help=f"a tracking server's database, for `mlflow gc` (env {BACKEND_STORE_ENV})",
)
@params_option
def gc_command(yes: bool, backend_store_uri: str | None, params: Path) -> int:
    return gc(yes, backend_store_uri, params)
