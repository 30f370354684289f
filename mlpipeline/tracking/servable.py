"""Whether a model the store names can still be served: its record, its files, and a real load.

A registered version or an alias is only a row in the store; the model lives in the artifact
store, which can lose it on its own (`rm -rf mlartifacts`, a bucket's lifecycle rule, a
restore of only the database). These checks read, never write: loading goes through a local
copy, because MLflow writes a `registered_model_meta` file into the folder it loads a
`models:/<name>/...` URI from, which for a local store is the store itself (and fails on a
read-only one).

mlflow is imported only inside the functions.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from mlpipeline.tracking.failures import is_not_found, no_alias, store_failed

if TYPE_CHECKING:
    from mlflow import MlflowClient

# The file every MLflow model folder has; without it nothing loads.
MLMODEL = "MLmodel"


def files_present(model_uri: str) -> bool:
    """Whether the artifact store still holds the model's folder (its MLmodel file)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=model_uri)
    except (MlflowException, OSError) as exc:
        if store_failed(exc):
            raise  # a server that did not answer has not lost the files
        return False
    return any(entry.path.rsplit("/", 1)[-1] == MLMODEL for entry in listed)


def logged_model_id(source: str) -> str | None:
    """The id in a logged model's URI `models:/<model id>`; None for any other source (a
    registered `models:/<name>/<version>`, `models:/<name>@<alias>`, a runs:/ or a path)."""
    if not source.startswith("models:/"):
        return None
    rest = source.removeprefix("models:/")
    return rest if rest and not set(rest) & set("/@'") else None


def files_present_each(client: MlflowClient, sources: list[str]) -> list[bool]:
    """`files_present` for each of `sources` (a page of versions): the store is asked once
    for the logged models they name, and their folders are listed side by side.

    One `files_present` per version asks the store for its logged model, then lists it: 20
    round trips a page. A source whose logged model the search does not return (another
    kind of source, a deleted experiment) is checked alone, as before.
    """
    from concurrent.futures import ThreadPoolExecutor

    locations = _artifact_locations(client, [i for i in map(logged_model_id, sources) if i])

    def present(source: str) -> bool:
        location = locations.get(logged_model_id(source) or "")
        return files_present(location if location is not None else source)

    with ThreadPoolExecutor(max_workers=LISTING_THREADS) as pool:
        return list(pool.map(present, sources))


# Folders listed at once for a page: each listing is one request to a server's artifact
# proxy (or S3), so they overlap; a local store lists them as fast either way.
LISTING_THREADS = 8


def _artifact_locations(client: MlflowClient, model_ids: list[str]) -> dict[str, str]:
    """Logged model id -> its artifact location, for those of `model_ids` the store has, in
    one search (MLflow's logged-model search takes an `IN` list of attribute values)."""
    from mlflow.entities import ViewType

    if not model_ids:
        return {}
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    listed = ", ".join(f"'{model_id}'" for model_id in sorted(set(model_ids)))
    locations: dict[str, str] = {}
    token = None
    while True:
        found = client.search_logged_models(
            experiments, filter_string=f"model_id IN ({listed})", page_token=token
        )
        locations.update({model.model_id: model.artifact_location for model in found})
        token = found.token
        if not token:
            return locations


def logged_model_problem(client: MlflowClient, model_uri: str) -> str | None:
    """Why the logged model `models:/<model id>` cannot serve, or None when it can."""
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException

    model_id = model_uri.removeprefix("models:/")
    try:
        model = client.get_logged_model(model_id)
    except MlflowException as exc:
        if is_not_found(exc):
            return f"its model {model_uri} is not in the store"
        raise
    if model.status != LoggedModelStatus.READY:
        return f"its model {model_uri} was never finished (status {model.status})"
    if not files_present(model_uri):
        return f"the files of its model {model_uri} are gone from {model.artifact_location}"
    return None


def load_copy(model_uri: str) -> Any:
    """Load a model as pyfunc from a temporary local copy: the store is only read."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="mlpipeline-model-") as folder:
        return mlflow.pyfunc.load_model(model_uri, dst_path=folder)


def version_problem(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Why version `version` of `model_name` cannot serve (its registration failed, its files
    are gone, it does not load), or None when it loads."""
    from mlflow.exceptions import MlflowException

    held = client.get_model_version(model_name, version)
    if str(held.status) != "READY":
        return f"its registration is {held.status}, not READY"
    uri = f"models:/{model_name}/{version}"
    if not files_present(uri):
        return f"its files are gone ({held.source})"
    try:
        load_copy(uri)
    except (MlflowException, OSError, ImportError, ValueError) as exc:
        if store_failed(exc):
            raise
        return f"it does not load ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return None


def champion_problem(client: MlflowClient, model_name: str, alias: str) -> tuple[str, str] | None:
    """(version, why) when `model_name@alias` exists but does not load; None otherwise."""
    from mlflow.exceptions import MlflowException

    try:
        holder = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if no_alias(exc):
            return None  # no champion yet: save names one
        raise
    version = str(holder.version)
    uri = f"models:/{model_name}/{version}"
    if not files_present(uri):
        return version, f"its files are gone ({holder.source})"
    try:
        load_copy(uri)
    except (MlflowException, OSError, ImportError, ValueError) as exc:
        if store_failed(exc):
            raise
        return version, f"it does not load ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return None
