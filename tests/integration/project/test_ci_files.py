"""The forge CI files: valid and safe per make lint's checks, and doing what docs/ci.md says."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from mlpipeline.tool_env import VENV_BIN
from tests.support.repository import REPO
from tests.support.tools import run

pytestmark = pytest.mark.integration

WORKFLOWS = [REPO / ".github/workflows/ci.yml", REPO / ".forgejo/workflows/ci.yml"]
GITLAB = REPO / ".gitlab-ci.yml"
SAFE_STEP = "      - run: make test\n"


def make_dry_run(target: str) -> list[list[str]]:
    """The commands `make TARGET` runs with `uv run --frozen`, split like a shell would.

    Setup's own commands (`uv sync`, the uv bootstrap) are left out: they show in a fresh clone.
    """
    out = subprocess.run(
        ["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    commands = []
    for line in out.splitlines():
        words = shlex.split(line)
        if words[1:3] == ["run", "--frozen"]:
            commands.append([word for word in words[3:] if word != "--no-sync"])
    return commands


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return run([VENV_BIN / "actionlint", *paths], cwd=REPO, check=False)


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    return run([VENV_BIN / "zizmor", "--offline", *paths], cwd=REPO, check=False)


def gitlab_schema(path: Path) -> subprocess.CompletedProcess[str]:
    command = [VENV_BIN / "check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", path]
    return run(command, cwd=REPO, check=False)


def test_make_lint_runs_the_three_checks_on_every_ci_file() -> None:
    commands = make_dry_run("lint")
    by_tool = {words[0]: words for words in commands}
    files = [str(path.relative_to(REPO)) for path in WORKFLOWS]
    assert set(files) <= set(by_tool["actionlint"])
    assert set(files) <= set(by_tool["zizmor"]) and "--offline" in by_tool["zizmor"]
    assert by_tool["check-jsonschema"][-3:] == [
        "--builtin-schema",
        "vendor.gitlab-ci",
        ".gitlab-ci.yml",
    ]


def test_the_ci_files_pass_the_checks() -> None:
    for proc in (actionlint(*WORKFLOWS), zizmor(*WORKFLOWS), gitlab_schema(GITLAB)):
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.parts[-3])
@pytest.mark.parametrize(
    ("step", "caught_by"),
    [
        # An action on a moving tag, and a pull request's title spliced into a shell script.
        ("      - uses: actions/setup-python@v5\n", "zizmor"),
        ('      - run: echo "${{ github.event.pull_request.title }}"\n', "zizmor"),
        ("      - run: make test\n        shell: bsh\n        timeout: 3\n", "actionlint"),
    ],
)
def test_the_checks_catch_an_unsafe_or_broken_step(
    workflow: Path, step: str, caught_by: str, tmp_path: Path
) -> None:
    text = workflow.read_text()
    assert SAFE_STEP in text
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(SAFE_STEP, step, 1))
    (tmp_path / ".github" / "actionlint.yaml").write_text(
        (REPO / ".github/actionlint.yaml").read_text()
    )
    proc = {"zizmor": zizmor, "actionlint": actionlint}[caught_by](broken)
    assert proc.returncode != 0, proc.stdout + proc.stderr


def test_the_gitlab_schema_catches_a_broken_job(tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(
        GITLAB.read_text().replace("  timeout: 90m\n", "  timeout: 90m\n  when: sometimes\n")
    )
    assert gitlab_schema(broken).returncode != 0


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.parts[-3])
def test_workflow_jobs(workflow: Path) -> None:
    spec = yaml.safe_load(workflow.read_text())
    triggers = spec[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    assert spec["permissions"] == {"contents": "read"}
    jobs = spec["jobs"]
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in runs["test"] and "make test" in runs["test"]
    assert "make test-slow" in runs["slow"] and "schedule" in jobs["slow"]["if"]
    report = jobs["report"]
    # Never for a fork's pull request: no secrets used, nothing posted.
    assert "github.event.pull_request.head.repo.full_name == github.repository" in report["if"]
    assert report["permissions"]["pull-requests"] == "write"
    assert "bash .ci/pr-report" in runs["report"]
    assert any(".venv/bin/mlpipeline report comment" in command for command in runs["report"])
    for job in jobs.values():
        checkout = job["steps"][0]
        assert checkout["uses"].startswith("actions/checkout@")
        assert checkout["with"]["persist-credentials"] is False


def test_gitlab_jobs() -> None:
    spec = yaml.safe_load(GITLAB.read_text())
    assert spec["test"]["script"] == ["make lint", "make test"]
    assert spec["slow"]["script"] == ["make test-slow"]
    assert spec["slow"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    (rule,) = spec["report"]["rules"]
    assert "$CI_MERGE_REQUEST_SOURCE_PROJECT_ID == $CI_MERGE_REQUEST_PROJECT_ID" in rule["if"]
    script = "\n".join(spec["report"]["script"])
    assert "bash .ci/pr-report" in script and "--forge gitlab" in script
    assert "report/" in spec["report"]["artifacts"]["paths"]


def test_make_notebook_uses_the_makefiles_uv_and_an_ignored_folder() -> None:
    (command,) = make_dry_run("notebook")
    assert command[:4] == ["--group", "notebook", "jupyter", "nbconvert"]
    assert command[command.index("--output-dir") + 1] == "notebooks/out"
    ignored = run(
        ["git", "check-ignore", "-q", "notebooks/out/compare_runs_and_champion.html"],
        cwd=REPO,
        check=False,
    )
    assert ignored.returncode == 0, "notebooks/out/ is not git-ignored"
