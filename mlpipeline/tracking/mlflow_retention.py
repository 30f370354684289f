"""The MLflow and DVC edges of retention (mlpipeline/domain/retention_plan.py): read the facts a
plan needs, then delete what it lists, in an order a rerun can finish.

MLflow 3's own API does the deleting: `delete_model_version`, `delete_run` and
`delete_logged_model` move rows to the `deleted` stage, and `mlflow gc --run-ids ...
--logged-model-ids ...` removes them with their artifacts (files under the artifact root,
or S3 objects); mlpipeline/tracking/orphan_links.py removes the link rows it leaves. The
ids about to be purged are written to a journal first, so that a gc stopped half-way purges
them on its next run. The DVC side is
mlpipeline/tracking/dvc_retention.py. mlflow is imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlpipeline.domain.alias_history import TAG_PREFIX, AliasMove
from mlpipeline.domain.errors import TrackingError
from mlpipeline.domain.retention_plan import LoggedModelFact, Plan, RunFact, VersionFact
from mlpipeline.files.paths import ROOT
from mlpipeline.tracking import orphan_links
from mlpipeline.tracking.dvc_retention import last_line

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

JOURNAL = Path(".dvc") / "tmp" / "mlpipeline-gc.json"
PAGE = 1000
PURGED_LINE = re.compile(
    r"^(?:Run|Logged model) with ID (\S+) has been permanently deleted\.$", re.M
)
LOGGED_MODEL_SOURCE = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)$")


@dataclass(frozen=True)
class Facts:
    versions: list[VersionFact]
    aliases: dict[str, dict[str, str]]  # model → {alias: version}
    held: dict[str, set[str]]  # model → versions that ever held an alias
    runs: list[RunFact]
    logged_models: list[LoggedModelFact]


def _pages(search: Any, **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        page = search(page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def _held(tags: Mapping[str, str]) -> set[str]:
    held: set[str] = set()
    for key, value in tags.items():
        if key.startswith(TAG_PREFIX):
            move = AliasMove.from_tag_value(value)
            held.update(v for v in (move.from_version, move.to_version) if v is not None)
    return held


def logged_model_of(version: Any) -> str | None:
    """The logged model a version was registered from: MLflow 3 names it in `model_id` or,
    from the SQLite registry, only in its source `models:/<model id>`."""
    if getattr(version, "model_id", None):
        return str(version.model_id)
    match = LOGGED_MODEL_SOURCE.match(version.source or "")
    return match["model_id"] if match else None


def read_facts(client: MlflowClient, experiment_name: str) -> Facts:
    """Every registered version, alias and alias history; the runs and logged models of the
    pipeline's experiment and of every experiment a version's run lives in."""
    from mlflow.entities import ViewType

    versions: list[VersionFact] = []
    aliases: dict[str, dict[str, str]] = {}
    held: dict[str, set[str]] = {}
    # The search's models carry their tags and aliases; `get_registered_model` would also
    # load every version (mlpipeline/tracking/registered.py).
    for model in _pages(client.search_registered_models, max_results=PAGE):
        aliases[model.name] = {alias: str(v) for alias, v in model.aliases.items()}
        held[model.name] = _held(dict(model.tags))
        for version in _pages(
            client.search_model_versions,
            filter_string=f"name = '{model.name}'",
            max_results=PAGE,
        ):
            versions.append(
                VersionFact(
                    model.name,
                    str(version.version),
                    int(version.creation_timestamp),
                    version.run_id or None,
                    logged_model_of(version),
                )
            )
    experiments: set[str] = set()
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        experiments.add(experiment.experiment_id)
    runs: dict[str, RunFact] = {}
    for experiment_id in sorted(experiments):
        runs.update(_runs_of(client, experiment_id, ViewType.ALL))
    for version in versions:  # a version registered from a run of another experiment
        if version.run_id and version.run_id not in runs:
            run = client.get_run(version.run_id)
            if run.info.experiment_id not in experiments:
                experiments.add(run.info.experiment_id)
                runs.update(_runs_of(client, run.info.experiment_id, ViewType.ALL))
    logged_models = (
        [
            LoggedModelFact(model.model_id, model.source_run_id or None)
            for model in _pages(
                client.search_logged_models, experiment_ids=sorted(experiments), max_results=PAGE
            )
        ]
        if experiments
        else []
    )
    return Facts(versions, aliases, held, list(runs.values()), logged_models)


def _runs_of(client: MlflowClient, experiment_id: str, view: int) -> dict[str, RunFact]:
    found = {}
    for run in _pages(
        client.search_runs, experiment_ids=[experiment_id], run_view_type=view, max_results=PAGE
    ):
        tags = run.data.tags
        found[run.info.run_id] = RunFact(
            run.info.run_id,
            run.info.status,
            int(run.info.start_time or 0),
            run.info.lifecycle_stage == "deleted",
            tags.get("dvc_experiment_ref"),
            tags.get("mlflow.parentRunId"),
            tags.get("git_commit"),
        )
    return found


def read_journal(root: Path = ROOT) -> dict[str, Any]:
    """What a gc stopped half-way was deleting: runs, logged models, experiment refs."""
    path = root / JOURNAL
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()))


def _write_journal(
    plan: Plan, root: Path, locations: Mapping[str, str], purged: frozenset[str] = frozenset()
) -> None:
    path = root / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "runs": [run.run_id for run in plan.runs if run.run_id not in purged],
        "logged_models": [m.model_id for m in plan.logged_models if m.model_id not in purged],
        "experiment_refs": plan.experiment_refs,
        # Where their artifacts are: a deleted logged model's is no longer readable.
        "locations": {key: value for key, value in locations.items() if key not in purged},
    }
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(entry, indent=1))
    partial.replace(path)


def pending_logged_models(journal: Mapping[str, list[str]]) -> list[str]:
    """Logged models an interrupted gc deleted but did not purge. MLflow's client cannot see
    a deleted logged model, so the journal is the record: `delete_mlflow` takes out of it
    each model `mlflow gc` reports purged."""
    return list(journal.get("logged_models", []))


def delete_mlflow(
    client: MlflowClient, plan: Plan, uri: str, backend_store_uri: str, root: Path = ROOT
) -> None:
    """Delete the plan's versions, runs and logged models, then purge them with `mlflow gc`.

    The journal names them first: a gc stopped anywhere here is finished by the next one.
    """
    from mlflow.exceptions import MlflowException

    from mlpipeline.tracking.failures import is_not_found

    locations: dict[str, str] = dict(read_journal(root).get("locations", {}))
    for run in plan.runs:
        locations[run.run_id] = client.get_run(run.run_id).info.artifact_uri
    for model in plan.logged_models:
        found = _model_location(client, model.model_id)
        if found:
            locations[model.model_id] = found
    _write_journal(plan, root, locations)
    for version in plan.versions:
        try:
            _delete_version(client, version.model, version.version)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
        log.info("deleted version %s/%s", version.model, version.version)
    for run in plan.runs:
        if not run.deleted:
            client.delete_run(run.run_id)
    for model in plan.logged_models:
        try:
            client.delete_logged_model(model.model_id)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
    if not plan.runs:
        # `mlflow gc` without --run-ids would purge every deleted run of the store: deleted
        # logged models wait (in the journal) for a gc that purges runs too.
        if plan.logged_models:
            log.warning("%d deleted logged models wait for the next gc", len(plan.logged_models))
        return
    run_ids = ",".join(run.run_id for run in plan.runs)
    command = [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", backend_store_uri]
    command += ["--tracking-uri", uri, "--run-ids", run_ids]
    if plan.logged_models:
        command += ["--logged-model-ids", ",".join(m.model_id for m in plan.logged_models)]
    purged = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    # What it purged before any failure, from its report ("... with ID x has been
    # permanently deleted."): the journal keeps the rest for the next gc.
    done = frozenset(PURGED_LINE.findall(purged.stdout))
    _write_journal(plan, root, locations, done)
    for purged_id in sorted(done & set(locations)):
        _remove_empty_folders(locations[purged_id])
    if purged.returncode:
        raise TrackingError(
            f"`mlflow gc` failed (rerun `mlpipeline model gc --yes` to finish): {last_line(purged)}"
        )
    removed = orphan_links.remove_orphan_links(backend_store_uri)
    log.info(
        "purged %d runs and %d logged models; %d links and %d datasets they left",
        len(plan.runs),
        len(plan.logged_models),
        removed.links,
        removed.datasets,
    )


def _delete_version(client: MlflowClient, model_name: str, version: str) -> None:
    """Delete a version's tags, then the version. MLflow's SQL registry keeps a deleted
    version's row as a tombstone (stage `Deleted_Internal`, source and run redacted) so that
    its number is never given again, and leaves its tags; `mlflow gc` purges neither. The
    tags go first: once the version is deleted no client can reach them."""
    for key in client.get_model_version(model_name, version).tags:
        client.delete_model_version_tag(model_name, version, key)
    client.delete_model_version(model_name, version)


def _model_location(client: MlflowClient, model_id: str) -> str | None:
    from mlflow.exceptions import MlflowException

    from mlpipeline.tracking.failures import is_not_found

    try:
        return str(client.get_logged_model(model_id).artifact_location)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        return None


def _remove_empty_folders(location: str) -> None:
    """`mlflow gc` deletes `<root>/<run or models/id>/artifacts` of a local artifact root
    and leaves the folder above it, empty; remove that too (object stores have no folders)."""
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return
    artifacts = Path(parsed.path)
    for folder in (artifacts, artifacts.parent):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def finish(root: Path = ROOT) -> None:
    (root / JOURNAL).unlink(missing_ok=True)
