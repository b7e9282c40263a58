"""Summaries of benchmark results: accuracy with a 95% interval per strategy and budget.

``read_records`` reads the JSONL files the runner writes, ``table`` aggregates them
into rows, and the rows are shown as a rich table, written as Markdown for the README,
or plotted as accuracy against thinking time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deliberate.errors import DatasetError, DeliberateError, UsageError
from deliberate.jsonl import read_jsonl

Z95 = 1.959963984540054  # the standard normal quantile for a two-sided 95% interval


@dataclass(frozen=True)
class Row:
    task: str  # the dataset kind: game24, gsm8k...
    strategy: str  # "bfs", or "bfs --no-verifier" for runs without the calculator checks
    think: float  # seconds of thinking allowed per question
    n: int
    correct: int
    accuracy: float
    low: float  # Wilson 95% interval
    high: float
    seconds: float  # mean thinking time actually used
    tokens_per_second: float  # all tokens over all thinking time
    nodes_per_second: float = 0.0  # all thought-graph nodes over all thinking time
    quits: int = 0  # wrong answers from a search that ended "complete", before its time was up


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``n``; (0, 1) when n is 0.

    Unlike the normal approximation it stays inside [0, 1] and is not zero-width at
    0/n or n/n, which matters for the small samples a laptop benchmark gives.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    shrink = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / shrink
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the ends, not off by rounding
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def read_records(paths: str | Path | Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every record in one or more results files, in order.

    An unterminated last line is a record still being written; it is skipped.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records = []
    for path in map(Path, paths):
        # A half-written last line (a bench still running, or cut off) is left out.
        records.extend(read_jsonl(path, what="results file").objects)
    return records


def item_range(text: str) -> tuple[int, int]:
    """``"1-30"`` -> (1, 30): the item numbers ``--items`` keeps."""
    first, dash, last = text.partition("-")
    try:
        low, high = int(first), int(last if dash else first)
    except ValueError:
        raise UsageError(f"--items {text!r}: expected a range of item numbers such as 1-30") from None
    if not 0 <= low <= high:
        raise UsageError(f"--items {text!r}: the range must run from a lower number to a higher one")
    return low, high


def in_range(records: Iterable[dict[str, Any]], low: int, high: int) -> list[dict[str, Any]]:
    """The records whose id ends in an item number from ``low`` to ``high``: "test:7"
    (GSM8K's 7th test item), "1101" (the Game of 24 puzzle of rank 1101)."""
    kept = []
    for record in records:
        number = str(record.get("id", "")).rpartition(":")[2]
        if number.isdigit() and low <= int(number) <= high:
            kept.append(record)
    return kept


def grouped(records: Iterable[dict[str, Any]]) -> list[tuple[tuple[str, str, float], list[dict[str, Any]]]]:
    """The records by (task, strategy, think), sorted by them; the strategy carries the
    run's flags ("bfs --no-tools"), so each configuration is a group of its own."""
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for record in records:
        try:
            strategy = record["strategy"] + ("" if record.get("verifier", True) else " --no-verifier") + _flags(record)
            key = (str(record["task"]), strategy, float(record["think"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"a results record lacks task, strategy or think: {exc}") from None
        groups.setdefault(key, []).append(record)
    return sorted(groups.items())


def table(records: Iterable[dict[str, Any]]) -> list[Row]:
    """One row per (task, strategy, think), sorted by them."""
    rows = []
    for (task, strategy, think), group in grouped(records):
        n = len(group)
        correct = sum(1 for r in group if r.get("correct"))
        seconds = sum(float(r.get("seconds") or 0.0) for r in group)
        tokens = sum(int(r.get("tokens") or 0) for r in group)
        low, high = wilson(correct, n)
        nodes = sum(int(r.get("nodes") or 0) for r in group)
        speed = tokens / seconds if seconds else 0.0
        growth = nodes / seconds if seconds else 0.0
        quits = sum(1 for r in group if r.get("stop_reason") == "complete" and not r.get("correct"))
        rows.append(Row(task, strategy, think, n, correct, correct / n, low, high, seconds / n, speed, growth, quits))
    return rows


def _flags(record: dict[str, Any]) -> str:
    """The record's settings as the command-line flags that give them."""
    settings = record.get("settings") or {}
    flags = []
    for key, value in settings.items():
        if key == "task_options":
            continue
        name = key.replace("_", "-")
        # Switches are flags: tools=False is --no-tools (True is the default, never stored).
        flags.append(f" --no-{name}" if value is False else f" --{name}" if value is True else f" --{name} {value}")
    flags += [f" --task-opt {k}={v}" for k, v in (settings.get("task_options") or {}).items()]
    return "".join(flags)


def think_label(seconds: float) -> str:
    """A thinking time as a flag would give it: "500ms", "20s"."""
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def share(k: int, n: int) -> str:
    """"3/30 (10.0%)", or "0/0" for none."""
    return f"{k}/{n} ({k / n:.1%})" if n else "0/0"


def _cells(row: Row) -> list[str]:
    return [
        row.task, row.strategy, think_label(row.think), f"{row.accuracy:.1%}",
        f"{row.low:.1%}–{row.high:.1%}", str(row.n), f"{row.seconds:.1f}", f"{row.tokens_per_second:.0f}",
        f"{row.nodes_per_second:.2f}", str(row.quits),
    ]


# "quit": unsolved records whose search ended "complete" (the task proved nothing was left).
HEADERS = ["task", "strategy", "think", "accuracy", "95% CI", "n", "mean s", "tok/s", "nodes/s", "quit"]


def render_table(rows: Sequence[Row]) -> Any:
    """A ``rich.table.Table`` of the rows, for the terminal."""
    return rich_table("deliberate bench", HEADERS, [_cells(row) for row in rows])


def to_markdown(rows: Sequence[Row]) -> str:
    """The rows as a GitHub Markdown table."""
    return markdown_table(HEADERS, [_cells(row) for row in rows])


def rich_table(title: str, headers: Sequence[str], cells: Iterable[Sequence[str]]) -> Any:
    """A ``rich.table.Table``: the first two columns name the row, the rest are numbers."""
    from rich.table import Table

    shown = Table(title=title)
    for i, header in enumerate(headers):
        shown.add_column(header, justify="left" if i < 2 else "right")
    for row in cells:
        shown.add_row(*row)
    return shown


def markdown_table(headers: Sequence[str], cells: Iterable[Sequence[str]]) -> str:
    """A GitHub Markdown table; numbers (every column after the first two) align right."""
    rule = "|".join("---" if i < 2 else "--:" for i in range(len(headers)))
    lines = ["| " + " | ".join(headers) + " |", f"|{rule}|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def to_grid(rows: Sequence[Row]) -> str:
    """Markdown with one row per (task, strategy) and one column per thinking time.

    A cell reads "45% (9/20)"; a budget a strategy was not run at is left as "–".
    """
    thinks = sorted({row.think for row in rows})
    cells = {(row.task, row.strategy, row.think): row for row in rows}
    keys = list(dict.fromkeys((row.task, row.strategy) for row in rows))
    lines = [
        "| task | strategy | " + " | ".join(think_label(t) for t in thinks) + " |",
        "|---|---|" + "--:|" * len(thinks),
    ]
    for task, strategy in keys:
        shown = []
        for think in thinks:
            row = cells.get((task, strategy, think))
            shown.append("–" if row is None else f"{row.accuracy:.0%} ({row.correct}/{row.n})")
        lines.append(f"| {task} | {strategy} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], out_png: str | Path) -> Path:
    """Accuracy against thinking time, one line per strategy and one panel per task."""
    if not rows:
        raise DatasetError("no results to plot")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display is needed or wanted
        import matplotlib.pyplot as plt
    except ImportError:
        raise DeliberateError("plotting needs matplotlib: pip install 'deliberate[plot]'") from None
    tasks = sorted({row.task for row in rows})
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), sharey=True, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [row for row in rows if row.task == task]
        strategies = sorted({row.strategy for row in mine})
        for i, strategy in enumerate(strategies):
            line = sorted((row for row in mine if row.strategy == strategy), key=lambda row: row.think)
            dodge = 1.04 ** (i - (len(strategies) - 1) / 2)  # side by side, so error bars do not hide each other
            ax.errorbar(
                [row.think * dodge for row in line],
                [row.accuracy for row in line],
                yerr=[[row.accuracy - row.low for row in line], [row.high - row.accuracy for row in line]],
                marker="o", capsize=3, label=strategy,
            )
        thinks = sorted({row.think for row in mine})
        ax.set_xscale("log")
        ax.minorticks_off()  # only the budgets that were run get a tick
        ax.set_xticks(thinks, [think_label(t) for t in thinks])
        ax.set_ylim(-0.03, 1.03)
        ax.margins(x=0.15)
        ax.set_title(task)
        ax.set_xlabel("thinking time per question (log scale)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel("accuracy (95% Wilson interval)")
    figure.tight_layout()
    out = Path(out_png)
    try:
        figure.savefig(out, dpi=150)
    except OSError as exc:
        raise DeliberateError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        plt.close(figure)
    return out
