"""Data in MLflow's own terms: the tables a run used, logged as dataset inputs.

Each input names its file (the source, relative to the repository for the pipeline's own
data), carries the md5 DVC records for it as its digest and the columns as its schema, and
a context: raw, training, testing (the pipeline) or scoring. The MLflow UI's runs table then
shows which data each run used. mlflow is imported only inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlpipeline.files.paths import ROOT

# The context of the user's own table, beside the pipeline's raw, training and testing.
SOURCE_CONTEXT = "source"

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.data.dataset import Dataset


def _source_uri(path: Path, root: Path) -> str:
    """The pipeline's files by their path in the repository; anything else absolute."""
    resolved = path.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def log_table(frame: pd.DataFrame, path: Path, context: str, md5: str, root: Path = ROOT) -> None:
    """Log `frame`, read from `path`, as an input of the active run (with its row count)."""
    from mlflow.data.pandas_dataset import from_pandas

    # Registered by MLflow at import time, so invisible to a type checker.
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    dataset = from_pandas(
        frame,
        source=LocalArtifactDatasetSource(_source_uri(path, root)),
        name=path.name,
        digest=md5,
    )
    _log_input(dataset, context)


def log_file(path: Path, context: str, md5: str, sample: pd.DataFrame, root: Path = ROOT) -> None:
    """Log a file too large to hold in memory as an input; `sample` rows give its schema."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]
    from mlflow.models import infer_signature

    dataset = MetaDataset(  # type: ignore[abstract]  # MLflow's own class, `profile` optional
        LocalArtifactDatasetSource(_source_uri(path, root)),
        name=path.name,
        digest=md5,
        schema=infer_signature(sample).inputs,
    )
    _log_input(dataset, context)


def log_source(source: str, csv_path: str | None, root: Path = ROOT) -> None:
    """Log the user's own table (`load.source: csv`) as the run's `source` input, with its md5,
    so the run and the model card name the file under data/external/ a model came from."""
    import pandas as pd

    from mlpipeline.files.hashes import file_md5

    if source != "csv" or not csv_path:
        return
    path = root / csv_path
    log_file(path, SOURCE_CONTEXT, file_md5(path), pd.read_csv(path, nrows=5), root)


def _log_input(dataset: Dataset, context: str) -> None:
    """Log a dataset input; a second try when another run created the same dataset at once.

    MLflow stores each dataset once (a unique key on experiment, name and digest): two runs
    logging a new one together (a sweep's parallel trials) race to insert it, and the loser's
    insert fails. Its second try finds the dataset the winner stored.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.log_input(dataset, context=context)
    except MlflowException:
        mlflow.log_input(dataset, context=context)
