"""One registered model (its tags and aliases) read without reading its versions.

MLflow's `get_registered_model` on a SQL store (SQLite, PostgreSQL, and so a server on
either) builds the model's `latest_versions` from every one of its versions, loading each
with its tags: 2-5 s at 10,000 versions on the 2 shared cores here (benchmarks/notes.md).
`search_registered_models` fetches the latest versions in one grouped query instead; filtered
to one name it returns the same tags and aliases. mlflow is imported by the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import RegisteredModel


def name_filter(model_name: str) -> str:
    """MLflow's filter string for exactly this name (quoted with what it does not contain)."""
    quote = '"' if "'" in model_name else "'"
    return f"name = {quote}{model_name}{quote}"


def registered_model(client: MlflowClient, model_name: str) -> RegisteredModel | None:
    """The registered model `model_name` with its tags and aliases; None if there is none."""
    found = client.search_registered_models(filter_string=name_filter(model_name), max_results=1)
    return found[0] if found else None
