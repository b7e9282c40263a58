"""Right answers a model could have copied: the numbers a question states.

A model that cannot yet reason still answers some word problems right by giving back a
number the question states (the answer is 20, and the question says the flock "is 20
chickens"). ``bench report --stated`` splits each row's items by whether the gold
answer is such a number, and counts how often the search answered with one, right or
wrong: the control that tells copying apart from computing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deliberate.benchmarks.datasets import last_number
from deliberate.benchmarks.math_answers import plain_number
from deliberate.benchmarks.report import grouped, markdown_table, rich_table, share, think_label
from deliberate.errors import DatasetError
from deliberate.tasks.math import stated_numbers


@dataclass(frozen=True)
class StatedRow:
    task: str
    strategy: str
    think: float
    stated: int  # items whose gold answer is a number the question states
    stated_right: int
    other: int  # the rest
    other_right: int
    echoed: int  # answers, right or wrong, that are a number the question states


def stated_table(records: Iterable[dict[str, Any]]) -> list[StatedRow]:
    """One row per (task, strategy, think), over the records that hold their question
    and whose gold answer is a plain number; a DatasetError if none does (Game of 24's
    gold is no number, BBH's a letter)."""
    numeric = [r for r in records if plain_number(str(r.get("gold", ""))) is not None and "question" in r]
    if not numeric:
        raise DatasetError("--stated needs records with a question and a numeric gold answer, such as gsm8k's")
    rows = []
    for (task, strategy, think), group in grouped(numeric):
        counts = {"stated": 0, "stated_right": 0, "other": 0, "other_right": 0, "echoed": 0}
        for record in group:
            given = stated_numbers(str(record["question"]))
            kind = "stated" if plain_number(str(record["gold"])) in given else "other"
            counts[kind] += 1
            counts[f"{kind}_right"] += bool(record.get("correct"))
            answer = record.get("answer")
            counts["echoed"] += answer is not None and last_number(str(answer)) in given
        rows.append(StatedRow(task, strategy, think, **counts))
    return rows


HEADERS = ["task", "strategy", "think", "right, answer stated", "right, answer not stated", "answered a stated number"]


def _cells(row: StatedRow) -> list[str]:
    return [
        row.task, row.strategy, think_label(row.think), share(row.stated_right, row.stated),
        share(row.other_right, row.other), share(row.echoed, row.stated + row.other),
    ]


def stated_markdown(rows: Sequence[StatedRow]) -> str:
    return markdown_table(HEADERS, [_cells(row) for row in rows])


def render_stated(rows: Sequence[StatedRow]) -> Any:
    """A ``rich.table.Table`` of the rows, for the terminal."""
    return rich_table("deliberate bench: answers the question states", HEADERS, [_cells(row) for row in rows])
