"""The library entry point: ``think(question, ...) -> Result``.

``think`` checks everything it can before loading a model (``prepare``: the question,
the strategy and its options, the trace path), loads the model without counting that time,
runs the strategy under the budget, finishes greedily if no answer exists yet, and
returns the answer with the whole graph and trace. Ctrl-C ends the search early
through the same path, so the trace is complete either way.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deliberate import __version__
from deliberate.backends import Backend, open_backend
from deliberate.clock import Deadline, MonotonicClock
from deliberate.errors import ContextOverflowError
from deliberate.graph import ThoughtGraph
from deliberate.models import is_server_url, model_hash
from deliberate.options import check_names
from deliberate.prepare import Plan, prepare
from deliberate.resume import given_settings, resume_settings
from deliberate.search import Event, Search, StopSearch
from deliberate.trace import build_trace, load_graph, read_trace, write_trace


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
    tool_calls: int = 0  # calls whose results are in the tree's steps
    enumerated: int = 0  # children whose move the search listed rather than the model


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


@dataclass
class ThinkOptions:
    """Every setting of one ``think`` besides the question, the model and the hooks.

    Give them as keywords to ``think``, or as ``settings=`` (a ``ThinkOptions`` or a
    dict); keywords win. An unknown name is an error that lists these.
    """

    task: str | None = None  # "auto" (default), "game24", "math", "generic", or a plugin's
    strategy: str | None = None  # default "bfs"
    think: str | float | None = 30.0  # seconds, or "30s"; None or "none": no time limit
    seed: int | None = None
    options: Any = None  # strategy options: a dict, or "key=value" strings
    max_nodes: int | None = None  # a node budget, instead of or beside the clock
    verifier: bool | None = None  # default True
    evaluator: str | None = None  # "auto" (default), "value", "vote" or "none"
    mode: str | None = None  # "propose" or "sample"; default: the task's
    chat: bool | None = None  # default False
    tools: bool | None = None  # default True
    task_options: Any = None  # a dict of the task's own options
    backend_options: Any = None  # a dict for open_backend (n_threads, n_gpu_layers...)
    trace: str | os.PathLike[str] | None = None  # write the trace here
    resume: Any = None  # a trace (path or dict) to continue
    reserve: float | None = None  # share of the budget kept for the greedy finish (0.1)


def think_options(settings: ThinkOptions | Mapping[str, Any] | None, keywords: Mapping[str, Any]) -> ThinkOptions:
    """``settings`` with ``keywords`` on top, each name checked against ``ThinkOptions``.

    Values are taken as given: this is the Python API, where ``evaluator="none"`` is
    the string, not a missing value (the CLI parses its own flags)."""
    base = dataclasses.asdict(settings) if isinstance(settings, ThinkOptions) else dict(settings or {})
    check_names(ThinkOptions, base, owner="think()")
    check_names(ThinkOptions, keywords, owner="think()")
    return ThinkOptions(**{**base, **keywords})


def load(model: str | os.PathLike[str] | None = None, **backend_options: Any) -> Backend:
    """Load ``model`` once, for many ``think(..., model=...)`` calls.

    ``model`` is what ``think`` takes (a GGUF path, a server URL, or None for
    ``$DELIBERATE_MODEL`` or the embedded model); ``backend_options`` are the backend's
    settings (``n_threads``, ``n_ctx``, ``n_gpu_layers``, ...). ``think`` leaves a
    loaded model open, so each call skips the load; close it with ``close()``, or use
    it as ``with deliberate.load() as model:``.
    """
    return open_backend(model, **backend_options)


def think(
    question: str | None = None,
    *,
    model: str | os.PathLike[str] | Backend | None = None,
    on_event: Callable[[Event], None] | None = None,
    deadline: Deadline | None = None,
    settings: ThinkOptions | Mapping[str, Any] | None = None,
    **keywords: Any,
) -> Result:
    """Think about ``question`` for ``think`` seconds (or ``"30s"``) and answer.

    The keywords are ``ThinkOptions``' fields. ``task`` "auto" (the default) picks
    game24 for a Game-of-24 question, math for a number to compute (bare arithmetic,
    or a word problem asking how many, how much, the total...) and generic otherwise
    (``deliberate.tasks.detect``); ``strategy`` defaults to
    "bfs". ``model`` is a GGUF path, a server URL (``http://host:port/v1``), a backend
    object, or None for ``$DELIBERATE_MODEL`` or the embedded model. A backend object is
    left open; one opened here is closed before returning. ``max_nodes`` bounds the
    graph instead of (or as well as) the clock; ``think=None`` (or ``"none"``) means no
    time limit. ``verifier`` (default True), ``evaluator`` ("auto", the default: the
    value judge only where this model's judge profile from ``deliberate bench judge
    --save`` shows it separates good states from bad, and everywhere when there is no
    profile; "value"; "vote"; or "none": no model judge, every state counts as 0.5),
    ``mode`` ("propose" or "sample"; default: the task's choice), ``chat`` (default
    False) and ``tools`` (default True: the task's tools, such as the calculator,
    compute what they can) shape the search; ``reserve`` is the share of the budget
    kept for the greedy finish (default 0.1).

    ``resume`` continues a saved trace with more time; the graph is restored, not
    recomputed, and every setting the trace recorded is restored too, unless given
    here, in which case the new trace records what changed. ``deadline`` lets a caller
    cancel from another thread (Ctrl-C).
    """
    opts = think_options(settings, keywords)
    previous = read_trace(opts.resume) if isinstance(opts.resume, (str, os.PathLike)) else opts.resume
    run_settings, overrides = resume_settings(previous, given_settings(question, opts))
    plan = prepare(run_settings, opts.think, opts.trace, opts.reserve)
    plan.overrides = overrides
    owned = model is None or isinstance(model, (str, os.PathLike))  # we open it, so we close it
    loading = time.perf_counter()
    backend = open_backend(model, **dict(opts.backend_options or {}))
    model_meta = _model_meta(backend, model)  # hashing belongs to loading, not thinking
    load_seconds = time.perf_counter() - loading
    try:
        return run(plan, backend, model_meta, load_seconds, previous, deadline, on_event)
    finally:
        if owned:
            backend.close()


def run(
    plan: Plan,
    backend: Backend,
    model_meta: dict[str, Any],
    load_seconds: float,
    previous: dict[str, Any] | None,
    deadline: Deadline | None,
    on_event: Callable[[Event], None] | None,
) -> Result:
    """Search until the budget ends, finish greedily if need be, and build the result.

    ``deadline``, when given, is the caller's: it can cancel, and is never changed."""
    clock = deadline.clock if deadline is not None else getattr(backend, "clock", None) or MonotonicClock()
    own = Deadline.after(plan.budget, clock)
    if deadline is not None:
        # The caller's deadline is not changed: it only cancels (and may end sooner).
        own = deadline.sooner(own.remaining()) if plan.budget is not None else deadline
    search = Search(
        plan.question,
        plan.task,
        backend,
        own,
        budget=plan.budget,
        config=plan.config,
        seed=plan.seed,
        on_event=on_event,
        graph=load_graph(previous) if previous else None,
        events=list(previous["events"]) if previous else None,
        elapsed_before=previous["meta"]["timings"]["thinking_seconds"] if previous else 0.0,
    )
    evaluator = _choose_judge(plan, backend, search) if plan.config.evaluator == "auto" else None
    started = search.elapsed()
    reason = _search(plan, search, own)
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
        tool_calls=search.stats.tool_calls,
        enumerated=search.stats.enumerated,
    )
    meta = {
        "deliberate": __version__,
        "question": plan.question,
        "task": plan.task.name,
        "task_options": plan.task_options,
        "strategy": plan.strategy.name,
        "options": dataclasses.asdict(plan.strategy.options),
        "config": dataclasses.asdict(plan.config),
        **model_meta,
        "backend": backend.describe(),
        "seed": plan.seed,
        "budget": {"think": plan.budget, "max_nodes": plan.config.max_nodes, "reserve": plan.config.reserve},
        "timings": {"load_seconds": stats.load_seconds, "thinking_seconds": stats.thinking_seconds},
        "stop_reason": reason,
        "answer": answer,
        "answer_node": best,
        "stats": dataclasses.asdict(stats),
    }
    if evaluator is not None:
        evaluator["depths"] = {str(e["depth"]): {"judge": e["judge"], "why": e["why"]} for e in search.events if e["type"] == "evaluator"}
        meta["evaluator"] = evaluator
    if previous is not None:
        meta["resumed"] = {
            "thinking_seconds_before": previous["meta"]["timings"]["thinking_seconds"],
            "overrides": plan.overrides,
        }
    record = build_trace(meta, search.events, search.graph)
    if plan.trace_path is not None:
        write_trace(plan.trace_path, record)
    return Result(answer, search.graph, record, stats)


def _search(plan: Plan, search: Search, deadline: Deadline) -> str:
    """Run the strategy, then the greedy finish; the stop reason. Nothing but a second
    Ctrl-C escapes: the answer so far and the trace are kept whatever happens."""
    try:
        plan.strategy.run(search)
        reason = "complete"
    except StopSearch as stop:
        reason = stop.reason
    except ContextOverflowError:
        if len(search.graph) == 1 and search.best_terminal() is None:
            raise  # the question itself does not fit: nothing to keep, say so
        reason = "context"  # the cache filled up mid-search: keep what was found
    except KeyboardInterrupt:
        deadline.cancel()
        reason = "interrupted"
    if deadline.cancelled:
        reason = "interrupted"
    try:
        search.finish(until_the_end=reason != "complete")
    except KeyboardInterrupt:
        reason = "interrupted"
    if search.solved() and reason in ("deadline", "complete"):
        reason = "solved"  # the finish found a verified answer
    if deadline.cancelled:
        reason = "interrupted"
    return reason


def _choose_judge(plan: Plan, backend: Backend, search: Search) -> dict[str, Any]:
    """For ``evaluator="auto"``: read this model's judge profile for the task and let it
    decide, per depth, whether the judge is asked. What it found goes into the trace."""
    from deliberate.profiles import judge_worth_asking, load_profile, profiles_path

    path = getattr(getattr(backend, "model", None), "path", None)
    if not isinstance(path, Path):
        return {"setting": "auto", "profile": None, "why": "the model has no file to key a judge profile by"}
    profile = load_profile(model_hash(path), plan.task.name)
    search.judge_policy = lambda depth: judge_worth_asking(profile, depth, "value")
    where = str(profiles_path())
    return {"setting": "auto", "profile": where if profile else None,
            "why": "judge profile found" if profile else "no judge profile for this model and task: judging everywhere"}


def _model_meta(backend: Backend, model: Any) -> dict[str, Any]:
    path = getattr(getattr(backend, "model", None), "path", None)
    if isinstance(path, Path):
        return {"model": path.name, "model_sha256": model_hash(path)[:12]}
    name = str(model) if is_server_url(model) else backend.describe().get("model", "unknown")
    return {"model": name, "model_sha256": None}
