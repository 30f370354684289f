"""Retention (`mlpipeline model gc`): which registry versions, runs, logged models and DVC
experiment refs a policy lets go, each with the reason, and what must stay.

Pure: facts read from the store in, a plan out. What stays wins over what goes: a version is
kept when it holds an alias, ever held one (the champion's history), is one of the newest
`keep_versions` of its model or younger than `keep_days`; a run is kept when a kept version
names it, when it is not finished (RUNNING), younger than `keep_days`, named by a checkout's
`models/mlflow_run.json`, or the parent of a kept run (a sweep); a logged model goes only
with its run, and never while a kept version names it; an experiment ref goes only with the
last run that names it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mlpipeline.domain.params import RetentionParams

DAY_MS = 24 * 3600 * 1000
# MLflow's run statuses that may still write (RunStatus); such a run is never deleted.
UNFINISHED = frozenset({"RUNNING", "SCHEDULED"})


@dataclass(frozen=True)
class VersionFact:
    model: str
    version: str
    created_ms: int
    run_id: str | None
    model_id: str | None = None  # the logged model it was registered from (MLflow 3)


@dataclass(frozen=True)
class RunFact:
    run_id: str
    status: str
    start_ms: int
    deleted: bool = False  # already in MLflow's `deleted` lifecycle stage
    experiment_ref: str | None = None  # tag dvc_experiment_ref
    parent_id: str | None = None  # tag mlflow.parentRunId (a sweep's trial)
    commit: str | None = None  # tag git_commit


@dataclass(frozen=True)
class LoggedModelFact:
    model_id: str
    run_id: str | None


@dataclass(frozen=True)
class Item:
    """One thing the plan deletes: kind (version, run, logged model, experiment ref), name, why."""

    kind: str
    name: str
    why: str

    def line(self) -> str:
        return f"{self.kind:<15} {self.name}  ({self.why})"


@dataclass(frozen=True)
class Plan:
    versions: list[VersionFact] = field(default_factory=list)
    runs: list[RunFact] = field(default_factory=list)
    logged_models: list[LoggedModelFact] = field(default_factory=list)
    experiment_refs: list[str] = field(default_factory=list)
    kept_versions: list[VersionFact] = field(default_factory=list)
    kept_runs: frozenset[str] = frozenset()
    items: list[Item] = field(default_factory=list)


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


def version_keep_reason(
    version: VersionFact,
    rank: int,
    aliases: Mapping[str, str],
    held: Iterable[str],
    policy: RetentionParams,
    now_ms: int,
) -> str | None:
    """Why the version stays, or None. rank: 0 for its model's newest version."""
    holding = sorted(alias for alias, number in aliases.items() if number == version.version)
    if holding:
        return f"holds @{', @'.join(holding)}"
    if version.version in set(held):
        return "held an alias (the champion's history)"
    if rank < policy.keep_versions:
        return f"one of the newest {policy.keep_versions}"
    if now_ms - version.created_ms < policy.keep_days * DAY_MS:
        return f"younger than {policy.keep_days} days"
    return None


def plan(
    policy: RetentionParams,
    versions: Iterable[VersionFact],
    aliases: Mapping[str, Mapping[str, str]],
    held: Mapping[str, Iterable[str]],
    runs: Iterable[RunFact],
    logged_models: Iterable[LoggedModelFact],
    protected_runs: Iterable[str],
    now_ms: int,
) -> Plan:
    """What the policy deletes and what it keeps.

    aliases: model → {alias: version} now; held: model → versions that ever held an alias;
    protected_runs: run ids a checkout's outputs name (never deleted).
    """
    by_model: dict[str, list[VersionFact]] = {}
    for version in versions:
        by_model.setdefault(version.model, []).append(version)
    kept_versions: list[VersionFact] = []
    gone_versions: list[VersionFact] = []
    items: list[Item] = []
    for model, listed in sorted(by_model.items()):
        newest_first = sorted(listed, key=lambda v: int(v.version), reverse=True)
        for rank, version in enumerate(newest_first):
            reason = version_keep_reason(
                version, rank, aliases.get(model, {}), held.get(model, ()), policy, now_ms
            )
            if reason:
                kept_versions.append(version)
                continue
            gone_versions.append(version)
            items.append(
                Item(
                    "version",
                    f"{model}/{version.version}",
                    f"registered {_day(version.created_ms)}, older than {policy.keep_days} "
                    f"days, not among the newest {policy.keep_versions}, never held an alias",
                )
            )

    runs = list(runs)
    named_by_kept = {v.run_id for v in kept_versions if v.run_id}
    gone_version_of = {v.run_id: v for v in gone_versions if v.run_id}
    kept = set(named_by_kept) | set(protected_runs)
    for run in runs:
        if run.status in UNFINISHED or now_ms - run.start_ms < policy.keep_days * DAY_MS:
            kept.add(run.run_id)
    parent_of = {run.run_id: run.parent_id for run in runs if run.parent_id}
    for run_id in list(kept):  # a kept trial keeps its sweep's parent run
        while (parent := parent_of.get(run_id)) and parent not in kept:
            kept.add(parent)
            run_id = parent

    gone_runs: list[RunFact] = []
    for run in sorted(runs, key=lambda r: (r.start_ms, r.run_id)):
        if run.run_id in kept:
            continue
        gone_runs.append(run)
        gone_version = gone_version_of.get(run.run_id)
        why = (
            f"the run of version {gone_version.model}/{gone_version.version}"
            if gone_version
            else f"started {_day(run.start_ms)}, registered no kept version"
        )
        if run.deleted:
            why += "; already deleted, purged"
        items.append(Item("run", run.run_id, why))

    gone_run_ids = {run.run_id for run in gone_runs}
    named_models = {v.model_id for v in kept_versions if v.model_id}
    gone_models = [
        model
        for model in sorted(logged_models, key=lambda m: m.model_id)
        if model.run_id in gone_run_ids and model.model_id not in named_models
    ]
    items += [Item("logged model", m.model_id, f"logged by run {m.run_id}") for m in gone_models]

    kept_refs = {run.experiment_ref for run in runs if run.run_id in kept and run.experiment_ref}
    gone_refs = sorted({run.experiment_ref for run in gone_runs if run.experiment_ref} - kept_refs)
    items += [Item("experiment ref", ref, "its runs are deleted") for ref in gone_refs]
    return Plan(
        versions=gone_versions,
        runs=gone_runs,
        logged_models=gone_models,
        experiment_refs=gone_refs,
        kept_versions=kept_versions,
        kept_runs=frozenset(kept),
        items=items,
    )
