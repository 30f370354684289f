"""The comparison report's Markdown, pure: DVC's diffs and the save decision in, text out.

`mlpipeline report report` runs `dvc metrics diff` / `dvc params diff` (their `--json`
shapes: `{file: {key: {"old": .., "new": .., "diff": ..}}}`) and renders the charts; this
module only turns those facts into Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from mlpipeline.domain.metric_names import HEADLINE_METRICS

# What pr_comment looks for to update its own comment instead of adding one.
MARKER = "<!-- mlpipeline-report -->"
MISSING = "—"

Diff = Mapping[str, Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class Image:
    title: str
    path: str  # relative to the report file


def revision_label(rev: str) -> str:
    """A revision as a column header: a full commit hash shortened to 8 characters."""
    return rev[:8] if re.fullmatch(r"[0-9a-f]{40}", rev) else rev


def format_value(value: Any) -> str:
    """A metric or param as a table cell: floats to 4 decimals, absent as a dash."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_delta(entry: Mapping[str, Any]) -> str:
    """new - old with its sign (`+0.0333`), `0` when equal, a dash when not numeric."""
    old, new = entry.get("old"), entry.get("new")
    if not (_number(old) and _number(new)):
        return MISSING if old == new else "changed"
    delta = new - old
    if delta == 0:
        return "0"
    return f"{delta:+.4f}" if isinstance(delta, float) else f"{delta:+d}"


def diff_rows(diff: Diff) -> list[tuple[str, str, str, str, str]]:
    """(file, key, old, new, delta) per entry, files and keys sorted."""
    return [
        (
            path,
            key,
            format_value(entry.get("old")),
            format_value(entry.get("new")),
            format_delta(entry),
        )
        for path in sorted(diff)
        for key, entry in sorted(diff[path].items())
    ]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_section(diff: Diff, base: str, rev: str) -> str:
    """Headline metrics first; the others (per class) folded away."""
    rows = diff_rows(diff)
    if not rows:
        return f"No metrics in {base} or {rev}."
    header = ("file", "metric", base, rev, "change")
    headline = [row for row in rows if row[1] in HEADLINE_METRICS]
    others = [row for row in rows if row[1] not in HEADLINE_METRICS]
    text = markdown_table(header, headline or others)
    if headline and others:
        text += (
            f"\n\n<details><summary>{len(others)} more metrics</summary>\n\n"
            f"{markdown_table(header, others)}\n\n</details>"
        )
    return text


def params_section(diff: Diff, base: str, rev: str) -> str:
    rows = diff_rows(diff)
    if not rows:
        return f"No params differ between {base} and {rev}."
    return markdown_table(("file", "param", base, rev, "change"), rows)


_DECISION = re.compile(r"registered \S+ version \S+.*?; (?:now|not) @\S+: .*")


def decision_from_log(log_text: str) -> str | None:
    """The save stage's last `registered ... now/not @alias: why` line in a `dvc repro` log."""
    found = _DECISION.findall(log_text)
    return found[-1].strip() if found else None


def render_report(
    *,
    base: str,
    rev: str,
    metrics: Diff,
    params: Diff,
    decision: str,
    charts: Sequence[Image],
    images: Sequence[Image],
    runs: Mapping[str, str],
) -> str:
    """The whole report: one Markdown file, its images referenced by relative paths.

    Args:
        runs: revision → link to its MLflow run (empty without a tracking server).
    """
    base, rev = revision_label(base), revision_label(rev)
    parts = [
        MARKER,
        f"## Pipeline report: {rev} vs {base}",
        f"**Champion:** {decision}",
    ]
    if runs:
        parts.append(
            "**MLflow runs:** "
            + ", ".join(f"[{revision_label(name)}]({url})" for name, url in runs.items())
        )
    parts += [
        "### Metrics",
        metrics_section(metrics, base, rev),
        "### Params",
        params_section(params, base, rev),
    ]
    if charts:
        parts.append("### Charts")
        parts += [f"![{chart.title}]({chart.path})" for chart in charts]
    if images:
        parts.append("### Figures (plots/images)")
        parts += [f"![{image.title}]({image.path})" for image in images]
    return "\n\n".join(parts) + "\n"
