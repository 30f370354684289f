"""Retention's plan: what the policy deletes, what always stays, and why."""

from __future__ import annotations

import pytest

from mlpipeline.domain.params import RetentionParams
from mlpipeline.domain.retention_plan import (
    DAY_MS,
    LoggedModelFact,
    RunFact,
    VersionFact,
    plan,
)

NOW = 1_000 * DAY_MS
OLD = NOW - 200 * DAY_MS
POLICY = RetentionParams(keep_versions=2, keep_days=30)


def version(number: int, created: int = OLD, run: str | None = None) -> VersionFact:
    return VersionFact("m", str(number), created, run or f"run{number}", f"lm{number}")


def runs_of(*versions: VersionFact) -> list[RunFact]:
    return [RunFact(str(v.run_id), "FINISHED", v.created_ms - 1000) for v in versions]


def gone(result, kind: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [item.name for item in result.items if item.kind == kind]


def make_plan(versions, runs=None, aliases=None, held=None, models=None, protected=()):  # type: ignore[no-untyped-def]
    return plan(
        POLICY,
        versions,
        {"m": aliases or {}},
        {"m": held or set()},
        runs if runs is not None else runs_of(*versions),
        models
        if models is not None
        else [LoggedModelFact(f"lm{v.version}", v.run_id) for v in versions],
        protected,
        NOW,
    )


def test_old_versions_past_the_newest_n_go_with_their_run_and_logged_model() -> None:
    versions = [version(n) for n in range(1, 6)]
    result = make_plan(versions)
    assert gone(result, "version") == ["m/3", "m/2", "m/1"]
    assert gone(result, "run") == ["run1", "run2", "run3"]
    assert gone(result, "logged model") == ["lm1", "lm2", "lm3"]
    assert [v.version for v in result.kept_versions] == ["5", "4"]
    assert "never held an alias" in result.items[0].why


@pytest.mark.parametrize(
    ("aliases", "held", "created", "kept"),
    [
        ({"champion": "1"}, set(), OLD, "holds @champion"),
        ({}, {"1"}, OLD, "held an alias"),
        ({}, set(), NOW - 29 * DAY_MS, "younger than 30 days"),
    ],
)
def test_what_always_stays(aliases, held, created, kept) -> None:  # type: ignore[no-untyped-def]
    versions = [version(1, created), version(2), version(3), version(4)]
    result = make_plan(versions, aliases=aliases, held=held)
    assert "m/1" not in gone(result, "version")
    assert "run1" not in gone(result, "run")
    assert "lm1" not in gone(result, "logged model")
    assert gone(result, "version") == ["m/2"]


def test_runs_that_stay_unfinished_young_protected_or_parents_of_kept_runs() -> None:
    versions = [version(n) for n in range(1, 3)]
    runs = [
        *runs_of(*versions),
        RunFact("running", "RUNNING", 0),
        RunFact("young", "FAILED", NOW - DAY_MS),
        RunFact("checked-out", "FINISHED", OLD),
        RunFact("sweep", "FINISHED", OLD),
        RunFact("trial", "FINISHED", OLD, parent_id="sweep"),
        RunFact("failed", "FAILED", OLD),
    ]
    versions[1] = VersionFact("m", "2", OLD, "trial")
    result = make_plan(versions, runs=runs, protected={"checked-out"})
    assert gone(result, "run") == ["run2", "failed"]  # run2 is named by no version now
    assert "registered no kept version" in result.items[-1].why


def test_a_logged_model_a_kept_version_names_stays_with_its_run_gone() -> None:
    versions = [version(1), version(2), version(3)]
    kept = VersionFact("m", "4", OLD, "run4", "lm1")  # registered from run1's logged model
    result = make_plan([*versions, kept], runs=runs_of(*versions, kept))
    assert "lm1" not in gone(result, "logged model")


def test_an_experiment_ref_goes_only_with_the_last_run_naming_it() -> None:
    versions = [version(n) for n in range(1, 5)]
    runs = runs_of(*versions)
    refs = ["refs/exps/a", "refs/exps/shared", "refs/exps/shared", "refs/exps/b"]
    runs = [
        RunFact(r.run_id, r.status, r.start_ms, experiment_ref=ref)
        for r, ref in zip(runs, refs, strict=True)
    ]
    result = make_plan(versions, runs=runs)  # versions 1 and 2 go; 3 (shared) and 4 stay
    assert gone(result, "experiment ref") == ["refs/exps/a"]


def test_a_deleted_run_past_the_policy_is_purged_and_says_so() -> None:
    versions = [version(1), version(2), version(3)]
    runs = [RunFact("run1", "FINISHED", OLD, deleted=True), *runs_of(*versions)[1:]]
    result = make_plan(versions, runs=runs)
    assert [i.why for i in result.items if i.name == "run1"] == [
        "the run of version m/1; already deleted, purged"
    ]
