"""Lineage: what a rebuild of a run needs (commit, experiment, params) and what it must match.

Every stage that writes into a training run records here, after its outputs are written:
the git commit the code came from, whether the code, params or data it depends on differed
from that commit (`git_dirty`), the DVC experiment and its git ref under `dvc exp run`, and
the md5 of each output as DVC computes it (tags `md5.<path>`). `mlpipeline model reproduce`
rebuilds from these and compares. mlflow and git are used only inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlpipeline.files import dvc_yaml
from mlpipeline.files.hashes import dvc_md5, file_md5
from mlpipeline.files.paths import ROOT, RUN_INFO
from mlpipeline.tracking import git

MD5_TAG_PREFIX = "md5."
ARTIFACT_DIR = "lineage"
# Set by DVC in the environment of the stages it runs under `dvc exp run`.
EXP_NAME_ENV = "DVC_EXP_NAME"
EXP_BASELINE_ENV = "DVC_EXP_BASELINE_REV"
EXPS_NAMESPACE = "refs/exps"
# Set by `mlpipeline model sweep` for its trials (docs/sweeps.md): the training run becomes a
# child of the sweep's parent run (MLflow's own tag) and names its study and trial.
SWEEP_PARENT_ENV = "MLPIPELINE_SWEEP_PARENT_RUN_ID"
SWEEP_STUDY_ENV = "MLPIPELINE_SWEEP_STUDY"
SWEEP_TRIAL_ENV = "MLPIPELINE_SWEEP_TRIAL"
# Tags that only some git states have; a later record removes them when they no longer hold.
STATE_TAGS = ("git_dirty_paths", "dvc_experiment", "dvc_experiment_baseline", "dvc_experiment_ref")


def experiment_ref(baseline: str, name: str) -> str:
    """The git ref DVC gives an experiment: refs/exps/<baseline[:2]>/<baseline[2:]>/<name>."""
    return f"{EXPS_NAMESPACE}/{baseline[:2]}/{baseline[2:]}/{name}"


def git_commit(root: Path = ROOT) -> str | None:
    """The commit the code came from (DVC's baseline inside `dvc exp run`)."""
    baseline = os.environ.get(EXP_BASELINE_ENV)
    if baseline:
        return baseline
    head = git.output(["rev-parse", "HEAD"], root)
    return head.strip() or None if head else None


def source_paths(root: Path = ROOT, orchestrator: str = "dvc") -> list[str]:
    """What the results depend on that git versions: dvc.yaml, params files, source deps.

    Source deps are the stage deps no stage produces (code, data/external); outputs and
    dvc.lock change with every run and say nothing about the recipe.
    """
    wanted = {"dvc.yaml", "params.yaml"}
    for spec in dvc_yaml.stages(root).values():
        wanted.update(dvc_yaml.deps(spec))
        wanted.update(dvc_yaml.params_files(spec))
    if orchestrator == "zenml":
        wanted.add("zenml_pipeline")
    return sorted(wanted - dvc_yaml.produced(root))


def _dvc_tracked_data_changed(root: Path, sources: list[str]) -> list[str]:
    """`.dvc` files under the source paths whose data no longer has the recorded md5."""
    import yaml

    listed = git.output(["ls-files", "-z", "--", *sources], root) or ""
    changed = []
    for name in filter(None, listed.split("\0")):
        if not name.endswith(".dvc"):
            continue
        pointer = yaml.safe_load((root / name).read_text()) or {}
        for out in pointer.get("outs", []):
            data = (root / name).parent / out["path"]
            if not data.exists() or dvc_md5(data) != out.get("md5"):
                changed.append(data.relative_to(root).as_posix())
    return changed


def dirty_paths(root: Path = ROOT, orchestrator: str = "dvc") -> list[str] | None:
    """Source paths that differ from what the recorded commit (or experiment) will hold.

    In a workspace run, any change counts. Under `dvc exp run` DVC commits the tracked
    changes (the `-S` params, edited code) into the experiment's ref, so only untracked
    files, which it leaves out, count. None when git cannot tell (no repository).
    """
    sources = [path for path in source_paths(root, orchestrator) if (root / path).exists()]
    status = git.output(["status", "--porcelain", "--untracked-files=all", "--", *sources], root)
    if status is None:
        return None
    in_experiment = bool(os.environ.get(EXP_NAME_ENV))
    changed = [
        line[3:]
        for line in status.splitlines()
        if line and (line.startswith("??") or not in_experiment)
    ]
    return changed + _dvc_tracked_data_changed(root, sources)


def git_tags(root: Path = ROOT, orchestrator: str = "dvc") -> dict[str, str]:
    """Commit, dirtiness and experiment of the code running now."""
    tags: dict[str, str] = {}
    commit = git_commit(root)
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    dirty = dirty_paths(root, orchestrator)
    if dirty is not None:
        tags["git_dirty"] = str(bool(dirty)).lower()
        if dirty:
            # MLflow tag values are limited; the first few names say enough.
            tags["git_dirty_paths"] = ", ".join(dirty[:20])[:1000]
    experiment = os.environ.get(EXP_NAME_ENV)
    if experiment:
        tags["dvc_experiment"] = experiment
        baseline = os.environ.get(EXP_BASELINE_ENV)
        if baseline:
            tags["dvc_experiment_baseline"] = baseline
            tags["dvc_experiment_ref"] = experiment_ref(baseline, experiment)
    return tags | sweep_tags()


def sweep_tags() -> dict[str, str]:
    """The parent run, study and trial number of a sweep's trial; {} outside a sweep."""
    parent = os.environ.get(SWEEP_PARENT_ENV)
    if not parent:
        return {}
    return {
        "mlflow.parentRunId": parent,
        "sweep_study": os.environ.get(SWEEP_STUDY_ENV, ""),
        "sweep_trial": os.environ.get(SWEEP_TRIAL_ENV, ""),
    }


def lineage_tags(train_data: Path, orchestrator: str, root: Path = ROOT) -> dict[str, str]:
    """Tags that tie a training run to its code, data and experiment."""
    return {
        "orchestrator": orchestrator,
        "train_data_md5": file_md5(train_data),
        **git_tags(root, orchestrator),
    }


def stage_files(stage: str, root: Path = ROOT) -> list[Path]:
    """The files a stage reads and writes that a rebuild must match (dvc.yaml, no code).

    The run-id file is left out: it names a new MLflow run every time.
    """
    spec = dvc_yaml.stages(root)[stage]
    produced = dvc_yaml.produced(root)
    names = [dep for dep in dvc_yaml.deps(spec) if dep in produced] + dvc_yaml.outputs(spec)
    run_info = RUN_INFO.relative_to(ROOT).as_posix()
    return [root / name for name in dict.fromkeys(names) if name != run_info]


def output_tags(outputs: Iterable[Path], root: Path = ROOT) -> dict[str, str]:
    """`md5.<path relative to the repository>` → DVC's md5, for each output."""
    return {
        f"{MD5_TAG_PREFIX}{output.relative_to(root).as_posix()}": dvc_md5(output)
        for output in outputs
        if output.exists()
    }


def record_stage(stage: str, run_id: str, registered: Any = None, root: Path = ROOT) -> None:
    """Tag the run with the md5 of the stage's data and outputs and the git state now.

    Called by a DVC stage after it wrote its outputs, with the tracking store configured.
    params.yaml and dvc.lock as they are now are logged under `lineage/` in the run. A
    `registered` model version (anything with `model_name` and `version`) gets the run's
    lineage tags too.
    """
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

    client = MlflowClient()
    tags = {**output_tags(stage_files(stage, root), root), **git_tags(root)}
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    # A stage rerun outside the experiment that trained the run (or now clean) must not
    # leave the old experiment ref or dirty paths behind.
    held = client.get_run(run_id).data.tags
    for key in sorted(set(STATE_TAGS) & set(held) - set(tags)):
        client.delete_tag(run_id, key)
    for name in ("params.yaml", "dvc.lock"):
        if (root / name).is_file():
            client.log_artifact(run_id, str(root / name), ARTIFACT_DIR)
    if registered is not None:
        tag_model_version(registered.model_name, str(registered.version), run_id)


def is_lineage_tag(key: str) -> bool:
    return key.startswith(MD5_TAG_PREFIX) or key in {
        "orchestrator",
        "train_data_md5",
        "git_commit",
        "git_dirty",
        *STATE_TAGS,
    }


def tag_model_version(model_name: str, version: str, run_id: str) -> None:
    """Copy the run's lineage tags onto the model version registered from it."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for key, value in client.get_run(run_id).data.tags.items():
        if is_lineage_tag(key):
            client.set_model_version_tag(model_name, version, key, value)
