"""Every path the pipeline reads or writes, derived from the repository root."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PARAMS = ROOT / "params.yaml"
DVC_LOCK = ROOT / "dvc.lock"

EXTERNAL_DIR = ROOT / "data" / "external"
RAW_DATA = ROOT / "data" / "raw" / "dataset.csv"
TRAIN_SET = ROOT / "data" / "processed" / "train.parquet"
TEST_SET = ROOT / "data" / "processed" / "test.parquet"

SCALER = ROOT / "models" / "scaler.pkl"
CLASSIFIER = ROOT / "models" / "classifier.pkl"
RUN_INFO = ROOT / "models" / "mlflow_run.json"
PIPELINE = ROOT / "models" / "pipeline.pkl"

METRICS = ROOT / "metrics" / "metrics.json"
PLOTS_DIR = ROOT / "plots"
PREDICTIONS_PLOT = PLOTS_DIR / "predictions.csv"
ROC_DIR = PLOTS_DIR / "roc"
PRECISION_RECALL_DIR = PLOTS_DIR / "precision_recall"
FEATURE_IMPORTANCE_PLOT = PLOTS_DIR / "feature_importance.csv"
IMAGES_DIR = PLOTS_DIR / "images"


def workspace_root(root: Path = ROOT) -> Path:
    """The user's repository, also when DVC runs us in a copy under `.dvc/tmp/exps/`.

    `dvc exp run --temp` and queued experiments execute in `<repo>/.dvc/tmp/exps/<tmpdir>`;
    anything that must outlive that copy (the embedded MLflow store) belongs to `<repo>`.
    """
    parts = root.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root
