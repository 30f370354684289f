"""Who holds the champion alias: the promotion rules, pure (facts in, a decision out).

The MLflow side (reading the registry, moving the alias) is mlpipeline/tracking/model_versions.py;
the save stage and the ZenML save step call it. Nothing here imports MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlpipeline.domain.errors import PipelineError

PROMOTE_COMMAND = "mlpipeline model promote"
# The alias `promote --challenger` moves and `score --with-challenger` reads; it never serves.
CHALLENGER_ALIAS = "challenger"


def exploratory_reason(orchestrator: str | None) -> str | None:
    """Why a version trained by `orchestrator` may never hold the alias; None when it may.

    The rule for exploratory runs, one for both orchestrators: the alias only goes to a
    version `mlpipeline model reproduce` can rebuild from DVC's lineage. A ZenML run's data
    and model live in ZenML's artifact store, so it cannot; a `--temp` or queued DVC
    experiment can (its experiment ref), and competes when `save.experiments_compete` says so.
    """
    if orchestrator != "zenml":
        return None
    return (
        "it was trained by the ZenML pipeline, an exploratory run that `mlpipeline model "
        "reproduce` cannot rebuild (its data and model live in ZenML's artifact store), and "
        "only a version that can be rebuilt holds the alias; to serve these params, train "
        "them in the DVC workspace (`dvc exp run -S ...`) and promote that version"
    )


@dataclass(frozen=True)
class Candidate:
    """A freshly registered version and what its score means.

    Args:
        inputs: the input signature as (column, type) pairs.
        evaluation_data: a fingerprint of the rows the score was computed on (dataset and
            test split); None when unknown.
        temp_experiment: the DVC experiment's name when it ran in a temporary copy
            (`--temp`, queue), which does not change the workspace.
        orchestrator: what trained it (the run's `orchestrator` tag: `dvc`, `zenml`).
    """

    version: str
    score: float
    inputs: Sequence[tuple[str, str]]
    evaluation_data: str | None
    temp_experiment: str | None = None
    orchestrator: str | None = None


@dataclass(frozen=True)
class Champion:
    """The version that holds the alias now; `score` is None if it has none for the metric.

    `loadable` is False when its model can no longer be read (its artifacts deleted, a moved
    store): it cannot serve, so it does not stand in the way of a version that can.
    """

    version: str
    score: float | None
    inputs: Sequence[tuple[str, str]]
    evaluation_data: str | None
    loadable: bool = True


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str


@dataclass(frozen=True)
class Registration:
    """A version registered (or found registered) from a training run, and the gate's verdict."""

    model_name: str
    version: str
    promoted: bool
    reason: str
    reused: bool = False


def decision_line(registration: Registration, alias: str) -> str:
    """The log line that says where the new version stands: `... now/not @champion: why`."""
    verdict = "now" if registration.promoted else "not"
    again = " (registered earlier from this run)" if registration.reused else ""
    return (
        f"registered {registration.model_name} version {registration.version}{again}; "
        f"{verdict} @{alias}: {registration.reason}"
    )


def champion_score(metrics: dict[str, Any], metric: str) -> float:
    """The score `save.champion_metric` names, from metrics.json."""
    value = metrics.get(metric)
    if not isinstance(value, int | float):
        choices = sorted(key for key, val in metrics.items() if isinstance(val, int | float))
        raise PipelineError(
            f"save.champion_metric: {metric!r} is not a metric in metrics.json; "
            f"choose one of: {', '.join(choices)}"
        )
    return float(value)


def same_data(candidate: Candidate, champion: Champion) -> bool:
    """Whether both scores were computed on the same rows (dataset and test split)."""
    return candidate.evaluation_data is not None and (
        candidate.evaluation_data == champion.evaluation_data
    )


def _columns(inputs: Sequence[tuple[str, str]], limit: int = 6) -> str:
    names = [name for name, _ in inputs]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} columns)" if len(names) > limit else "")


def decide(
    candidate: Candidate,
    champion: Champion | None,
    min_score: float,
    experiments_compete: bool = False,
) -> Decision:
    """Whether `candidate` takes the alias, and why (the save log line says it).

    It takes it when its score reaches `min_score` and beats the champion's (a tie keeps the
    alias, whichever orchestrator trained the version), and
    only if the two are comparable: the same input columns (else the served model would
    reject the requests the champion answers) and scores computed on the same data (a
    score on another dataset or test split says nothing about which model is better).
    A `--temp` or queued experiment competes only when `experiments_compete` is set; a
    ZenML-trained version never does (`exploratory_reason`).
    """
    score, version = candidate.score, candidate.version
    promote = f"`{PROMOTE_COMMAND} {version}`"
    if champion is not None and champion.version == version:
        return Decision(True, f"version {version} already holds the alias")
    if score < min_score:
        return Decision(False, f"score {score:.4f} is below save.min_score {min_score:.4f}")
    exploratory = exploratory_reason(candidate.orchestrator)
    if exploratory is not None:
        return Decision(False, f"score {score:.4f}, but {exploratory}")
    if candidate.temp_experiment and not experiments_compete:
        return Decision(
            False,
            f"experiment {candidate.temp_experiment} ran outside the workspace (--temp or "
            "queue) and save.experiments_compete is false; to serve it, "
            f"`dvc exp apply {candidate.temp_experiment}` and {promote}",
        )
    if champion is None:
        return Decision(
            True, f"score {score:.4f} reaches {min_score:.4f} and there is no champion yet"
        )
    if not champion.loadable:
        return Decision(
            True,
            f"score {score:.4f} reaches {min_score:.4f} and champion version "
            f"{champion.version}'s model cannot be loaded",
        )
    if tuple(map(tuple, candidate.inputs)) != tuple(map(tuple, champion.inputs)):
        return Decision(
            False,
            f"its input columns ({_columns(candidate.inputs)}) differ from champion version "
            f"{champion.version}'s ({_columns(champion.inputs)}), whose requests it would "
            "reject; register it under its own model name "
            "(`-S mlflow.registered_model_name=<name>`), where it becomes that model's champion",
        )
    if not same_data(candidate, champion):
        return Decision(
            False,
            f"score {score:.4f} was computed on other data (dataset or test split) than "
            f"champion version {champion.version}'s, so the two are not comparable; "
            f"to serve it anyway, {promote}",
        )
    if champion.score is None:
        return Decision(
            False,
            f"champion version {champion.version} has no score for this metric to compare; "
            f"to serve this one, {promote}",
        )
    if score < champion.score:
        return Decision(
            False, f"score {score:.4f} is worse than the champion's {champion.score:.4f}"
        )
    if score == champion.score:
        # Whichever orchestrator trained it: an equal score is no reason to change what serves.
        return Decision(
            False,
            f"score {score:.4f} ties the champion's {champion.score:.4f}, and a tie keeps the "
            f"alias where it is; to serve this one, {promote}",
        )
    return Decision(
        True, f"score {score:.4f} reaches {min_score:.4f} and beats {champion.score:.4f}"
    )


def lower_score_warning(
    metric: str, version: str, score: float | None, before: str | None, before_score: float | None
) -> str | None:
    """What to say when a hand-made move gives the alias to a version scoring below the one
    that held it; None when it does not (or a score is unknown)."""
    if before is None or before == version or score is None or before_score is None:
        return None
    if score >= before_score:
        return None
    return (
        f"version {version} scores {score:.4f} ({metric}), below the {before_score:.4f} of "
        f"version {before}, which held the alias"
    )
