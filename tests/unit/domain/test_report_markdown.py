"""The report's Markdown: values, deltas, the decision line, and what it links."""

from __future__ import annotations

import pytest

from mlpipeline.domain.report_markdown import (
    MARKER,
    Image,
    decision_from_log,
    format_delta,
    metrics_section,
    params_section,
    render_report,
)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ({"old": 0.9, "new": 0.9333333}, "+0.0333"),
        ({"old": 0.9333333, "new": 0.6666667}, "-0.2667"),
        ({"old": 100, "new": 7}, "-93"),
        ({"old": 1.0, "new": 1.0}, "0"),
        ({"old": "macro", "new": "macro"}, "—"),
        ({"old": "macro", "new": "weighted"}, "changed"),
        ({"old": None, "new": 0.5}, "changed"),
        ({"old": True, "new": False}, "changed"),
    ],
)
def test_format_delta(entry: dict, shown: str) -> None:
    assert format_delta(entry) == shown


def test_metrics_show_both_values_and_the_change_headline_first() -> None:
    diff = {
        "metrics/metrics.json": {
            "per_class.setosa.f1": {"old": 1.0, "new": 0.5, "diff": -0.5},
            "accuracy": {"old": 0.9333, "new": 0.6667, "diff": -0.2666},
        }
    }
    text = metrics_section(diff, "main", "workspace")
    assert "| file | metric | main | workspace | change |" in text
    assert "| metrics/metrics.json | accuracy | 0.9333 | 0.6667 | -0.2666 |" in text
    assert text.index("accuracy") < text.index("<details>") < text.index("per_class.setosa.f1")


def test_params_say_when_nothing_differs() -> None:
    assert params_section({}, "main", "HEAD") == "No params differ between main and HEAD."
    diff = {"params.yaml": {"train.n_estimators": {"old": 100, "new": 7, "diff": -93}}}
    assert "| params.yaml | train.n_estimators | 100 | 7 | -93 |" in params_section(
        diff, "main", "HEAD"
    )


def test_the_decision_line_is_the_last_one_save_logged() -> None:
    log = (
        "Running stage 'save':\n"
        "[save] INFO registered iris_classifier version 2; not @champion: accuracy 0.6 < 0.9\n"
        "[save] INFO registered iris_classifier version 3; now @champion: first at 0.93\n"
        "Updating lock file 'dvc.lock'\n"
    )
    assert decision_from_log(log) == (
        "registered iris_classifier version 3; now @champion: first at 0.93"
    )
    assert decision_from_log("Stage 'save' didn't change, skipping") is None


def test_the_report_is_marked_and_links_its_images_and_runs() -> None:
    text = render_report(
        base="main",
        rev="workspace",
        metrics={},
        params={},
        decision="registered m version 1; now @champion: first",
        charts=[Image("Confusion matrix", "Confusion_matrix.png")],
        images=[Image("roc.png", "roc.png")],
        runs={"main": "http://mlflow:5000/#/experiments/1/runs/abc"},
    )
    assert text.startswith(MARKER)
    assert "**Champion:** registered m version 1; now @champion: first" in text
    assert "![Confusion matrix](Confusion_matrix.png)" in text
    assert "![roc.png](roc.png)" in text
    assert "[main](http://mlflow:5000/#/experiments/1/runs/abc)" in text


def test_a_commit_hash_is_shortened_in_the_headers() -> None:
    sha = "1c2f6220329bce4d8a05b65754acc28065a9834c"
    diff = {"params.yaml": {"train.max_depth": {"old": 5, "new": 1}}}
    text = render_report(
        base=sha,
        rev="workspace",
        metrics={},
        params=diff,
        decision="-",
        charts=[],
        images=[],
        runs={},
    )
    assert "| file | param | 1c2f6220 | workspace | change |" in text
    assert sha not in text
