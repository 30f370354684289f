"""The Optuna study a sweep resumes: where it lives, what a trial draws, what is left over.

The study lives in a database: `sweeps.db` (SQLite, git-ignored) beside params.yaml unless
SWEEP_STORAGE (or `--storage`) names another, e.g. the team PostgreSQL. optuna is imported
only inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.search_space import Choice, Dimension, FloatRange, IntRange
from mlpipeline.files.paths import ROOT

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

STORAGE_ENV = "SWEEP_STORAGE"
DEFAULT_DATABASE = "sweeps.db"
# Study attributes: the MLflow parent run every sweep of the study logs under.
PARENT_RUN_ATTR = "mlflow_parent_run_id"
EXPERIMENT_ATTR = "dvc_experiment"


def storage_url(given: str | None = None, root: Path = ROOT) -> str:
    """`--storage`, else SWEEP_STORAGE, else the SQLite file sweeps.db in the repository."""
    return given or os.environ.get(STORAGE_ENV) or f"sqlite:///{root / DEFAULT_DATABASE}"


def open_study(url: str, name: str, direction: str) -> optuna.Study:
    """Create the study or load it to resume; the direction must match the stored one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Trials are asked for while others run: the constant liar keeps them apart.
    sampler = optuna.samplers.TPESampler(constant_liar=True, n_startup_trials=4)
    study = optuna.create_study(
        storage=url,
        study_name=name,
        direction=optuna.study.StudyDirection[direction.upper()],
        sampler=sampler,
        load_if_exists=True,
    )
    stored = study.direction.name.lower()
    if stored != direction:
        from mlpipeline.domain.errors import ParamsError

        raise ParamsError(
            f"study {name!r} in {_shown(url)} was made to {stored}, not {direction}: "
            "set sweep.direction back or name a new sweep.study_name"
        )
    return study


def settle_stale_trials(study: optuna.Study) -> list[int]:
    """Trials a killed sweep left RUNNING are FAIL: the next ones may take their place.

    One sweep per study at a time (docs/sweeps.md): a RUNNING trial seen at the start of a
    sweep belongs to none that is alive.
    """
    import optuna

    stale = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
    for trial in stale:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return [trial.number for trial in stale]


def suggest(trial: optuna.Trial, space: dict[str, Dimension]) -> dict[str, Any]:
    """Draw the trial's value for every searched key."""
    values: dict[str, Any] = {}
    for key, dimension in space.items():
        if isinstance(dimension, IntRange):
            low, high = dimension.int_
            values[key] = trial.suggest_int(key, low, high, step=dimension.step, log=dimension.log)
        elif isinstance(dimension, FloatRange):
            lowest, highest = dimension.float_
            values[key] = trial.suggest_float(
                key, lowest, highest, step=dimension.step, log=dimension.log
            )
        elif isinstance(dimension, Choice):
            # Optuna stores choices as they are; null and mixed types are fine for it.
            values[key] = trial.suggest_categorical(key, list(dimension.choice))
    return values


def tried_before(study: optuna.Study, values: dict[str, Any], number: int) -> int | None:
    """The number of a complete trial with exactly these values, if any (it is not rerun)."""
    wanted = json.dumps(values, sort_keys=True, default=str)
    for trial in study.get_trials(deepcopy=False, states=complete_states()):
        if (
            trial.number != number
            and json.dumps(trial.params, sort_keys=True, default=str) == wanted
        ):
            return trial.number
    return None


def complete_states() -> tuple[Any, ...]:
    import optuna

    return (optuna.trial.TrialState.COMPLETE,)


def _shown(url: str) -> str:
    """A storage URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
