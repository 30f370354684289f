"""Stage 4, evaluate: test-split metrics, curves and figures for DVC and MLflow."""

from __future__ import annotations

import logging

from mlpipeline.domain.evaluation import evaluate_model, file_stem, png_images, render_figures
from mlpipeline.domain.params import Params
from mlpipeline.files import hashes, paths, pickles, tables
from mlpipeline.files.outputs import read_json, staged_outputs
from mlpipeline.tracking import lineage, model_log, runs

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    """Evaluate models/classifier.pkl → metrics/metrics.json, plots/, and the MLflow run."""
    runs.configure(params.mlflow.experiment_name)
    run_id = read_json(paths.RUN_INFO)["run_id"]
    model = pickles.load_object(paths.CLASSIFIER)
    test = tables.read_table(paths.TEST_SET)
    evaluation = evaluate_model(model, test, params.evaluate)
    images = png_images(render_figures(evaluation, params.evaluate.top_features))
    # Outputs are written inside the run, so a failure writing them ends the run FAILED.
    with model_log.evaluation_run(
        run_id,
        evaluation.metrics,
        images,
        {"evaluate": params.evaluate.model_dump()},
        model_log.Table(test, hashes.file_md5(paths.TEST_SET)),
    ):
        with staged_outputs() as outputs:
            outputs.json(paths.METRICS, evaluation.metrics)
            outputs.table(paths.PREDICTIONS_PLOT, evaluation.predictions)
            outputs.table(
                paths.FEATURE_IMPORTANCE_PLOT,
                evaluation.feature_importance.head(params.evaluate.top_features),
            )
            for folder, curves in (
                (paths.ROC_DIR, evaluation.roc),
                (paths.PRECISION_RECALL_DIR, evaluation.precision_recall),
            ):
                curves_dir = outputs.folder(folder)
                for label, curve in curves.items():
                    curve.to_csv(curves_dir / f"{file_stem(label)}.csv", index=False)
            images_dir = outputs.folder(paths.IMAGES_DIR)
            for name, png in images.items():
                (images_dir / f"{name}.png").write_bytes(png)
        lineage.record_stage("evaluate", run_id)
    log.info(
        "accuracy %.4f → %s", evaluation.metrics["accuracy"], paths.METRICS.relative_to(paths.ROOT)
    )


if __name__ == "__main__":
    from mlpipeline.runner import run_stage

    run_stage("evaluate", main)
