"""The model registry: register the deployable pipeline, move the alias, list the versions.

The MLflow edge of the promotion rules in mlpipeline/domain/promotion.py; shared by the save
stage, the ZenML save step and `mlpipeline model`. mlflow is imported
only inside the functions.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.alias_history import AliasMove, previous_version, unrecorded_move
from mlpipeline.domain.errors import PipelineError, TrackingError
from mlpipeline.domain.model_card import with_current_alias
from mlpipeline.domain.params import MlflowParams, SaveParams
from mlpipeline.domain.promotion import (
    CHALLENGER_ALIAS,
    Candidate,
    Champion,
    Registration,
    champion_score,
    decide,
    decision_line,
    exploratory_reason,
    lower_score_warning,
)
from mlpipeline.files import paths
from mlpipeline.files.params_yaml import load_params
from mlpipeline.tracking import history, model_cards, servable, server, store
from mlpipeline.tracking import runs as tracking
from mlpipeline.tracking.failures import cause, is_not_found, no_alias, store_failed
from mlpipeline.tracking.registered import registered_model

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

log = logging.getLogger(__name__)

# Version tags: which pipeline bytes a version holds, and what its score was computed on.
PIPELINE_MD5_TAG = "pipeline_md5"
EVALUATION_DATA_TAG = "evaluation_data"


def input_columns(signature: Any) -> list[tuple[str, str]]:
    """A model signature's inputs as (column, type) pairs; [] without a signature."""
    if signature is None or signature.inputs is None:
        return []
    return [(str(spec.get("name")), str(spec.get("type"))) for spec in signature.inputs.to_dict()]


def evaluation_data(dataset_md5: str, run_params: dict[str, str]) -> str | None:
    """What a score was computed on: the dataset and the test split the run drew from it."""
    test_size = run_params.get("preprocess.test_size")
    seed = run_params.get("preprocess.random_state")
    if test_size is None or seed is None:
        return None
    return f"dataset_md5={dataset_md5};test_size={test_size};split_random_state={seed}"


def temp_experiment() -> str | None:
    """The DVC experiment's name when it runs in a copy under `.dvc/tmp/exps/` (--temp, queue)."""
    if paths.workspace_root(paths.ROOT) == paths.ROOT:
        return None
    return os.environ.get("DVC_EXP_NAME") or "(unnamed)"


def _registered_from(
    client: MlflowClient, model_name: str, run_id: str, model_uri: str
) -> ModelVersion | None:
    """The version of `model_name` already registered from this logged model, if any."""
    for version in client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'"):
        if version.source == model_uri:
            return version
    return None


def _champion(client: MlflowClient, model_name: str, alias: str, metric: str) -> Champion | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        holder = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if no_alias(exc):
            return None
        raise  # a store that did not answer is not "no champion"
    held: str | float | None = holder.tags.get(metric)
    run = client.get_run(holder.run_id) if holder.run_id else None
    if held is None and run is not None:
        held = run.data.metrics.get(metric)
    try:
        signature = mlflow.models.get_model_info(f"models:/{model_name}/{holder.version}").signature
    except (MlflowException, OSError) as exc:
        if store_failed(exc):
            raise  # a server that did not answer: the champion may load, the gate cannot say
        log.warning(
            "%s@%s (version %s) cannot be loaded (%s); it does not stand in the way of a "
            "version that can",
            model_name,
            alias,
            holder.version,
            cause(exc),
        )
        return Champion(str(holder.version), None, (), None, loadable=False)
    return Champion(
        version=str(holder.version),
        score=float(held) if held is not None else None,
        inputs=input_columns(signature),
        evaluation_data=holder.tags.get(EVALUATION_DATA_TAG),
    )


def publish(
    model_uri: str,
    metrics: dict[str, Any],
    run_id: str,
    pipeline_md5: str,
    dataset_md5: str,
    save: SaveParams,
    names: MlflowParams,
) -> Registration:
    """Register the model a training run logged, then move the alias if it earns it.

    A version already registered from this logged model is reused, so a rerun after a
    crash adds no duplicate. The alias moves last.
    """
    import mlflow
    from mlflow import MlflowClient

    score = champion_score(metrics, save.champion_metric)
    model_name, alias, metric = (
        names.registered_model_name,
        names.champion_alias,
        save.champion_metric,
    )
    tracking.configure(names.experiment_name)
    client = MlflowClient()
    with tracking.mlflow_run(run_id=run_id):
        signature = _logged_signature(model_uri, run_id)
        training_run = client.get_run(run_id)
        evaluated_on = evaluation_data(dataset_md5, training_run.data.params)
        registered = _registered_from(client, model_name, run_id, model_uri)
        reused = registered is not None
        if registered is None:
            tags = {PIPELINE_MD5_TAG: pipeline_md5, metric: str(score)}
            if evaluated_on is not None:
                tags[EVALUATION_DATA_TAG] = evaluated_on
            # Tags travel with the version's creation, so a crash cannot leave it unmarked.
            registered = mlflow.register_model(model_uri, model_name, tags=tags)
        version = str(registered.version)

        candidate = Candidate(
            version=version,
            score=score,
            inputs=input_columns(signature),
            evaluation_data=evaluated_on,
            temp_experiment=temp_experiment(),
            orchestrator=training_run.data.tags.get("orchestrator"),
        )
        champion = _champion(client, model_name, alias, metric)
        decision = decide(candidate, champion, save.min_score, save.experiments_compete)
        registration = Registration(model_name, version, decision.promoted, decision.reason, reused)
        if decision.promoted and (champion is None or champion.version != version):
            # Compare-and-set: another save or promote that moved the alias since
            # `_champion` read it fails this one, which DVC then reruns against the new
            # champion, rather than both recording a move from the same version.
            history.move_alias(
                client,
                mlflow.get_tracking_uri(),
                model_name,
                alias,
                expected=champion.version if champion else None,
                to_version=version,
                why=decision_line(registration, alias),
                via=saved_by(candidate.orchestrator),
            )
        if not reused or model_cards.CARD_TAG not in registered.tags:
            model_cards.log_card(
                client,
                model_name,
                version,
                decision_line(registration, alias),
                input_columns(signature),
            )
        mlflow.set_tags(
            {
                "registered_model_version": version,
                f"{alias}_promoted": str(decision.promoted),
                # The gate's line with its reason, for `make report` when nothing reruns.
                f"{alias}_decision": decision_line(registration, alias),
            }
        )
    return registration


def saved_by(orchestrator: str | None) -> str:
    """The history's `via` for a move the save gate made: `save (dvc)` or `save (zenml)`."""
    return f"save ({orchestrator})" if orchestrator else "save"


def _logged_signature(model_uri: str, run_id: str) -> Any:
    """The signature of the model the run logged; a TrackingError if the store lost it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.models.get_model_info(model_uri).signature
    except (MlflowException, OSError) as exc:
        raise TrackingError(
            f"the model {model_uri} logged by MLflow run {run_id} cannot be read from the "
            f"tracking store {mlflow.get_tracking_uri()} ({cause(exc)}); retrain with "
            "`dvc repro --force train`"
        ) from None


# --- the command line: list versions, move the alias by hand


def _client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    tracking.use_client_defaults()
    server.check_reachable(uri)
    store.require_existing(uri)
    import mlflow

    # models:/ URIs (the model column of `list`) resolve against MLflow's global store.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    store.settle(client)
    return client


# How many of the newest versions a "no such version" message names.
NAMED_VERSIONS = 10
# Versions a request reads to skip to a deep page: ~1 s of a server's time on 2 cores, well
# inside the client's 10 s timeout (runs.py); 9,980 at once took longer (benchmarks/notes.md).
SKIP_CHUNK = 500


def _shown_score(tag: str | None) -> str:
    """A version's score tag as the save line prints scores (4 decimals); "-" if none."""
    if tag is None:
        return "-"
    try:
        return f"{float(tag):.4f}"
    except ValueError:
        return tag


@dataclass(frozen=True)
class VersionPage:
    """One page of a model's versions, newest first; `more` when older ones follow."""

    rows: list[dict[str, Any]]
    page: int
    limit: int
    more: bool

    @property
    def oldest(self) -> int:
        """The page's oldest version: `--before` it is the next page, read as fast as page 1."""
        return int(self.rows[-1]["version"])


def _require_model(client: MlflowClient, model_name: str) -> RegisteredModel:
    """`model_name` with its tags and aliases (not its versions); a TrackingError if this
    store has no such model."""
    model = registered_model(client, model_name)
    if model is None:
        raise TrackingError(f"model {model_name!r} has no registered versions in this store")
    return model


def _newest(
    client: MlflowClient, model_name: str, limit: int, page: int = 1, before: int | None = None
) -> tuple[list[ModelVersion], bool]:
    """Page `page` of `model_name`'s versions (those numbered below `before`, if given),
    `limit` a page, newest first, and whether older ones follow: MLflow's paged search,
    never the whole list (10,000 versions and more)."""
    query = f"name = '{model_name}'"
    if before is not None:
        # A filter, not an offset: MLflow reads only the page's rows, however deep.
        query += f" and version_number < {before}"
    order = ["version_number DESC"]
    token = None
    skip = (page - 1) * limit
    skipped = 0
    while skipped < skip:
        # MLflow's page token is an offset it alone writes (its format is declared unstable):
        # the rows before the page are read once, with their tags, to get it; a bounded
        # number a request, as one request for 9,980 outlasts a server's HTTP timeout.
        step = min(SKIP_CHUNK, skip - skipped)
        before_page = client.search_model_versions(
            query, max_results=step, order_by=order, page_token=token
        )
        token = before_page.token
        if token is None:
            return [], False
        skipped += step
    found = client.search_model_versions(query, max_results=limit, order_by=order, page_token=token)
    return list(found), found.token is not None


def list_versions(
    model_name: str, metric: str, limit: int = 20, page: int = 1, before: int | None = None
) -> VersionPage:
    """Page `page` of `model_name`'s versions (below version `before`, if given), newest
    first: aliases, score, run, when registered, whether its files are there."""
    import datetime as dt

    client = _client(tracking.tracking_uri())
    model = _require_model(client, model_name)
    versions, more = _newest(client, model_name, limit, page, before)
    if not versions:
        if page == 1 and before is None:
            raise TrackingError(f"model {model_name!r} has no registered versions in this store")
        below = f" below version {before}" if before is not None else ""
        raise TrackingError(
            f"model {model_name!r} has no versions{below} on page {page} ({limit} a page); "
            "`mlpipeline model list` shows the newest"
        )
    aliases: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    present = servable.files_present_each(client, [str(version.source) for version in versions])
    rows = [
        {
            "version": version.version,
            "aliases": ",".join(sorted(aliases.get(str(version.version), []))) or "-",
            metric: _shown_score(version.tags.get(metric)),
            "run_id": version.run_id,
            "registered": dt.datetime.fromtimestamp(
                version.creation_timestamp / 1000, dt.UTC
            ).isoformat(timespec="seconds"),
            "model": "ok" if files else "FILES GONE",
        }
        for version, files in zip(versions, present, strict=True)
    ]
    return VersionPage(rows, page, limit, more)


def _require_version(client: MlflowClient, model_name: str, version: str) -> None:
    """A TrackingError naming the newest versions unless `version` of `model_name` exists."""
    from mlflow.exceptions import MlflowException

    if version.isdigit():
        try:
            client.get_model_version(model_name, version)
            return
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
    newest, more = _newest(client, model_name, NAMED_VERSIONS)
    named = ", ".join(str(v.version) for v in newest) + (", ..." if more else "")
    raise TrackingError(
        f"{model_name} has no version {version}; its newest versions are: {named} "
        "(`mlpipeline model list` pages them all)"
    )


def promote(
    model_name: str,
    alias: str,
    version: str,
    reason: str | None = None,
    metric: str | None = None,
) -> str | None:
    """Move `alias` to `version` of `model_name` and record the move in its history; returns
    the version that held it before. A move to a version scoring below that one (`metric`,
    default params.yaml's save.champion_metric) is made, with a warning giving both scores."""
    uri = tracking.tracking_uri()
    client = _client(uri)
    before = _move_by_hand(client, uri, model_name, alias, str(version), reason, "promote")
    _warn_if_lower(client, model_name, str(version), before, metric)
    return before


def promote_challenger(
    model_name: str, champion_alias: str, version: str, reason: str | None = None
) -> str | None:
    """Move @challenger to `version` of `model_name` (checked as a champion's move is: the
    version exists and loads) and record it in its history; returns the version that held it
    before. Only that alias moves: `champion_alias` is read, to warn when both are one version."""
    if champion_alias == CHALLENGER_ALIAS:
        raise TrackingError(
            f"params.yaml's mlflow.champion_alias is {CHALLENGER_ALIAS!r}, the challenger's "
            "alias; give the champion another name"
        )
    uri = tracking.tracking_uri()
    client = _client(uri)
    before = _move_by_hand(
        client, uri, model_name, CHALLENGER_ALIAS, str(version), reason, "promote --challenger"
    )
    if history.current_version(client, model_name, champion_alias) == str(version):
        log.warning(
            "version %s is @%s too: a scoring --with-challenger will show no change",
            version,
            champion_alias,
        )
    return before


def _move_by_hand(
    client: MlflowClient,
    uri: str,
    model_name: str,
    alias: str,
    version: str,
    reason: str | None,
    via: str,
) -> str | None:
    """The checks of a move by hand (the model, the version, that it loads), then the move,
    recorded; returns the version that held `alias` before."""
    _require_model(client, model_name)
    _require_version(client, model_name, version)
    if alias != CHALLENGER_ALIAS:  # a challenger is scored beside the champion, never serves
        _check_reproducible(client, model_name, alias, version)
    _check_servable(client, model_name, alias, version)
    before = history.current_version(client, model_name, alias)
    history.move_alias(
        client, uri, model_name, alias, before, version, reason or "(no reason given)", via
    )
    return before


def _check_reproducible(client: MlflowClient, model_name: str, alias: str, version: str) -> None:
    """A PipelineError when `version` was trained by a run that cannot be rebuilt (ZenML's):
    the save gate's rule for exploratory runs holds for a hand-made move too."""
    from mlflow.exceptions import MlflowException

    run_id = client.get_model_version(model_name, version).run_id
    orchestrator = None
    if run_id:
        try:
            orchestrator = client.get_run(run_id).data.tags.get("orchestrator")
        except MlflowException as exc:
            if not is_not_found(exc):
                raise  # a store that did not answer cannot say what trained it
    reason = exploratory_reason(orchestrator)
    if reason is not None:
        raise PipelineError(f"{model_name} version {version} cannot be {alias}: {reason}")


def _check_servable(client: MlflowClient, model_name: str, alias: str, version: str) -> None:
    """A TrackingError unless `version` loads: an alias must never point at a model that
    cannot serve."""
    problem = servable.version_problem(client, model_name, version)
    if problem is not None:
        raise TrackingError(
            f"{model_name} version {version} cannot be {alias}: {problem}; `mlpipeline model list` "
            "shows the versions whose files are there"
        )


def _warn_if_lower(
    client: MlflowClient, model_name: str, version: str, before: str | None, metric: str | None
) -> None:
    """Log a warning, with both scores, when the alias went to a lower-scoring version."""
    if before is None:
        return
    metric = metric or load_params(paths.PARAMS).save.champion_metric

    def score(number: str) -> float | None:
        try:
            return float(client.get_model_version(model_name, number).tags[metric])
        except (KeyError, ValueError):
            return None

    warning = lower_score_warning(metric, version, score(version), before, score(before))
    if warning is not None:
        log.warning("%s", warning)


def rollback(model_name: str, alias: str, reason: str | None = None) -> tuple[str, str]:
    """Move `alias` back to the version it held before its last recorded move; returns
    (from, to). A TrackingError if the history cannot say where back is."""
    uri = tracking.tracking_uri()
    client = _client(uri)
    moves, current = history.read_moves(client, model_name, alias)
    target = previous_version(moves, current)
    if target is None or current is None:
        problem = (
            unrecorded_move(moves, current) or "its last recorded move had no previous version"
        )
        raise TrackingError(
            f"{model_name}@{alias} cannot be rolled back: {problem}; move it with "
            "`registry promote VERSION --reason ...`"
        )
    _check_servable(client, model_name, alias, target)
    why = reason or f"rollback of the move to version {current}"
    history.move_alias(client, uri, model_name, alias, current, target, why, "rollback")
    return current, target


def alias_history(model_name: str, alias: str) -> tuple[list[AliasMove], str | None, str | None]:
    """The recorded moves of `alias`, the version it is on now, and an unrecorded move if the
    history does not end there."""
    client = _client(tracking.tracking_uri())
    moves, current = history.read_moves(client, model_name, alias)
    return moves, current, unrecorded_move(moves, current)


def model_card(model_name: str, version: str, alias: str = "champion") -> str:
    """The Markdown card logged when `version` was registered, with who holds `alias` now."""
    client = _client(tracking.tracking_uri())
    card = model_cards.read_card(client, model_name, version)
    holder = history.current_version(client, model_name, alias)
    return with_current_alias(card, alias, str(version), holder)
