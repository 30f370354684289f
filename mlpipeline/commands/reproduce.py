"""Rebuild a registered model or a training run from its lineage and compare it bit for bit.

    mlpipeline model reproduce                       # the champion of params.yaml
    mlpipeline model reproduce models:/iris_classifier/3
    mlpipeline model reproduce <run id> [--allow-dirty] [--keep]

The run's lineage tags (mlpipeline/tracking/lineage.py) name a commit or a DVC experiment
ref and the md5 of every output. The rebuild checks that revision out in a temporary `git
worktree` sharing this repository's DVC cache, restores the `.dvc`-tracked data, runs `dvc
repro --force` against a throw-away MLflow store, and compares every recorded hash and
metric. Exit 0 only when everything matches; 4 when something differs; 1 when the rebuild is
refused or fails.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from mlpipeline.commands.console import EXIT_DIFFERS, EXIT_OK, command, params_option
from mlpipeline.domain.errors import PipelineError
from mlpipeline.files.params_yaml import load_params
from mlpipeline.files.paths import ROOT, RUN_INFO
from mlpipeline.tool_env import tool_env
from mlpipeline.tracking import git, lineage, server, store
from mlpipeline.tracking import runs as tracking
from mlpipeline.tracking.failures import is_not_found, no_alias, store_failed

log = logging.getLogger("mlpipeline.reproduce")

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class Target:
    """What the user asked for: a run, or a model version by number or alias."""

    run_id: str | None = None
    model_name: str | None = None
    version: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What a run says about itself: where to rebuild it and what the rebuild must give."""

    run_id: str
    label: str  # how the user named it, for the report
    tags: dict[str, str]
    metrics: dict[str, float]

    @property
    def outputs(self) -> dict[str, str]:
        prefix = lineage.MD5_TAG_PREFIX
        return {
            key[len(prefix) :]: value
            for key, value in sorted(self.tags.items())
            if key.startswith(prefix)
        }


@dataclass(frozen=True)
class Check:
    name: str
    recorded: str
    rebuilt: str | None  # None: the rebuild did not produce it

    @property
    def matches(self) -> bool:
        return self.recorded == self.rebuilt


def parse_target(text: str) -> Target:
    """`models:/name@alias`, `models:/name/N`, or a 32-hex MLflow run id."""
    model = MODEL_URI.match(text)
    if model:
        return Target(model_name=model["name"], version=model["version"], alias=model["alias"])
    if RUN_ID.match(text):
        return Target(run_id=text)
    raise PipelineError(
        f"{text!r} is neither models:/<name>@<alias>, models:/<name>/<version> "
        "nor an MLflow run id (32 hex digits)"
    )


def compare_outputs(recorded: Mapping[str, str], rebuilt: Mapping[str, str | None]) -> list[Check]:
    return [Check(name, md5, rebuilt.get(name)) for name, md5 in recorded.items()]


def compare_metrics(recorded: Mapping[str, float], rebuilt: Mapping[str, float]) -> list[Check]:
    """Every metric the recorded run holds, exactly (same bytes in, same floats out)."""
    return [
        Check(
            f"metric {name}",
            repr(value),
            repr(rebuilt[name]) if name in rebuilt else None,
        )
        for name, value in sorted(recorded.items())
    ]


def format_report(recorded: Recorded, revision: str, checks: list[Check]) -> str:
    """The report printed to the user: a line per output, a summary of metrics, a verdict."""
    lines = [f"reproduced {recorded.label} at {revision}"]
    width = max((len(check.name) for check in checks), default=0)
    metrics = [check for check in checks if check.name.startswith("metric ")]
    for check in checks:
        if check in metrics and check.matches:
            continue
        if check.matches:
            lines.append(f"  match   {check.name:<{width}}  {check.recorded}")
        else:
            rebuilt = check.rebuilt or "(not produced)"
            lines.append(
                f"  DIFFERS {check.name:<{width}}  recorded {check.recorded}, rebuilt {rebuilt}"
            )
    matching = sum(check.matches for check in metrics)
    lines.append(f"  metrics: {matching} of {len(metrics)} match")
    differing = [check.name for check in checks if not check.matches]
    if differing:
        lines.append(f"DIFFERS: {', '.join(differing)}")
    else:
        lines.append(f"OK: all {len(checks)} outputs and metrics match bit for bit")
    return "\n".join(lines)


def _tool(args: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m dvc ...` with this interpreter (the project's environment)."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=dict(env), capture_output=True, text=True
    )


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    text = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return "\n".join(text[-lines:])


def load_recorded(target: Target, text: str, uri: str) -> Recorded:
    """Resolve the target in the user's store (read only) and read the run's lineage."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = target.run_id
    if run_id is None:
        name = str(target.model_name)  # a target without a run id names a model (parse_target)
        try:
            if target.alias is not None:
                version = client.get_model_version_by_alias(name, target.alias)
            else:
                version = client.get_model_version(name, str(target.version))
        except MlflowException as exc:
            if not no_alias(exc):
                raise  # a store that did not answer is not "no such version"
            raise PipelineError(f"no model version {text} in the MLflow store {uri}") from None
        if not version.run_id:
            raise PipelineError(f"{text} (version {version.version}) names no training run")
        run_id = version.run_id
        text = f"{text} (version {version.version}, run {run_id})"
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise
        raise PipelineError(f"no run {run_id} in the MLflow store {uri}") from None
    label = text if target.run_id is None else f"run {run_id}"
    return Recorded(run_id, label, dict(run.data.tags), dict(run.data.metrics))


def revision_to_build(recorded: Recorded, root: Path, allow_dirty: bool) -> str:
    """The commit or experiment ref to check out, or a refusal that says what to do."""
    tags = recorded.tags
    name = recorded.label
    if tags.get("orchestrator") == "zenml":
        raise PipelineError(
            f"{name} was trained by the ZenML pipeline: its data and models live in ZenML's "
            "artifact store, not as DVC outputs, so the run records no DVC output hashes to "
            "rebuild against. Train the same params with `dvc exp run -S ...` and reproduce "
            "that run."
        )
    if not recorded.outputs:
        raise PipelineError(
            f"{name} records no output hashes (tags md5.*): it was not trained by this "
            "pipeline's stages. Train it with `dvc repro --force train` and reproduce that run."
        )
    commit = tags.get("git_commit")
    if not commit:
        raise PipelineError(f"{name} records no git commit (tag git_commit)")
    if tags.get("git_dirty") != "false":
        why = tags.get("git_dirty_paths") or "unknown (not recorded)"
        if not allow_dirty:
            raise PipelineError(
                f"{name} was trained with uncommitted changes ({why}); the commit does not "
                "hold the code, params or data that made it. Pass --allow-dirty to rebuild "
                "it anyway (the result cannot be trusted to match)."
            )
        log.warning(
            "%s was trained with uncommitted changes (%s): rebuilding from %s with the "
            "recorded params.yaml; the result cannot be trusted to match",
            name,
            why,
            commit[:12],
        )
    experiment = tags.get("dvc_experiment")
    if experiment:
        ref = tags.get("dvc_experiment_ref") or lineage.experiment_ref(commit, experiment)
        if git.run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).returncode:
            raise PipelineError(
                f"experiment {experiment} of {name} is not in this clone ({ref}); fetch it "
                f"with `dvc exp pull <git remote> {experiment}`"
            )
        return ref
    if git.run(["cat-file", "-e", f"{commit}^{{commit}}"], root).returncode:
        raise PipelineError(
            f"commit {commit} of {name} is not in this clone; `git fetch` the branch that holds it"
        )
    return commit


@contextlib.contextmanager
def temporary_worktree(root: Path, revision: str, keep: bool = False) -> Iterator[Path]:
    """A detached `git worktree` of `revision` in a temporary folder, removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="reproduce-"))
    worktree = workdir / "worktree"
    try:
        added = git.run(["worktree", "add", "--detach", str(worktree), revision], root)
        if added.returncode:
            raise PipelineError(f"git worktree add {revision} failed: {_tail(added)}")
        yield worktree
    finally:
        if keep:
            log.info("kept the rebuild in %s (remove it with `git worktree remove`)", worktree)
        else:
            git.run(["worktree", "remove", "--force", str(worktree)], root)
            git.run(["worktree", "prune"], root)
            shutil.rmtree(workdir, ignore_errors=True)


def rebuild_env(store_uri: str) -> dict[str, str]:
    """The user's environment minus their stores, with a throw-away MLflow store."""
    return tool_env({tracking.TRACKING_URI_ENV: store_uri}, git_identity=None)


def share_cache(root: Path, worktree: Path, env: Mapping[str, str]) -> None:
    """Point the worktree at this repository's DVC cache (and its local remote settings)."""
    cache = _tool(["dvc", "cache", "dir"], root, env)
    if cache.returncode:
        raise PipelineError(f"`dvc cache dir` failed in {root}: {_tail(cache)}")
    local_config = root / ".dvc" / "config.local"
    if local_config.is_file():  # remote credentials stay local: copied, never committed
        shutil.copy2(local_config, worktree / ".dvc" / "config.local")
    configured = _tool(
        ["dvc", "config", "--local", "cache.dir", cache.stdout.strip()], worktree, env
    )
    if configured.returncode:
        raise PipelineError(f"could not share the DVC cache: {_tail(configured)}")


def restore_tracked_data(worktree: Path, env: Mapping[str, str]) -> None:
    """Check out the `.dvc`-tracked inputs from the cache, fetching from the remote if needed."""
    listed = git.run(["ls-files", "-z", "--", "*.dvc"], worktree).stdout
    pointers = [name for name in listed.split("\0") if name]
    if not pointers:
        return
    if _tool(["dvc", "checkout", *pointers], worktree, env).returncode == 0:
        return
    fetched = _tool(["dvc", "fetch", *pointers], worktree, env)
    checked = _tool(["dvc", "checkout", *pointers], worktree, env)
    if checked.returncode:
        raise PipelineError(
            f"data of {', '.join(pointers)} is neither in the DVC cache nor on the remote "
            f"(`dvc push` it from where it was trained): {_tail(fetched) or _tail(checked)}"
        )


def recorded_params(recorded: Recorded, dest: Path, uri: str) -> bool:
    """Write the params.yaml the run recorded into `dest`; False when it recorded none.

    The download goes to a folder of its own beside `dest`'s worktree, which is removed
    with the worktree's temporary folder.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    download_dir = dest.parent.parent / "recorded"
    download_dir.mkdir()
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=recorded.run_id,
            artifact_path=f"{lineage.ARTIFACT_DIR}/params.yaml",
            tracking_uri=uri,
            dst_path=str(download_dir),
        )
    except (MlflowException, OSError) as exc:
        if store_failed(exc):
            raise
        return False
    shutil.copyfile(path, dest)
    return True


def rebuild(recorded: Recorded, revision: str, root: Path, uri: str, keep: bool) -> list[Check]:
    """Run the pipeline at `revision` in a worktree and compare with what was recorded."""
    from mlflow import MlflowClient

    with temporary_worktree(root, revision, keep) as worktree:
        store = f"sqlite:///{worktree.parent / 'mlflow.db'}"
        env = rebuild_env(store)
        share_cache(root, worktree, env)
        if recorded.tags.get("git_dirty") != "false":
            recorded_params(recorded, worktree / "params.yaml", uri)
        restore_tracked_data(worktree, env)
        log.info("dvc repro --force in %s (MLflow store %s)", worktree, store)
        built = _tool(["dvc", "repro", "--force"], worktree, env)
        if built.returncode:
            raise PipelineError(f"`dvc repro` failed at {revision}:\n{_tail(built)}")

        rebuilt_outputs = {
            name: lineage.dvc_md5(worktree / name) if (worktree / name).exists() else None
            for name in recorded.outputs
        }
        checks = compare_outputs(recorded.outputs, rebuilt_outputs)
        run_info = worktree / RUN_INFO.relative_to(ROOT)
        rebuilt_metrics: dict[str, float] = {}
        if run_info.is_file():
            import json

            rebuilt_id = json.loads(run_info.read_text())["run_id"]
            client = MlflowClient(tracking_uri=store, registry_uri=store)
            rebuilt_metrics = dict(client.get_run(rebuilt_id).data.metrics)
        return checks + compare_metrics(recorded.metrics, rebuilt_metrics)


def reproduce(text: str, allow_dirty: bool = False, keep: bool = False, root: Path = ROOT) -> bool:
    """Rebuild what `text` names; print the report; True when everything matches."""
    target = parse_target(text)
    uri = tracking.tracking_uri()
    tracking.use_client_defaults()
    server.check_reachable(uri)
    store.require_existing(uri)
    from mlflow import MlflowClient

    store.settle(MlflowClient(tracking_uri=uri, registry_uri=uri))
    recorded = load_recorded(target, text, uri)
    revision = revision_to_build(recorded, root, allow_dirty)
    checks = rebuild(recorded, revision, root, uri, keep)
    print(format_report(recorded, revision, checks))
    if recorded.tags.get("git_dirty") != "false":
        print("NOTE: the run was trained with uncommitted changes; this result is not proof.")
    return all(check.matches for check in checks)


@command(
    "reproduce",
    help="Rebuild a model or run from its lineage and compare every output "
    "bit for bit. Exit 0: everything matches; 4: something differs; 1: refused or failed.",
)
@click.argument("target", required=False)
@click.option(
    "--allow-dirty",
    is_flag=True,
    help="rebuild a run trained with uncommitted changes (cannot be trusted to match)",
)
@click.option("--keep", is_flag=True, help="keep the temporary worktree")
@params_option
def reproduce_command(target: str | None, allow_dirty: bool, keep: bool, params: Path) -> int:
    """TARGET: models:/<name>@<alias>, models:/<name>/<version> or a run id (default: the
    champion of params.yaml, models:/<mlflow.registered_model_name>@<mlflow.champion_alias>)."""
    target = target or load_params(params).mlflow.champion_uri
    return EXIT_OK if reproduce(target, allow_dirty=allow_dirty, keep=keep) else EXIT_DIFFERS
