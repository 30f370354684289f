"""A model card per registered version, in Markdown, from what MLflow and DVC recorded.

Pure: a `CardRecord` in, Markdown out. mlpipeline/tracking/model_cards.py gathers the record
(the version, its training run's params, metrics and lineage tags, the run's drift
reference) and logs the card; nothing in it is typed by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpipeline.domain.metric_names import HEADLINE_METRICS

PER_CLASS_METRICS = ("precision", "recall", "f1", "roc_auc", "average_precision", "support")
PER_CLASS_PREFIX = "per_class."
DATA_TAG_PREFIX = "md5.data/"


@dataclass(frozen=True)
class CardRecord:
    model_name: str
    version: str
    registered: str  # ISO 8601, UTC
    run_id: str
    experiment_name: str
    decision: str  # the save gate's line
    commit: str | None
    dirty: str | None  # the run's git_dirty tag: "false", "true", or None if unknown
    orchestrator: str | None
    data_md5: dict[str, str]  # path -> md5, from the run's md5.data/... tags
    params: dict[str, str]
    metrics: dict[str, float]  # the run's metrics, flattened (per_class.<class>.<metric>)
    signature: list[tuple[str, str]]  # (column, type)
    reference: Mapping[str, Any] | None = None  # mlpipeline/domain/drift.py's profile
    extra_lineage: dict[str, str] = field(default_factory=dict)


def data_md5_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The data files' md5s among a run's lineage tags (`md5.data/raw/dataset.csv`)."""
    return {
        key.removeprefix("md5."): value
        for key, value in sorted(tags.items())
        if key.startswith(DATA_TAG_PREFIX)
    }


def per_class(metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """{class: {metric: value}} from flattened `per_class.<class>.<metric>` metrics."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(PER_CLASS_PREFIX):
            label, _, metric = key.removeprefix(PER_CLASS_PREFIX).rpartition(".")
            table.setdefault(label, {})[metric] = value
    return dict(sorted(table.items()))


def rows_per_class(record: CardRecord) -> dict[str, tuple[int | None, int | None]]:
    """{class: (training rows, test rows)}: from the drift reference and the test support."""
    test = {label: values.get("support") for label, values in per_class(record.metrics).items()}
    training: dict[str, int] = {}
    if record.reference is not None:
        rows = int(record.reference.get("rows", 0))
        for label, share in record.reference.get("labels", {}).items():
            training[label] = round(share * rows)
    labels = sorted(set(test) | set(training))
    return {
        label: (
            training.get(label),
            None if test.get(label) is None else int(test[label]),  # type: ignore[arg-type]
        )
        for label in labels
    }


def _number(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]


def render_card(record: CardRecord) -> str:
    """The card as Markdown: summary, lineage, data, params, metrics, signature, reference."""
    lines = [
        f"# Model card: {record.model_name} version {record.version}",
        "",
        *_table(
            ["field", "value"],
            [
                ["registered", record.registered],
                ["training run", record.run_id],
                ["experiment", record.experiment_name],
                ["champion gate", record.decision],
            ],
        ),
        "",
        "## Lineage",
        "",
        *_table(
            ["field", "value"],
            [
                ["git commit", record.commit or "-"],
                ["uncommitted changes", record.dirty or "-"],
                ["orchestrator", record.orchestrator or "-"],
                *([key, value] for key, value in sorted(record.extra_lineage.items())),
            ],
        ),
        "",
        "## Data",
        "",
        *_table(["file", "md5"], [[path, md5] for path, md5 in record.data_md5.items()]),
        "",
        "### Rows per class",
        "",
        *_table(
            ["class", "training", "test"],
            [
                [label, _number(train), _number(test)]
                for label, (train, test) in rows_per_class(record).items()
            ],
        ),
        "",
        "## Parameters",
        "",
        *_table(["param", "value"], [[key, value] for key, value in sorted(record.params.items())]),
        "",
        "## Metrics",
        "",
        *_table(
            ["metric", "value"],
            [
                [name, _number(record.metrics.get(name))]
                for name in HEADLINE_METRICS
                if name in record.metrics
            ],
        ),
        "",
        "### Per class",
        "",
        *_table(
            ["class", *PER_CLASS_METRICS],
            [
                [label, *(_number(values.get(name)) for name in PER_CLASS_METRICS)]
                for label, values in per_class(record.metrics).items()
            ],
        ),
        "",
        "## Input signature",
        "",
        *_table(["column", "type"], [[column, kind] for column, kind in record.signature]),
        "",
        "## Drift reference (training split)",
        "",
    ]
    if record.reference is None:
        lines.append("No drift reference was logged with this model.")
    else:
        rows = []
        for feature, profile in record.reference["features"].items():
            percentiles = profile["percentiles"]
            rows.append(
                [
                    feature,
                    _number(profile["mean"]),
                    _number(profile["std"]),
                    *(_number(percentiles[p]) for p in (0, 5, 50, 95, 100)),
                ]
            )
        lines.append(f"{record.reference['rows']} rows.")
        lines.append("")
        lines.extend(_table(["feature", "mean", "std", "min", "p5", "p50", "p95", "max"], rows))
    return "\n".join(lines) + "\n"


def structure(card: str) -> list[str]:
    """A card's shape without its values: headings, table headers and each row's first cell."""
    shape: list[str] = []
    header_next = False
    for line in card.splitlines():
        if line.startswith("#"):
            shape.append(line.split(":")[0])
            header_next = True
        elif line.startswith("| ---"):
            continue
        elif line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            shape.append("|".join(cells) if header_next else f"row: {cells[0]}")
            header_next = False
    return shape


def with_current_alias(card: str, alias: str, version: str, holder: str | None) -> str:
    """The card with a row after its gate decision saying who holds `alias` now.

    The card is written once, at registration; the alias moves later (a better version, a
    promote, a rollback), so the printed card adds where it stands at printing time.
    """
    if holder == version:
        now = "this version (read when printed; the gate row is the registration's decision)"
    elif holder is None:
        now = "no version (read when printed)"
    else:
        now = f"version {holder} (read when printed), not this one"
    lines = card.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.startswith("| champion gate |"):
            lines.insert(number + 1, f"| @{alias} now | {now} |\n")
            break
    return "".join(lines)
