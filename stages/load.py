"""Stage 1, load: the raw dataset (Iris, the user's CSV, or synthetic) → data/raw/dataset.csv."""

from __future__ import annotations

import logging

from mlpipeline.domain.dataset import TARGET, load_dataset
from mlpipeline.domain.params import Params
from mlpipeline.files import paths, tables
from mlpipeline.files.outputs import write_table
from mlpipeline.tracking import access, runs

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    """Load the raw dataset named in params.yaml and write data/raw/dataset.csv."""
    # On a team server, an account that may not write stops here, before any work.
    access.check_can_write(
        runs.tracking_uri(), params.mlflow.experiment_name, params.mlflow.registered_model_name
    )
    table = None
    if params.load.source == "csv":
        table = tables.read_user_csv(paths.ROOT / str(params.load.csv_path))
    frame = load_dataset(params.load, table)
    write_table(paths.RAW_DATA, frame)
    log.info(
        "%d rows, %d features, %d classes → %s",
        len(frame),
        frame.shape[1] - 1,
        frame[TARGET].nunique(),
        paths.RAW_DATA.relative_to(paths.ROOT),
    )


if __name__ == "__main__":
    from mlpipeline.runner import run_stage

    run_stage("load", main)
