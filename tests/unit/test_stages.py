"""The stage scripts' own checks."""

from __future__ import annotations

import pytest

from mlpipeline.domain.errors import PipelineError


def test_save_registers_only_the_model_that_holds_pipeline_pkl() -> None:
    """models/mlflow_run.json must name the logged model whose bytes models/pipeline.pkl has."""
    from stages.save import logged_model

    info = {"run_id": "abc", "model_uri": "models:/m-1", "pipeline_md5": "0" * 32}
    assert logged_model(info, "0" * 32) == "models:/m-1"
    with pytest.raises(PipelineError, match=r"is not the model MLflow run abc logged"):
        logged_model(info, "1" * 32)
    # Written by a training run of an older version of the pipeline: no model URI.
    with pytest.raises(PipelineError, match=r"dvc repro --force train"):
        logged_model({"run_id": "abc"}, "0" * 32)
