"""The champion against its challenger on one batch: what moving `@champion` would change.

Both models score the same rows (mlpipeline/batch/local_engine.py, `--with-challenger`); chunk
after chunk their predictions are matched by row number. A row both models scored counts
once in the confusion between their labels (champion's label, challenger's label); a row
only one of them scored (the other's input guard refused it) is counted apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.chunk_scoring import PREDICTION_COLUMN, ROW_COLUMN

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Comparison:
    """The two models' labels on the rows of a batch, added chunk by chunk."""

    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    only_champion: int = 0  # rows the champion scored and the challenger refused
    only_challenger: int = 0  # rows the challenger scored and the champion refused

    def add(self, champion: pd.DataFrame, challenger: pd.DataFrame) -> None:
        """Add one chunk's predictions of each model (`row` and `prediction` columns)."""
        left = champion[[ROW_COLUMN, PREDICTION_COLUMN]]
        right = challenger[[ROW_COLUMN, PREDICTION_COLUMN]]
        both = left.merge(right, on=ROW_COLUMN, how="inner", suffixes=("_champion", "_challenger"))
        pairs = zip(
            both[f"{PREDICTION_COLUMN}_champion"].astype(str),
            both[f"{PREDICTION_COLUMN}_challenger"].astype(str),
            strict=True,
        )
        self.confusion.update(pairs)
        self.only_champion += len(left) - len(both)
        self.only_challenger += len(right) - len(both)

    @property
    def compared(self) -> int:
        """Rows both models scored."""
        return sum(self.confusion.values())

    @property
    def agreed(self) -> int:
        return sum(count for (mine, theirs), count in self.confusion.items() if mine == theirs)

    @property
    def agreement(self) -> float | None:
        """The share of the rows both scored on which they give the same label; None if none."""
        return self.agreed / self.compared if self.compared else None

    def labels(self) -> list[str]:
        return sorted({label for pair in self.confusion for label in pair})

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Per label: how many compared rows each model gives it, and the change a move makes."""
        champion: Counter[str] = Counter()
        challenger: Counter[str] = Counter()
        for (mine, theirs), count in self.confusion.items():
            champion[mine] += count
            challenger[theirs] += count
        return {
            label: {
                "champion": champion[label],
                "challenger": challenger[label],
                "change": challenger[label] - champion[label],
            }
            for label in self.labels()
        }

    def as_dict(self) -> dict[str, Any]:
        labels = self.labels()
        return {
            "compared_rows": self.compared,
            "agreed_rows": self.agreed,
            "agreement": self.agreement,
            "only_champion_scored": self.only_champion,
            "only_challenger_scored": self.only_challenger,
            "class_counts": self.class_counts(),
            # confusion[champion's label][challenger's label] = rows
            "confusion": {
                mine: {theirs: self.confusion[(mine, theirs)] for theirs in labels}
                for mine in labels
            },
        }

    def report(self, champion: str, challenger: str) -> str:
        """The comparison as a releaser reads it: agreement, class counts, the confusion."""
        agreement = self.agreement
        shown = "-" if agreement is None else f"{agreement:.2%}"
        lines = [
            f"champion {champion} vs challenger {challenger}: agreement {shown} "
            f"({self.agreed} of {self.compared} rows both scored)"
        ]
        if self.only_champion or self.only_challenger:
            lines.append(
                f"scored by one only: {self.only_champion} by the champion, "
                f"{self.only_challenger} by the challenger (the other's guard refused them)"
            )
        labels = self.labels()
        counts = self.class_counts()
        rows = [["class", "champion", "challenger", "change"]] + [
            [label, str(c["champion"]), str(c["challenger"]), f"{c['change']:+d}"]
            for label, c in counts.items()
        ]
        lines += ["", *_table(rows)]
        confusion = [["champion \\ challenger", *labels]] + [
            [mine, *(str(self.confusion[(mine, theirs)]) for theirs in labels)] for mine in labels
        ]
        lines += ["", *_table(confusion)]
        return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
