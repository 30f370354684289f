"""`make report` and `make plots` on a repository with two commits that differ in metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO, clone_built, set_params, use_session_venv
from tests.support.tools import run

pytestmark = pytest.mark.integration

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
# The charts of dvc.yaml's `plots:` (confusion, 3 ROC, 3 precision-recall, importance).
VEGA_CHARTS = 8
PNG_FIGURES = 4  # plots/images/*.png


@pytest.fixture(scope="module")
def two_commits(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built baseline committed, then shallow, few trees retrained and committed."""
    project = clone_built(built_project, tmp_path_factory.mktemp("report") / "project")
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "baseline outputs"], cwd=project)
    set_params(project, train__max_depth=1, train__n_estimators=7)
    repro = run(["dvc", "repro"], cwd=project)
    (project / ".dvc" / "tmp" / "repro.log").write_text(repro.stdout + repro.stderr)
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "shallow trees"], cwd=project)
    return project


def report(project: Path, out: Path, *args: str, offline: bool = False) -> str:
    command = [
        sys.executable,
        "-m",
        "mlpipeline",
        "report",
        "report",
        "--base",
        "HEAD~1",
        "--rev",
        "HEAD",
        "-o",
        str(out),
        "--repro-log",
        str(project / ".dvc" / "tmp" / "repro.log"),
        *args,
    ]
    if offline:
        command = [*no_network(), *command]
    run(command, cwd=project)
    return (out / "report.md").read_text()


def no_network() -> list[str]:
    """A prefix that runs a command in a new network namespace: only a down loopback."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    prefix = [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-rn"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip(f"{' '.join(prefix)} is not permitted here")
    return prefix


def committed_metrics(project: Path, rev: str) -> dict:
    return json.loads(run(["git", "show", f"{rev}:metrics/metrics.json"], cwd=project).stdout)


def assert_non_blank_image(path: Path) -> None:
    assert path.is_file(), path
    if path.suffix == ".svg":
        text = path.read_text()
        assert "<svg" in text and ("<path" in text or "<text" in text), path
        return
    with PILImage.open(path) as image:
        low, high = image.convert("L").getextrema()
    assert low < high, f"{path.name} is one flat colour"


def test_the_report_has_both_values_and_the_change(two_commits: Path, tmp_path: Path) -> None:
    text = report(two_commits, tmp_path / "report")
    old, new = committed_metrics(two_commits, "HEAD~1"), committed_metrics(two_commits, "HEAD")
    assert old["accuracy"] != new["accuracy"]
    row = (
        f"| metrics/metrics.json | accuracy | {old['accuracy']:.4f} | {new['accuracy']:.4f} "
        f"| {new['accuracy'] - old['accuracy']:+.4f} |"
    )
    assert row in text, text
    assert "| params.yaml | train.max_depth | 5 | 1 | -4 |" in text
    assert "| params.yaml | train.n_estimators | 100 | 7 | -93 |" in text
    assert "| file | metric | HEAD~1 | HEAD | change |" in text
    decision = next(line for line in text.splitlines() if line.startswith("**Champion:**"))
    assert re.search(r"registered iris_classifier version \d+; (now|not) @champion: ", decision)


def test_with_nothing_rerun_the_champion_line_comes_from_the_store_with_its_reason(
    two_commits: Path, tmp_path: Path
) -> None:
    """CI with nothing to rerun: the save stage printed no line, the store still has it."""
    skipped = tmp_path / "repro.log"
    skipped.write_text("Stage 'save' didn't change, skipping\n")
    out = tmp_path / "report"
    command = ["report", "report", "--base", "HEAD~1", "-o", out, "--repro-log", skipped]
    run([sys.executable, "-m", "mlpipeline", *command], cwd=two_commits)
    text = (out / "report.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("**Champion:**"))
    run_id = json.loads((two_commits / "models/mlflow_run.json").read_text())["run_id"]
    # The gate's own line, its reason included, then where the alias stands now.
    assert re.search(
        rf"registered iris_classifier version \d+; (now|not) @champion: \S.+ \(recorded by "
        rf"run {run_id}'s save; (@champion is now version \d+|no version holds @champion now)\)",
        line,
    ), line


def test_every_linked_image_exists_and_is_drawn(two_commits: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    text = report(two_commits, out)
    links = IMAGE_LINK.findall(text)
    # Every chart holds both revisions; each revision has its own PNG of plots/images.
    assert len(links) == VEGA_CHARTS + 2 * PNG_FIGURES, links
    for link in links:
        assert not link.startswith(("http:", "https:", "/")), link
        assert_non_blank_image(out / link)


def test_the_report_is_the_same_without_a_network(two_commits: Path, tmp_path: Path) -> None:
    online = report(two_commits, tmp_path / "online")
    offline = report(two_commits, tmp_path / "offline", offline=True)
    assert offline == online
    for link in IMAGE_LINK.findall(online):
        assert (tmp_path / "offline" / link).read_bytes() == (
            tmp_path / "online" / link
        ).read_bytes(), link


def test_a_tracking_server_adds_links_to_both_runs(two_commits: Path, tmp_path: Path) -> None:
    server = "http://127.0.0.1:9"  # never contacted: the links come from mlflow_run.json
    out = tmp_path / "report"
    command = [sys.executable, "-m", "mlpipeline", "report", "report", "--base", "HEAD~1"]
    run(
        [*command, "--rev", "HEAD", "-o", out],
        cwd=two_commits,
        env=tool_env({"MLFLOW_TRACKING_URI": server}),
    )
    text = (out / "report.md").read_text()
    for rev in ("HEAD~1", "HEAD"):
        info = json.loads(
            run(
                [
                    sys.executable,
                    "-c",
                    "import dvc.api, sys; sys.stdout.write(dvc.api.read("
                    f"'models/mlflow_run.json', rev='{rev}'))",
                ],
                cwd=two_commits,
            ).stdout
        )
        url = f"{server}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}"
        assert f"[{rev}]({url})" in text


def test_a_base_that_does_not_exist_is_one_line(two_commits: Path, tmp_path: Path) -> None:
    proc = run(
        [
            sys.executable,
            "-m",
            "mlpipeline",
            "report",
            "report",
            "--base",
            "no-such-branch",
            "-o",
            tmp_path / "report",
        ],
        cwd=two_commits,
        check=False,
    )
    assert proc.returncode == 1
    assert "no-such-branch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "report").exists()


def test_make_plots_writes_a_page_that_loads_nothing_from_elsewhere(
    two_commits: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plots"
    run(
        [sys.executable, "-m", "mlpipeline", "report", "plots", "HEAD~1", "-o", out],
        cwd=two_commits,
    )
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == VEGA_CHARTS + 2 * PNG_FIGURES, sources
    assert "http" not in page
    for source in sources:
        assert_non_blank_image(out / source)
    assert sum(source.endswith(".svg") for source in sources) == VEGA_CHARTS


@pytest.mark.slow
def test_the_pull_request_job_on_a_fresh_clone_with_a_remote(
    two_commits: Path, tmp_path: Path
) -> None:
    """.ci/pr-report as CI runs it: a clone without outputs, the base's and the head's pulled."""
    origin = clone_built(two_commits, tmp_path / "origin")
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "-d", "ci", remote], cwd=origin)
    run(["git", "commit", "-qam", "a DVC remote"], cwd=origin)
    # Both commits' outputs in the remote, as a user who pushes each commit has them (`dvc
    # push --all-commits` skips commits whose .dvc/config has no remote yet).
    run(["git", "checkout", "HEAD~2", "--", "dvc.lock"], cwd=origin)
    run(["dvc", "push"], cwd=origin)
    run(["git", "checkout", "HEAD", "--", "dvc.lock"], cwd=origin)
    run(["dvc", "push"], cwd=origin)
    checkout = tmp_path / "checkout"
    run(["git", "clone", "-q", origin, checkout], cwd=tmp_path)
    use_session_venv(checkout)
    # The uv setup ran with, first on PATH as setup-uv or a runner image would put it.
    env = tool_env({"BASE_SHA": run(["git", "rev-parse", "HEAD~2"], cwd=checkout).stdout.strip()})
    uv_dirs = [str(Path(uv).parent) for uv in (shutil.which("uv"), REPO / ".tools/bin/uv") if uv]
    env["PATH"] = os.pathsep.join([*uv_dirs, env["PATH"]])
    run(["bash", ".ci/pr-report"], cwd=checkout, env=env, timeout=1200)

    text = (checkout / "report" / "report.md").read_text()
    assert "| params.yaml | train.max_depth | 5 | 1 | -4 |" in text
    assert re.search(r"\*\*Champion:\*\* registered iris_classifier version \d+; ", text), text
    links = IMAGE_LINK.findall(text)
    # The base's side was fetched from the remote: every chart has both revisions.
    assert len(links) == VEGA_CHARTS + 2 * PNG_FIGURES, links
    for link in links:
        assert_non_blank_image(checkout / "report" / link)
    # The base's dvc.lock, borrowed for the fetch, was put back: the run recorded the head's.
    assert "max_depth: 1" in (checkout / "dvc.lock").read_text()
