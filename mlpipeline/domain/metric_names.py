"""The headline metrics, by name and in the order every table shows them.

The evaluate stage writes them to metrics/metrics.json and MLflow under these names; the
report, the model card and `mlpipeline report exps` (`make exps`) read them from here.
"""

from __future__ import annotations

HEADLINE_METRICS = ("accuracy", "precision", "recall", "f1_score")
