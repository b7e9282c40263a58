"""The library entry point: ``think(question, ...) -> Result``.

``think`` checks everything it can before loading a model (the question, the
strategy and its options, the trace path), loads the model without counting that time,
runs the strategy under the budget, finishes greedily if no answer exists yet, and
returns the answer with the whole graph and trace. Ctrl-C ends the search early
through the same path, so the trace is complete either way.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deliberate import __version__
from deliberate.backends import Backend, open_backend
from deliberate.clock import Deadline, MonotonicClock
from deliberate.duration import parse_duration
from deliberate.errors import DurationError, QuestionError, UsageError
from deliberate.graph import ThoughtGraph
from deliberate.models import is_server_url, model_hash
from deliberate.search import Event, Search, SearchConfig, StopSearch
from deliberate.tasks import detect, make_task
from deliberate.trace import build_trace, check_writable, load_graph, read_trace, write_trace


@dataclass
class Stats:
    thinking_seconds: float
    load_seconds: float
    nodes: int
    tokens: int  # completion tokens generated while thinking
    prompt_tokens: int
    tokens_per_second: float
    stop_reason: str
    expansions: int
    evaluations: int
    merged: int


@dataclass
class Result:
    answer: str | None
    graph: ThoughtGraph
    trace: dict[str, Any]
    stats: Stats

    @property
    def solved(self) -> bool:
        """True only when the task verified the answer exactly (Game of 24, say)."""
        return self.graph.status(self.trace["meta"]["answer_node"]) == "solved" if self.answer else False


def think(
    question: str | None = None,
    *,
    task: str | None = None,
    strategy: str | None = None,
    model: str | os.PathLike[str] | Backend | None = None,
    think: float | str | None = 30.0,
    seed: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    options: Mapping[str, Any] | Iterable[str] | None = None,
    max_nodes: int | None = None,
    verifier: bool = True,
    evaluator: str = "value",
    mode: str | None = None,
    chat: bool = False,
    task_options: Mapping[str, Any] | None = None,
    backend_options: Mapping[str, Any] | None = None,
    trace: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | dict[str, Any] | None = None,
    deadline: Deadline | None = None,
) -> Result:
    """Think about ``question`` for ``think`` seconds (or ``"30s"``) and answer.

    ``task`` "auto" (the default) picks game24 for a Game-of-24 question and generic
    otherwise; ``strategy`` defaults to "bfs". When resuming, both default to what the
    trace used. ``model`` is a GGUF path, a server URL (``http://host:port/v1``), a backend
    object, or None for ``$DELIBERATE_MODEL`` or the embedded model. A backend object
    is left open; one opened here is closed before returning. ``max_nodes`` bounds the
    graph instead of (or as well as) the clock; ``think=None`` means no time limit.
    ``resume`` continues a saved trace with more time; the graph is restored, not
    recomputed. ``deadline`` lets a caller cancel from another thread (Ctrl-C).
    """
    from deliberate import strategies

    previous = read_trace(resume) if isinstance(resume, (str, os.PathLike)) else resume
    if previous is not None:
        meta = previous["meta"]
        question = question if question is not None else meta["question"]
        task = task or meta.get("task")
        strategy = strategy or meta.get("strategy")
        options = options if options is not None else meta.get("options")
        task_options = task_options if task_options is not None else meta.get("task_options")
        seed = seed if seed is not None else meta.get("seed")
    if question is None or not question.strip():
        raise QuestionError("the question is empty")
    task = detect(question) if task in (None, "auto") else task
    strategy = strategy or "bfs"
    budget = None if think is None else parse_duration(think)
    if budget is None and max_nodes is None:
        raise DurationError("give a thinking time, a node budget (max_nodes), or both")
    if max_nodes is not None and max_nodes < 1:
        raise UsageError(f"max_nodes must be at least 1, got {max_nodes}")
    if evaluator not in ("value", "vote"):
        raise UsageError(f"evaluator must be 'value' or 'vote', got {evaluator!r}")
    if mode not in (None, "propose", "sample"):
        raise UsageError(f"mode must be 'propose' or 'sample', got {mode!r}")
    the_task = make_task(task, **dict(task_options or {}))
    the_task.root(question)  # reject a question the task cannot read before loading anything
    chosen = strategies.make(strategy, options)
    trace_path = check_writable(trace) if trace is not None else None
    seed = 0 if seed is None else int(seed)

    config = SearchConfig(mode=mode, evaluator=evaluator, verifier=verifier, chat=chat, max_nodes=max_nodes)  # type: ignore[arg-type]
    chosen.configure(config)

    owned = not (model is not None and not isinstance(model, (str, os.PathLike)))
    loading = time.perf_counter()
    backend = open_backend(model, **dict(backend_options or {}))
    model_meta = _model_meta(backend, model)  # hashing belongs to loading, not thinking
    load_seconds = time.perf_counter() - loading
    try:
        clock = deadline.clock if deadline is not None else getattr(backend, "clock", None) or MonotonicClock()
        if deadline is None:
            deadline = Deadline.after(budget, clock)
        elif budget is not None:
            deadline.at = min(deadline.at, deadline.clock.now() + budget)
        search = Search(
            question,
            the_task,
            backend,
            deadline,
            budget=budget,
            config=config,
            seed=seed,
            on_event=on_event,
            graph=load_graph(previous) if previous else None,
            events=list(previous["events"]) if previous else None,
            elapsed_before=previous["meta"]["timings"]["thinking_seconds"] if previous else 0.0,
        )
        started = search.elapsed()
        try:
            chosen.run(search)
            reason = "complete"
        except StopSearch as stop:
            reason = stop.reason
        except KeyboardInterrupt:
            deadline.cancel()
            reason = "interrupted"
        if deadline.cancelled:
            reason = "interrupted"
        try:
            search.finish()
        except KeyboardInterrupt:
            reason = "interrupted"
        best = search.best_terminal()
        answer = search.answer()
        search.emit("answer", node=best, answer=answer, reason=reason)
        thinking = search.elapsed()
        stats = Stats(
            thinking_seconds=round(thinking, 4),
            load_seconds=round(load_seconds, 4),
            nodes=len(search.graph),
            tokens=search.stats.tokens,
            prompt_tokens=search.stats.prompt_tokens,
            tokens_per_second=round(search.stats.tokens / max(thinking - started, 1e-9), 2),
            stop_reason=reason,
            expansions=search.stats.expansions,
            evaluations=search.stats.evaluations,
            merged=search.stats.merged,
        )
        meta = {
            "deliberate": __version__,
            "question": question,
            "task": the_task.name,
            "task_options": dict(task_options or {}),
            "strategy": chosen.name,
            "options": dataclasses.asdict(chosen.options),
            "config": dataclasses.asdict(config),
            **model_meta,
            "backend": backend.describe(),
            "seed": seed,
            "budget": {"think": budget, "max_nodes": max_nodes, "reserve": config.reserve},
            "timings": {"load_seconds": stats.load_seconds, "thinking_seconds": stats.thinking_seconds},
            "stop_reason": reason,
            "answer": answer,
            "answer_node": best,
            "stats": dataclasses.asdict(stats),
        }
        record = build_trace(meta, search.events, search.graph)
        if trace_path is not None:
            write_trace(trace_path, record)
        return Result(answer, search.graph, record, stats)
    finally:
        if owned:
            backend.close()


def _model_meta(backend: Backend, model: Any) -> dict[str, Any]:
    path = getattr(getattr(backend, "model", None), "path", None)
    if isinstance(path, Path):
        return {"model": path.name, "model_sha256": model_hash(path)[:12]}
    name = str(model) if is_server_url(model) else backend.describe().get("model", "unknown")
    return {"model": name, "model_sha256": None}
