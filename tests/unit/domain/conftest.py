"""Iris, preprocessed, trained and evaluated once for the domain tests (the template's defaults)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlpipeline.domain.dataset import load_iris_frame
from mlpipeline.domain.evaluation import (
    evaluate_model,
)
from mlpipeline.domain.params import Params
from mlpipeline.domain.preprocessing import preprocess
from mlpipeline.domain.training import train_model
from mlpipeline.files.params_yaml import load_params
from tests.support.repository import IRIS_PARAMS


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(IRIS_PARAMS)


@pytest.fixture(scope="module")
def processed(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    return preprocess(load_iris_frame(), params.preprocess)


@pytest.fixture(scope="module")
def model(params: Params, processed: tuple[pd.DataFrame, pd.DataFrame, Any]) -> Any:
    return train_model(processed[0], params.train)


@pytest.fixture(scope="module")
def evaluation(params: Params, processed: tuple[pd.DataFrame, pd.DataFrame, Any], model: Any):
    return evaluate_model(model, processed[1], params.evaluate)
