"""Reproduce a model from its lineage: real git worktrees, `dvc repro` and MLflow stores."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlpipeline.commands.reproduce import (
    Check,
    Recorded,
    Target,
    compare_metrics,
    compare_outputs,
    parse_target,
    revision_to_build,
)
from mlpipeline.domain.errors import PipelineError
from mlpipeline.tool_env import tool_env
from mlpipeline.tracking import lineage
from tests.support.repository import EVALUATE_OUTPUTS, REPO, TRAINING_OUTPUTS, clone_built
from tests.support.tools import run

CHAMPION = "models:/iris_classifier@champion"
# Every output a training run's stages record, besides the run-id file.
RECORDED_OUTPUTS = [*TRAINING_OUTPUTS, *EVALUATE_OUTPUTS]


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def store_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def store_state(uri: str) -> tuple[int, int]:
    """How many runs and model versions the store holds."""
    mlflow_client = client(uri)
    experiments = [exp.experiment_id for exp in mlflow_client.search_experiments()]
    runs = mlflow_client.search_runs(experiments, max_results=10_000)
    return len(runs), len(mlflow_client.search_model_versions(max_results=10_000))


def reproduce(root: Path, *args: str, env: dict[str, str] | None = None):
    return run(
        ["python", "-m", "mlpipeline", "model", "reproduce", *args], cwd=root, env=env, check=False
    )


def run_id_of(root: Path) -> str:
    return yaml.safe_load((root / "models/mlflow_run.json").read_text())["run_id"]


def worktrees(root: Path) -> list[str]:
    listed = run(["git", "worktree", "list", "--porcelain"], cwd=root).stdout
    return [line for line in listed.splitlines() if line.startswith("worktree ")]


# --- pure pieces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        (CHAMPION, Target(model_name="iris_classifier", alias="champion")),
        ("models:/iris_classifier/3", Target(model_name="iris_classifier", version="3")),
        ("0123456789abcdef0123456789abcdef", Target(run_id="0123456789abcdef0123456789abcdef")),
    ],
)
def test_parse_target(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["models:/iris_classifier", "runs:/abc/model", "champion", ""])
def test_parse_target_refuses_what_it_cannot_name(text: str) -> None:
    with pytest.raises(PipelineError, match="models:/<name>@<alias>"):
        parse_target(text)


def test_compare_names_what_differs_and_what_is_missing() -> None:
    checks = compare_outputs(
        {"models/a.pkl": "1", "models/b.pkl": "2", "plots/c": "3.dir"},
        {"models/a.pkl": "1", "models/b.pkl": "9", "plots/c": None},
    )
    assert checks == [
        Check("models/a.pkl", "1", "1"),
        Check("models/b.pkl", "2", "9"),
        Check("plots/c", "3.dir", None),
    ]
    assert [check.matches for check in checks] == [True, False, False]
    metrics = compare_metrics({"accuracy": 0.9, "f1": 0.5}, {"accuracy": 0.9})
    assert [check.matches for check in metrics] == [True, False]


# --- what a run records ------------------------------------------------------------


def test_dvc_md5_is_the_hash_dvc_lock_holds(built_project: Path) -> None:
    lock = yaml.safe_load((built_project / "dvc.lock").read_text())
    outs = {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }
    assert set(RECORDED_OUTPUTS) <= set(outs)
    for name in RECORDED_OUTPUTS:
        assert lineage.dvc_md5(built_project / name) == outs[name], name


def test_dirty_means_a_source_dependency_differs_from_the_commit(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(lineage.EXP_NAME_ENV, raising=False)
    assert lineage.dirty_paths(project) == []
    # Outputs and dvc.lock change with every run: not a difference in the recipe.
    (project / "dvc.lock").write_text("schema: '2.0'\n")
    (project / "notes.txt").write_text("not a dependency\n")
    assert lineage.dirty_paths(project) == []

    with (project / "stages/train.py").open("a") as handle:
        handle.write("# edited\n")
    (project / "data/external/extra.csv").write_text("a,target\n1,x\n")
    assert lineage.dirty_paths(project) == ["stages/train.py", "data/external/extra.csv"]
    # Under `dvc exp run` the experiment commit holds tracked edits; untracked files it omits.
    monkeypatch.setenv(lineage.EXP_NAME_ENV, "exp-1")
    assert lineage.dirty_paths(project) == ["data/external/extra.csv"]


def test_dirty_sees_dvc_tracked_data_changed_without_dvc_add(project: Path) -> None:
    env = tool_env()
    table = project / "data/external/table.csv"
    table.write_text("a,target\n1,x\n")
    run(["dvc", "add", "data/external/table.csv"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    run(["git", "commit", "-qm", "table"], cwd=project, env=env)
    assert lineage.dirty_paths(project) == []
    table.write_text("a,target\n2,x\n")
    assert lineage.dirty_paths(project) == ["data/external/table.csv"]


def test_importing_reproduce_loads_no_heavy_library() -> None:
    code = (
        "import sys, mlpipeline.commands.reproduce, mlpipeline.tracking.lineage\n"
        "heavy = {'mlflow', 'dvc', 'sklearn', 'zenml'} & set(sys.modules)\n"
        "assert not heavy, sorted(heavy)\n"
    )
    run(["python", "-c", code], cwd=REPO)


# --- refusals, before any rebuild --------------------------------------------------


LINEAGE = {"git_dirty": "false", "orchestrator": "dvc", "md5.models/pipeline.pkl": "0" * 32}


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({**LINEAGE, "git_commit": "f" * 40}, f"commit {'f' * 40} .* is not in this clone"),
        (
            {**LINEAGE, "git_commit": "HEAD", "dvc_experiment": "gone-exp"},
            r"experiment gone-exp .* `dvc exp pull <git remote> gone-exp`",
        ),
        ({**LINEAGE, "git_commit": "HEAD", "git_dirty": "true"}, "--allow-dirty"),
        ({"git_commit": "HEAD", "git_dirty": "false"}, "records no output hashes"),
        ({**LINEAGE, "git_commit": "HEAD", "orchestrator": "zenml"}, "ZenML pipeline"),
    ],
    ids=["commit-missing", "experiment-missing", "dirty", "no-lineage", "zenml"],
)
def test_refusals_say_what_to_do(built_project: Path, tags: dict[str, str], message: str) -> None:
    head = run(["git", "rev-parse", "HEAD"], cwd=built_project).stdout.strip()
    tags = {key: head if value == "HEAD" else value for key, value in tags.items()}
    recorded = Recorded("0" * 32, "the run", tags, {})
    with pytest.raises(PipelineError, match=message):
        revision_to_build(recorded, built_project, allow_dirty=False)


def test_dirty_runs_are_rebuilt_at_their_commit_when_allowed(built_project: Path) -> None:
    head = run(["git", "rev-parse", "HEAD"], cwd=built_project).stdout.strip()
    recorded = Recorded(
        "0" * 32, "the run", {**LINEAGE, "git_commit": head, "git_dirty": "true"}, {}
    )
    assert revision_to_build(recorded, built_project, allow_dirty=True) == head


@pytest.mark.integration
def test_unknown_model_or_run_is_refused(built_project: Path) -> None:
    proc = reproduce(built_project, "models:/no_such_model@champion")
    assert proc.returncode == 1
    assert "no model version models:/no_such_model@champion" in proc.stderr
    assert len(worktrees(built_project)) == 1


# --- rebuilds ------------------------------------------------------------------------


@pytest.mark.integration
def test_champion_rebuilds_bit_for_bit_and_the_store_gains_nothing(built_project: Path) -> None:
    uri = store_uri(built_project)
    version = client(uri).get_model_version_by_alias("iris_classifier", "champion")
    run_tags = client(uri).get_run(version.run_id).data.tags
    # The version carries its run's lineage; that of the files the workspace holds when
    # they came from that run (other tests may have moved the alias and put files back).
    for name in RECORDED_OUTPUTS:
        assert version.tags[f"md5.{name}"] == run_tags[f"md5.{name}"], name
        if run_id_of(built_project) == version.run_id:
            assert version.tags[f"md5.{name}"] == lineage.dvc_md5(built_project / name), name
    assert version.tags["git_dirty"] == "false"
    before = store_state(uri), worktrees(built_project)

    proc = reproduce(built_project, CHAMPION)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in RECORDED_OUTPUTS:
        assert f"match   {name} " in proc.stdout, proc.stdout
    assert "DIFFERS" not in proc.stdout
    assert "OK: all" in proc.stdout
    assert (store_state(uri), worktrees(built_project)) == before


@pytest.fixture(scope="module")
def experiment(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone with an uncommitted `dvc exp run -S train.n_estimators=37`, registered."""
    root = clone_built(built_project, tmp_path_factory.mktemp("exp") / "project")
    run(["dvc", "exp", "run", "-S", "train.n_estimators=37"], cwd=root)
    return root


@pytest.mark.slow
@pytest.mark.integration
def test_experiment_run_rebuilds_from_its_ref(experiment: Path) -> None:
    run_id = run_id_of(experiment)
    tags = client(store_uri(experiment)).get_run(run_id).data.tags
    assert tags["dvc_experiment_ref"].startswith("refs/exps/")
    assert tags["git_dirty"] == "false"
    before = store_state(store_uri(experiment))

    proc = reproduce(experiment, run_id)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"at {tags['dvc_experiment_ref']}" in proc.stdout
    assert "match   models/classifier.pkl" in proc.stdout
    assert store_state(store_uri(experiment)) == before


@pytest.mark.slow
@pytest.mark.integration
def test_an_altered_hash_is_named_and_fails(experiment: Path) -> None:
    run_id = run_id_of(experiment)
    mlflow_client = client(store_uri(experiment))
    key = "md5.models/pipeline.pkl"
    true_md5 = mlflow_client.get_run(run_id).data.tags[key]
    mlflow_client.set_tag(run_id, key, "0" * 32)
    try:
        proc = reproduce(experiment, run_id)
    finally:
        mlflow_client.set_tag(run_id, key, true_md5)

    assert proc.returncode == 4  # differs: its own status, not an error's
    differs = rf"DIFFERS models/pipeline.pkl +recorded {'0' * 32}, rebuilt {true_md5}\n"
    assert re.search(differs, proc.stdout), proc.stdout
    assert "DIFFERS: models/pipeline.pkl" in proc.stdout
    assert "match   models/classifier.pkl" in proc.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_a_run_trained_with_uncommitted_code_is_refused_without_the_flag(
    built_project: Path, tmp_path: Path
) -> None:
    root = clone_built(built_project, tmp_path / "project")
    with (root / "stages/train.py").open("a") as handle:
        handle.write("# an uncommitted edit\n")
    run(["dvc", "repro"], cwd=root)
    run_id = run_id_of(root)
    assert client(store_uri(root)).get_run(run_id).data.tags["git_dirty_paths"] == (
        "stages/train.py"
    )

    refused = reproduce(root, run_id)
    assert refused.returncode == 1
    assert "uncommitted changes (stages/train.py)" in refused.stderr
    assert "--allow-dirty" in refused.stderr

    # A comment changes no output: rebuilt anyway, it matches, and says it proves nothing.
    # Its temporary files go, and only its own (a neighbour in TMPDIR stays).
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    (tmpdir / "neighbour").write_text("not ours")
    env = tool_env({"TMPDIR": str(tmpdir)})
    allowed = reproduce(root, run_id, "--allow-dirty", env=env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert [path.name for path in tmpdir.iterdir()] == ["neighbour"]
    assert "cannot be trusted to match" in allowed.stderr
    assert "NOTE: the run was trained with uncommitted changes" in allowed.stdout
