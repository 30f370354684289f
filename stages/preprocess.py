"""Stage 2, preprocess: stratified split and a scaler fitted on the training split only."""

from __future__ import annotations

import logging

from mlpipeline.domain.params import Params
from mlpipeline.domain.preprocessing import preprocess
from mlpipeline.files import paths, tables
from mlpipeline.files.outputs import staged_outputs

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    """Split and scale data/raw/dataset.csv into data/processed/ and models/scaler.pkl."""
    train, test, scaler = preprocess(tables.read_table(paths.RAW_DATA), params.preprocess)
    with staged_outputs() as outputs:
        outputs.table(paths.TRAIN_SET, train)
        outputs.table(paths.TEST_SET, test)
        outputs.pickle(paths.SCALER, scaler)
    log.info("%d train / %d test rows, %s scaler", len(train), len(test), params.preprocess.scaler)


if __name__ == "__main__":
    from mlpipeline.runner import run_stage

    run_stage("preprocess", main)
