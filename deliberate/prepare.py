"""What ``think`` checks before a model loads: ``prepare`` turns the settings into a
``Plan`` (the question, the task and strategy made, the search config, the budget and
the trace path), so a bad question, option or path fails at once and costs no load.
``api.run`` carries the plan out; the server prepares each request the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deliberate.duration import parse_budget
from deliberate.errors import DurationError, QuestionError, UsageError
from deliberate.search import SearchConfig
from deliberate.tasks import checked_name, detect, from_options
from deliberate.trace import check_writable


@dataclass
class Plan:
    """Everything checked before a model is loaded."""

    question: str
    task: Any
    strategy: Any
    config: SearchConfig
    budget: float | None
    seed: int
    task_options: dict[str, Any]
    trace_path: Path | None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


def prepare(settings: dict[str, Any], think: float | str | None, trace: Any, reserve: float | None) -> Plan:
    """Check the question, strategy, options, budget and trace path before loading
    anything; the plan ``run`` carries out. ``settings`` as ``resume_settings`` gives."""
    from deliberate import strategies

    question = settings["question"]
    if question is None or not question.strip():
        raise QuestionError("the question is empty")
    max_nodes = settings["max_nodes"]
    budget = parse_budget(think)
    if budget is None and max_nodes is None:
        raise DurationError("give a thinking time, a node budget (max_nodes), or both")
    if max_nodes is not None and max_nodes < 1:
        raise UsageError(f"max_nodes must be at least 1, got {max_nodes}")
    evaluator = settings["evaluator"] or "auto"
    if evaluator not in ("auto", "value", "vote", "none"):
        raise UsageError(f"evaluator must be 'auto', 'value', 'vote' or 'none', got {evaluator!r}")
    if settings["mode"] not in (None, "propose", "sample"):
        raise UsageError(f"mode must be 'propose' or 'sample', got {settings['mode']!r}")
    if reserve is not None and not 0.0 <= reserve < 1.0:
        raise UsageError(f"reserve must be at least 0 and below 1, got {reserve}")
    task_name = checked_name(settings["task"])
    task_name = detect(question) if task_name == "auto" else task_name
    task_options = dict(settings["task_options"] or {})
    tools = True if settings.get("tools") is None else bool(settings["tools"])
    the_task = from_options(task_name, task_options, tools=tools)
    the_task.root(question)  # reject a question the task cannot read before loading anything
    chosen = strategies.make(settings["strategy"] or "bfs", settings["options"])
    config = SearchConfig(
        mode=settings["mode"],
        evaluator=evaluator,  # type: ignore[arg-type]
        verifier=True if settings["verifier"] is None else bool(settings["verifier"]),
        chat=bool(settings["chat"]),
        max_nodes=max_nodes,
        tools=tools,
    )
    if reserve is not None:
        config.reserve = reserve
    chosen.configure(config)
    return Plan(
        question=question,
        task=the_task,
        strategy=chosen,
        config=config,
        budget=budget,
        seed=0 if settings["seed"] is None else int(settings["seed"]),
        task_options=task_options,
        trace_path=check_writable(trace) if trace is not None else None,
    )
