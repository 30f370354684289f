"""The DVC and git edges of retention (mlpipeline/domain/retention_plan.py): which runs a
checkout's outputs name, whether DVC would keep every kept version's data, DVC's own
`dvc gc` of the cache (the workspace, every branch, tag, commit and experiment kept), and
`dvc exp remove` of experiment refs. dvc runs as a subprocess of this interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from mlpipeline.domain.errors import TrackingError
from mlpipeline.domain.retention_plan import RunFact, VersionFact
from mlpipeline.files.paths import ROOT, RUN_INFO
from mlpipeline.tracking import git

# `dvc gc` keeps what any of these name: the workspace, every branch, tag, commit, experiment.
DVC_GC_KEEP = ["--workspace", "--all-branches", "--all-tags", "--all-commits", "--all-experiments"]


def protected_runs(root: Path = ROOT) -> set[str]:
    """Run ids that the workspace's and every branch's and tag's `models/mlflow_run.json`
    name: a checkout of them continues those runs."""
    run_info = RUN_INFO.relative_to(ROOT).as_posix()
    named: set[str] = set()
    workspace = root / run_info
    if workspace.is_file():
        named.add(str(json.loads(workspace.read_text()).get("run_id")))
    refs = git.output(["for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags"], root)
    cache = _dvc_cache_dir(root)
    for ref in (refs or "").split():
        lock_text = git.output(["show", f"{ref}:dvc.lock"], root)
        if not lock_text:
            continue
        for stage in (yaml.safe_load(lock_text) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                if out.get("path") != run_info or not out.get("md5"):
                    continue
                md5 = out["md5"]
                cached = cache / "files" / "md5" / md5[:2] / md5[2:]
                if cached.is_file():
                    named.add(str(json.loads(cached.read_text()).get("run_id")))
    return named


def _dvc(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, check=False
    )


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The line of a tool's output that says why it failed: its last one."""
    lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return lines[-1].strip() if lines else f"exit status {proc.returncode}"


def _dvc_cache_dir(root: Path) -> Path:
    found = _dvc(["cache", "dir"], root)
    if found.returncode:
        raise TrackingError(f"`dvc cache dir` failed in {root}: {last_line(found)}")
    return Path(found.stdout.strip())


def unreachable_commits(
    kept_versions: list[VersionFact], runs: list[RunFact], root: Path = ROOT
) -> list[str]:
    """Commits of kept versions that no branch, tag or experiment ref contains, and kept
    versions' experiment refs missing here: `dvc gc` would not keep their data, so the DVC
    cache is left alone while there are any."""
    commits: set[str] = set()
    missing_refs: set[str] = set()
    run_of = {run.run_id: run for run in runs}
    for version in kept_versions:
        run = run_of.get(version.run_id or "")
        if run and run.experiment_ref:  # kept with its experiment (--all-experiments)
            if not existing_refs([run.experiment_ref], root):
                missing_refs.add(run.experiment_ref)
        elif run and run.commit:
            commits.add(run.commit)
    contains = ["for-each-ref", "--count=1", "--contains"]
    return sorted(
        missing_refs | {c for c in commits if not (git.output([*contains, c], root) or "").strip()}
    )


def dvc_gc(root: Path, dry: bool) -> list[str]:
    """DVC's own gc of the local cache (`--dry`: list only); the objects it names."""
    proc = _dvc(["gc", *DVC_GC_KEEP, "--force", *(["--dry"] if dry else [])], root)
    if proc.returncode:
        raise TrackingError(f"`dvc gc` failed: {last_line(proc)}")
    return [
        line.removeprefix("Removing ").strip()
        for line in proc.stdout.splitlines()
        if line.startswith("Removing ")
    ]


def existing_refs(refs: list[str], root: Path = ROOT) -> list[str]:
    verify = ["rev-parse", "--verify", "--quiet"]
    return [ref for ref in refs if git.run([*verify, ref], root).returncode == 0]


def remove_experiment_refs(refs: list[str], root: Path = ROOT) -> None:
    """`dvc exp remove` of each ref that still exists."""
    refs = existing_refs(refs, root)
    if not refs:
        return
    removed = _dvc(["exp", "remove", *refs], root)
    if removed.returncode:
        raise TrackingError(
            f"`dvc exp remove` failed (rerun `mlpipeline model gc --yes` to finish): "
            f"{last_line(removed)}"
        )
