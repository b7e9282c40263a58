"""What ``deliberate bench judge`` reports: the AUC rows of each evaluator, the
profile entries ``--save`` keeps, the results file and the rich table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deliberate.benchmarks.auc import MIN_CLASS, MIN_QUESTIONS, Row, format_auc, summarize, summarize_within
from deliberate.benchmarks.judge_states import Reached
from deliberate.errors import UsageError


def rows(reached: Sequence[Reached], evaluator: str, *, seed: int, resamples: int) -> dict[str, Any]:
    """The AUC rows of one evaluator, overall and per depth (keys are depths as text):
    pooled over every state, and ``within``: over pairs of states of one question at
    one depth."""
    scored = [r for r in reached if getattr(r, evaluator) is not None]

    def row(subset: Sequence[Reached], name: str) -> Row:
        good = [getattr(r, evaluator) for r in subset if r.good]
        bad = [getattr(r, evaluator) for r in subset if not r.good]
        return summarize(good, bad, seed=f"{seed}:{evaluator}:{name}", resamples=resamples)

    def within(subset: Sequence[Reached], name: str) -> Row:
        # Pairs of one question at one depth: a search weighs a level's states, or
        # siblings, against each other, never a state against its own ancestors'.
        strata: dict[str, dict[int, tuple[list[float], list[float]]]] = {}
        for r in subset:
            strata.setdefault(r.item, {}).setdefault(r.depth, ([], []))[0 if r.good else 1].append(getattr(r, evaluator))
        questions = {item: list(by_depth.values()) for item, by_depth in strata.items()}
        return summarize_within(questions, seed=f"{seed}:{evaluator}:{name}:within", resamples=resamples)

    depths = sorted({r.depth for r in reached})
    at = {str(d): [r for r in scored if r.depth == d] for d in depths}
    return {
        "scored": len(scored),
        "overall": row(scored, "overall"),
        "depths": {d: row(subset, f"depth {d}") for d, subset in at.items()},
        "within": {
            "overall": within(scored, "overall"),
            "depths": {d: within(subset, f"depth {d}") for d, subset in at.items()},
        },
    }


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def profile_entries(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What ``profiles.save_profile`` keeps of a result, per evaluator."""
    return {
        name: {
            "evaluator": name,
            "measured": result["measured"],
            "overall": measured["overall"],
            "depths": measured["depths"],
            "within": measured["within"],
            "states": measured["scored"],
            "model": result["model"],
            "strategy": result["strategy"],
            "think": result["think"],
            "dataset": result["dataset"],
        }
        for name, measured in result["evaluators"].items()
    }


def prepare_out(out: str | Path) -> Path:
    """The results path, its folder made; fails before any search if it cannot be written."""
    target = Path(out).expanduser()
    if target.is_dir():
        raise UsageError(f"cannot write {target}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def write_result(out: str | Path, result: Mapping[str, Any]) -> Path:
    from deliberate.trace import write_text_atomic

    return write_text_atomic(out, json.dumps(result, indent=1, ensure_ascii=False) + "\n", what="judge results ")


def render(result: Mapping[str, Any]) -> Any:
    """The AUC rows as a rich table that fits 80 columns (the intervals are the point)."""
    from rich import box
    from rich.table import Table

    good, bad = result.get("classes") or ("good", "bad")
    table = Table(
        title=f"judge separation: {result['task']}, {result['states']} states from {result['items']} searches "
        f"({result['strategy']}, {result['think']:g}s, model {result['model']})",
        caption=f"AUC: the chance that a random {good} state is valued above a random {bad} one (ties count "
        f"half; 0.5 is chance), with a 95% bootstrap interval; n/a below {MIN_CLASS} states of either class. "
        f"Same question: only pairs of states of one question at one depth, the comparison a search makes (the "
        f"interval resamples questions; q counts them; n/a below {MIN_QUESTIONS} with states of both classes)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
    )
    for column, counts in (("evaluator", False), ("depth", True), (good, True), (bad, True),
                           ("AUC, pooled", False), ("AUC, same question", False)):  # fmt: skip
        # Class names may wrap in the header; the figures never do.
        table.add_column(column, justify="right" if counts else "left", no_wrap=column not in (good, bad))
    for name, measured in result["evaluators"].items():
        within = measured.get("within") or {"overall": None, "depths": {}}
        table.add_row(name, "all", *_cells(measured["overall"], within["overall"]))
        for depth, row in measured["depths"].items():
            table.add_row("", depth, *_cells(row, within["depths"].get(depth)))
    return table


def _cells(row: Mapping[str, Any], within: Mapping[str, Any] | None) -> list[str]:
    same = "–" if within is None else f"{_figure(within)} {within['questions']}q"
    return [str(row["good"]), str(row["bad"]), _figure(row), same]


def _figure(row: Mapping[str, Any]) -> str:
    text = format_auc(row)  # "AUC 0.87 [0.80, 0.93]" or "AUC n/a"
    return text if row.get("auc") is None else text.removeprefix("AUC ")  # the column says AUC
