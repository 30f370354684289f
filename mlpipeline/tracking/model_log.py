"""What a training run holds, for every orchestrator: params, lineage tags, the deployable
pipeline as the run's one logged model, the drift reference and the data it saw; then the
evaluation's metrics and figures. The DVC stages and the ZenML steps open these two runs the
same way; mlflow is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlpipeline.files import paths
from mlpipeline.tracking import datasets, drift_reference, runs

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Run

# Models are logged in skops format (safe to load), which loads only the types it is told to
# trust: tree node storage, which skops does not trust by default, and the pipeline's input
# guard (mlpipeline/domain/model_guard.py, shipped with the model). This pipeline made both itself.
GUARD_TYPE = "mlpipeline.domain.model_guard.InputGuard"
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree", GUARD_TYPE]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, the names params and metrics get in MLflow."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def model_requirements() -> list[str]:
    """What a served model needs: scikit-learn, skops and mlflow, pinned as installed.

    Without this MLflow exports the whole project lock (DVC, ZenML, ...) into the model.
    """
    import mlflow.sklearn

    return mlflow.sklearn.get_default_pip_requirements(include_skops=True)


def _guard_code(folder: Path) -> Path:
    """The `mlpipeline` package holding only the input guard, shipped with the model."""
    source = Path(__file__).resolve().parent.parent
    package = folder / "mlpipeline"
    for name in ("__init__.py", "domain/__init__.py", "domain/model_guard.py"):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, package / name)
    return package


def log_training(
    params: Mapping[str, Any],
    pipeline: Any,
    example: pd.DataFrame,
    tags: Mapping[str, str],
) -> str:
    """Log params, lineage tags and the deployable pipeline to the active run; return its URI.

    This is the run's one logged model (`models:/<model id>`): save registers it as it is.
    `example` holds raw feature rows; its first 5 give the signature and the input example.
    """
    import mlflow
    from mlflow.models import infer_signature

    mlflow.log_params({key: str(value) for key, value in flatten(params).items()})
    mlflow.set_tags(dict(tags))
    # A few rows give the same schema as all of them (dtypes only) without predicting the
    # whole training set, which is seconds at a million rows.
    sample = example.head(5)
    signature = infer_signature(sample, pipeline.predict(sample))
    with tempfile.TemporaryDirectory() as folder:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=sample,
            code_paths=[str(_guard_code(Path(folder)))],
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=model_requirements(),
        )
    return info.model_uri


def log_evaluation(
    metrics: Mapping[str, Any],
    images: Mapping[str, bytes],
    settings: Mapping[str, Any],
) -> None:
    """Log metrics and PNG images (name -> bytes, logged as `plots/<name>.png`) to the run.

    Evaluation settings are tags, not params: evaluate may run again for the same training
    run with other settings, and MLflow params cannot change once logged.
    """
    import mlflow

    mlflow.log_metrics(
        {
            key: float(value)
            for key, value in flatten(metrics).items()
            if isinstance(value, int | float)
        }
    )
    mlflow.set_tags({key: str(value) for key, value in flatten(settings).items()})
    # The bytes the caller rendered once, so the run holds exactly the files plots/ holds.
    with tempfile.TemporaryDirectory() as folder:
        for name, png in images.items():
            (Path(folder) / f"{name}.png").write_bytes(png)
        mlflow.log_artifacts(folder, artifact_path="plots")


class Table(NamedTuple):
    """A table a run saw, with the md5 of the file it is (or would be, under DVC)."""

    frame: pd.DataFrame
    md5: str


@contextlib.contextmanager
def training_run(
    run_name: str | None,
    params: Mapping[str, Any],
    pipeline: Any,
    *,
    example: pd.DataFrame,
    reference: Mapping[str, Any],
    tags: Mapping[str, str],
    raw: Table,
    train: Table,
) -> Iterator[tuple[Run, str]]:
    """Open the training run and log what it holds; yield it and its model's URI.

    `example` holds raw feature rows (the signature's), `reference` the drift reference
    scoring compares batches with. A caller writes its outputs inside the block, so a
    failure writing them ends the run FAILED.
    """
    with runs.mlflow_run(run_name=run_name) as run:
        model_uri = log_training(params, pipeline, example, tags)
        drift_reference.log_reference(reference)
        load = params.get("load") or {}  # the user's own table, if the data came from one
        datasets.log_source(str(load.get("source")), load.get("csv_path"))
        datasets.log_table(raw.frame, paths.RAW_DATA, "raw", raw.md5)
        datasets.log_table(train.frame, paths.TRAIN_SET, "training", train.md5)
        yield run, model_uri


@contextlib.contextmanager
def evaluation_run(
    run_id: str,
    metrics: Mapping[str, Any],
    images: Mapping[str, bytes],
    settings: Mapping[str, Any],
    test: Table,
) -> Iterator[None]:
    """Resume the training run and log the evaluation (metrics, figures, the test split)."""
    with runs.mlflow_run(run_id=run_id):
        log_evaluation(metrics, images, settings)
        datasets.log_table(test.frame, paths.TEST_SET, "testing", test.md5)
        yield
