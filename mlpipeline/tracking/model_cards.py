"""The MLflow edge of the model cards (mlpipeline/domain/model_card.py): gather a version's
record, log its card with its training run, read it back. mlflow is imported only inside.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import TYPE_CHECKING

from mlpipeline.domain.errors import TrackingError
from mlpipeline.domain.model_card import CardRecord, data_md5_from_tags, render_card
from mlpipeline.tracking import datasets, drift_reference
from mlpipeline.tracking.failures import cause, is_not_found

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

# MLflow's tag holding a dataset input's context (raw, training, testing, source).
CONTEXT_TAG = "mlflow.data.context"

# The version tag naming the card among its training run's artifacts.
CARD_TAG = "model_card"


def card_path(version: str) -> str:
    return f"model_card/version-{version}.md"


def build_record(
    client: MlflowClient,
    model_name: str,
    version: str,
    decision: str,
    signature: list[tuple[str, str]],
) -> CardRecord:
    """Everything the card says, read from the registry and the version's training run."""
    registered = client.get_model_version(model_name, version)
    run_id = registered.run_id
    if not run_id:
        raise TrackingError(f"{model_name} version {version} names no training run: no card")
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    tags = run.data.tags
    lineage: dict[str, str] = {
        key: tags[key]
        for key in ("dvc_experiment", "dvc_experiment_baseline", "git_dirty_paths")
        if key in tags
    }
    return CardRecord(
        model_name=model_name,
        version=str(version),
        registered=dt.datetime.fromtimestamp(
            registered.creation_timestamp / 1000, dt.UTC
        ).isoformat(timespec="seconds"),
        run_id=run_id,
        experiment_name=experiment.name,
        decision=decision,
        commit=tags.get("git_commit"),
        dirty=tags.get("git_dirty"),
        orchestrator=tags.get("orchestrator"),
        data_md5=data_md5(run),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        signature=signature,
        reference=drift_reference.load_reference(run_id),
        extra_lineage=lineage,
    )


def data_md5(run: Run) -> dict[str, str]:
    """The files a run used -> md5: the user's source table first, then DVC's md5s from the
    lineage tags, then the run's other dataset inputs (a ZenML run's only record: it has no
    DVC outputs, and logs its raw, training and testing tables with DVC's md5s as digests)."""
    source: dict[str, str] = {}
    others: dict[str, str] = {}
    for item in run.inputs.dataset_inputs if run.inputs else []:
        path = _file_of(item.dataset.source)
        if path is None:
            continue
        context = next((tag.value for tag in item.tags if tag.key == CONTEXT_TAG), None)
        (source if context == datasets.SOURCE_CONTEXT else others)[path] = item.dataset.digest
    from_tags = data_md5_from_tags(run.data.tags)
    return {**source, **from_tags, **{k: v for k, v in others.items() if k not in from_tags}}


def _file_of(source: str) -> str | None:
    """The file a dataset input names (its source's `uri`); None for any other source."""
    try:
        uri = json.loads(source).get("uri")
    except (ValueError, AttributeError):
        return None
    return str(uri) if uri else None


def log_card(
    client: MlflowClient,
    model_name: str,
    version: str,
    decision: str,
    signature: list[tuple[str, str]],
) -> str:
    """Render the version's card, log it with its training run, tag the version; the card."""
    record = build_record(client, model_name, version, decision, signature)
    card = render_card(record)
    path = card_path(str(version))
    client.log_text(record.run_id, card, path)
    client.set_model_version_tag(model_name, str(version), CARD_TAG, path)
    return card


def read_card(client: MlflowClient, model_name: str, version: str) -> str:
    """The card logged for `version`; a TrackingError naming the version if it has none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # MLflow draws a progress bar for every download, a few kB here: noise in a log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    try:
        registered = client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        if not is_not_found(exc):
            raise  # a store that did not answer: the edge names the call and the cause
        raise TrackingError(f"{model_name} has no version {version}") from None
    path = registered.tags.get(CARD_TAG)
    if path is None:
        raise TrackingError(
            f"{model_name} version {version} has no model card (registered before cards were "
            "written, or by another tool)"
        )
    try:
        return mlflow.artifacts.load_text(f"runs:/{registered.run_id}/{path}")
    except (MlflowException, OSError) as exc:
        raise TrackingError(
            f"the card of {model_name} version {version} cannot be read: {cause(exc)}"
        ) from None
