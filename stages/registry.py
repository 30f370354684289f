"""The model registry: register the deployable pipeline, move the alias, and a CLI for both.

The MLflow edge of the promotion rules in stages/promotion.py; shared by the save stage and
the ZenML save step. mlflow is imported only inside the functions.

    python -m stages.registry list               # versions, scores, aliases
    python -m stages.registry promote 3          # move @champion to version 3 (or back)
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages import paths, tracking
from stages.errors import TrackingError
from stages.params import MlflowParams, SaveParams
from stages.promotion import Candidate, Champion, champion_score, decide

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

# Version tags: which pipeline bytes a version holds, and what its score was computed on.
PIPELINE_MD5_TAG = "pipeline_md5"
EVALUATION_DATA_TAG = "evaluation_data"


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    promoted: bool
    reason: str
    reused: bool = False


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
    except MlflowException:
        return None
    held = holder.tags.get(metric)
    run = client.get_run(holder.run_id) if holder.run_id else None
    if held is None and run is not None:
        held = run.data.metrics.get(metric)
    try:
        signature = mlflow.models.get_model_info(f"models:/{model_name}/{holder.version}").signature
    except (MlflowException, OSError) as exc:
        log.warning(
            "%s@%s (version %s) cannot be loaded (%s); it does not stand in the way of a "
            "version that can",
            model_name,
            alias,
            holder.version,
            exc,
        )
        return Champion(str(holder.version), None, (), None, loadable=False)
    return Champion(
        version=str(holder.version),
        score=float(held) if held is not None else None,
        inputs=input_columns(signature),
        evaluation_data=holder.tags.get(EVALUATION_DATA_TAG),
        train_data_md5=run.data.tags.get("train_data_md5") if run is not None else None,
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
            train_data_md5=training_run.data.tags.get("train_data_md5"),
        )
        champion = _champion(client, model_name, alias, metric)
        decision = decide(candidate, champion, save.min_score, save.experiments_compete)
        if decision.promoted and (champion is None or champion.version != version):
            client.set_registered_model_alias(model_name, alias, version)
        mlflow.set_tags(
            {"registered_model_version": version, f"{alias}_promoted": str(decision.promoted)}
        )
    return Registration(model_name, version, decision.promoted, decision.reason, reused)


def _logged_signature(model_uri: str, run_id: str) -> Any:
    """The signature of the model the run logged; a TrackingError if the store lost it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.models.get_model_info(model_uri).signature
    except (MlflowException, OSError) as exc:
        raise TrackingError(
            f"the model {model_uri} logged by MLflow run {run_id} cannot be read from the "
            f"tracking store {mlflow.get_tracking_uri()} ({exc}); retrain with "
            "`dvc repro --force train`"
        ) from None


# --- the command line: list versions, move the alias by hand


def _client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    tracking.check_reachable(uri)
    if uri.startswith("sqlite:///"):
        store = Path(uri.removeprefix("sqlite:///"))
        if not store.is_file():
            raise TrackingError(f"no MLflow store at {store}; run the pipeline first (dvc repro)")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(client: MlflowClient, model_name: str) -> list[ModelVersion]:
    versions = client.search_model_versions(f"name = '{model_name}'")
    if not versions:
        raise TrackingError(f"model {model_name!r} has no registered versions in this store")
    return sorted(versions, key=lambda version: int(version.version))


def list_versions(model_name: str, metric: str) -> list[dict[str, Any]]:
    """Every version of `model_name`: its aliases, score, run and when it was registered."""
    import datetime as dt

    client = _client(tracking.tracking_uri())
    versions = _versions(client, model_name)
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(model_name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    return [
        {
            "version": version.version,
            "aliases": ",".join(sorted(aliases.get(str(version.version), []))) or "-",
            metric: version.tags.get(metric, "-"),
            "run_id": version.run_id,
            "registered": dt.datetime.fromtimestamp(
                version.creation_timestamp / 1000, dt.UTC
            ).isoformat(timespec="seconds"),
        }
        for version in versions
    ]


def promote(model_name: str, alias: str, version: str) -> str | None:
    """Move `alias` to `version` of `model_name`; returns the version that held it before."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking.tracking_uri())
    known = [str(v.version) for v in _versions(client, model_name)]
    if str(version) not in known:
        raise TrackingError(
            f"{model_name} has no version {version}; its versions are: {', '.join(known)}"
        )
    try:
        before: str | None = str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        before = None
    client.set_registered_model_alias(model_name, alias, str(version))
    return before


def main(argv: list[str] | None = None) -> None:
    from stages.cli import exit_on_user_error
    from stages.params import load_params

    parser = argparse.ArgumentParser(
        prog="python -m stages.registry",
        description="List the registered versions or move the champion alias by hand. The "
        "store is the pipeline's (MLFLOW_TRACKING_URI, else <repo>/mlflow.db), from any folder.",
    )
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="default: %(default)s")
    parser.add_argument("--model", help="registered model (default: mlflow.registered_model_name)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions with their aliases and scores")
    promote_parser = commands.add_parser("promote", help="move the alias to a version")
    promote_parser.add_argument("version", help="the version number to promote")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[registry] %(levelname)s %(message)s")
    with exit_on_user_error(log):
        params = load_params(args.params)
        model_name = args.model or params.mlflow.registered_model_name
        alias = params.mlflow.champion_alias
        if args.command == "list":
            rows = list_versions(model_name, params.save.champion_metric)
            print(_table(rows))
        else:
            before = promote(model_name, alias, args.version)
            log.info(
                "%s@%s: version %s (was %s)", model_name, alias, args.version, before or "unset"
            )


def _table(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0])
    cells = [header, *([str(row[key]) for key in header] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


if __name__ == "__main__":
    main()
