"""What the search generated, apart from what it picked: was any answer it reached right?

A search that samples many chains and then picks one answer (self-consistency's vote,
the value of a final state) can fail in two ways: no chain reached the right answer,
or one did and the pick went elsewhere. ``bench report --reached`` tells them apart,
from the ``answers`` each record lists (every answer the search could have given,
with the chains that reached it) and its ``reached`` flag (one of them was right by
the dataset's rule). The first counts what the model and its tools generate; the
share picked when reached counts what the strategy's choice adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deliberate.benchmarks.report import grouped, markdown_table, rich_table, share, think_label
from deliberate.errors import DatasetError


@dataclass(frozen=True)
class ReachedRow:
    task: str
    strategy: str
    think: float
    n: int
    right: int  # the answer given was right
    reached: int  # some answer the search reached was right
    picked: int  # right among those reached
    answers: int  # distinct answers reached, over all items
    chains: int  # chains that reached an answer, over all items


def reached_table(records: Iterable[dict[str, Any]]) -> list[ReachedRow]:
    """One row per (task, strategy, think), over the records that list their answers; a
    DatasetError if none does (records written before the runner kept them)."""
    listed = [r for r in records if "reached" in r and isinstance(r.get("answers"), dict)]
    if not listed:
        raise DatasetError("--reached needs records that list the answers each search reached; "
                           "these were written before bench kept them, so run the benchmark again")
    rows = []
    for (task, strategy, think), group in grouped(listed):
        right = [bool(r.get("correct")) for r in group]
        reached = [bool(r["reached"]) for r in group]
        rows.append(ReachedRow(
            task, strategy, think, len(group), sum(right), sum(reached),
            sum(ok and got for ok, got in zip(right, reached)),
            sum(len(r["answers"]) for r in group), sum(sum(r["answers"].values()) for r in group),
        ))
    return rows


HEADERS = ["task", "strategy", "think", "right", "a chain reached it", "picked when reached", "answers / item",
           "chains / item"]


def _cells(row: ReachedRow) -> list[str]:
    return [
        row.task, row.strategy, think_label(row.think), share(row.right, row.n), share(row.reached, row.n),
        share(row.picked, row.reached), f"{row.answers / row.n:.1f}", f"{row.chains / row.n:.1f}",
    ]


def reached_markdown(rows: Sequence[ReachedRow]) -> str:
    return markdown_table(HEADERS, [_cells(row) for row in rows])


def render_reached(rows: Sequence[ReachedRow]) -> Any:
    """A ``rich.table.Table`` of the rows, for the terminal."""
    return rich_table("deliberate bench: answers reached and answers picked", HEADERS, [_cells(row) for row in rows])
