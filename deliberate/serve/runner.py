"""Run one request's search in its own thread, reporting thoughts as they appear.

The search is ``deliberate.api``'s own (the same preparation, budget, greedy finish
and trace as ``think``). Two things are added around it:

- a reasoning line for every new thought (depth, value, status), written to the
  entry's ``lines`` feed as soon as the thought is judged (or, unjudged, when the
  next expansion starts), for ``delta.reasoning_content``;
- the token cap: once the expand events' tokens pass ``max_tokens``, the search's
  deadline is cancelled, so it stops like an interrupted one (plus its short greedy
  finish), and the reply says ``stop_reason: "max_tokens"``.

A client that goes away cancels the same deadline.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from deliberate import api
from deliberate.clock import Deadline
from deliberate.search import Event, Search
from deliberate.serve.requests import ThinkRequest
from deliberate.serve.store import Entry
from deliberate.viewer.live import _json as event_json


@dataclasses.dataclass
class Outcome:
    """What a finished search gives the reply."""

    answer: str | None
    path: list[str]  # the thoughts from the question to the answer
    stop_reason: str
    nodes: int
    tokens: int
    prompt_tokens: int
    thinking_seconds: float
    solved: bool
    trace: dict[str, Any]
    answers: dict[str, int]  # every answer reached, with its chains


def prepare(request: ThinkRequest) -> Any:
    """Check the question, task and strategy as ``think`` does, before anything runs.

    Raises the ``UsageError`` that ``think`` would (a question the task cannot read).
    """
    r = request
    settings = {
        "question": r.question, "task": r.task, "strategy": r.strategy, "seed": r.seed, "options": r.options,
        "task_options": None, "verifier": r.verifier, "evaluator": None, "mode": None, "chat": None,
        "max_nodes": None,
    }  # fmt: skip
    plan = api.prepare(settings, r.think, None, None)
    if r.temperature is not None:
        plan.config.temperature = r.temperature
    if r.top_p is not None:
        plan.config.top_p = r.top_p
    return plan


class SearchRun:
    """One search on a thread; ``future`` resolves to an ``Outcome`` (or the error).

    ``plan`` is what ``prepare`` returned for ``request``.
    """

    def __init__(self, request: ThinkRequest, plan: Any, entry: Entry, backend: Any, model_meta: dict[str, Any],
                 on_end: Callable[[SearchRun], None]) -> None:  # fmt: skip
        self.request = request
        self.plan = plan
        self.entry = entry
        self.backend = backend
        self.model_meta = model_meta
        self.on_end = on_end
        self.deadline = Deadline.after(None)  # cancelled by a disconnect or the token cap
        self.future: Future[Outcome] = Future()
        self.started: float | None = None  # on the deadline's clock
        self.capped = False
        self._tokens = 0
        self._search: Search | None = None
        self._unsaid: list[int] = []  # new nodes whose line is not written yet
        self._thread = threading.Thread(target=self._main, name=f"search-{entry.id}", daemon=True)

    def start(self) -> None:
        self.started = self.deadline.clock.now()
        self._thread.start()

    def cancel(self) -> None:
        """End the search now (within one decode step); safe from any thread."""
        self.deadline.cancel()

    # -- the search thread ------------------------------------------------------------------
    def _main(self) -> None:
        try:
            outcome = self._think()
        except BaseException as error:  # the reply reports it; the thread must not die silently
            self.entry.finish(None, {"error": str(error)})
            self.future.set_exception(error)
        else:
            self.entry.finish(outcome.trace, {"stop_reason": outcome.stop_reason, "nodes": outcome.nodes,
                                              "answer": outcome.answer})  # fmt: skip
            self.future.set_result(outcome)
        finally:
            self.on_end(self)

    def _think(self) -> Outcome:
        r, plan = self.request, self.plan
        plan.strategy = _Watched(plan.strategy, self._watch)
        result = api.run(plan, self.backend, self.model_meta, 0.0, None, self.deadline, self._on_event)
        meta = result.trace["meta"]
        stop = "max_tokens" if self.capped and not result.solved else result.stats.stop_reason
        meta["serve"] = {"trace_id": self.entry.id, "stop_reason": stop, "max_tokens": r.max_tokens}
        best = meta["answer_node"]
        path = [result.graph[n]["thought"] for n in result.graph.path(best)[1:]] if best is not None else []
        return Outcome(
            answer=result.answer,
            path=path,
            stop_reason=stop,
            nodes=result.stats.nodes,
            tokens=result.stats.tokens,
            prompt_tokens=result.stats.prompt_tokens,
            thinking_seconds=result.stats.thinking_seconds,
            solved=result.solved,
            trace=result.trace,
            answers=result.graph.answers(),
        )

    def _watch(self, search: Search) -> None:
        self._search = search

    def _on_event(self, event: Event) -> None:
        self.entry.events.push(event_json(event))
        kind = event["type"]
        if kind == "expand":
            self._say(list(self._unsaid))  # judged or not, their round is over
            self._unsaid = [child for group in event["children"] for child in group]
            self._tokens += int(event.get("tokens", 0))
            if self.request.max_tokens is not None and self._tokens >= self.request.max_tokens:
                self.capped = True
                self.deadline.cancel()
        elif kind == "evaluate":
            self._say([n for n in event["nodes"] if n in self._unsaid])
        elif kind == "verify":
            self._say([event["node"]] if event["node"] in self._unsaid else [])
        elif kind in ("finish", "answer"):
            self._say(list(self._unsaid))

    def _say(self, nodes: list[int]) -> None:
        if self._search is None:
            return
        graph = self._search.graph
        for node in nodes:
            self._unsaid.remove(node)
            if node not in graph.g:
                continue
            attrs = graph[node]
            depth = attrs["depth"]
            value = "-" if attrs["value"] is None else f"{attrs['value']:.2f}"
            thought = " ".join(str(attrs["thought"]).split())
            self.entry.lines.push(f"{'  ' * (depth - 1)}[depth {depth} · value {value} · {attrs['status']}] {thought}\n")


class _Watched:
    """The chosen strategy, unchanged, except that it shows the search to the run
    before running it, so that events can be read against the graph."""

    def __init__(self, strategy: Any, watch: Callable[[Search], None]) -> None:
        self._strategy = strategy
        self._watch = watch

    def run(self, search: Search) -> None:
        self._watch(search)
        self._strategy.run(search)

    def __getattr__(self, name: str) -> Any:  # name, options, configure: the strategy's own
        return getattr(self._strategy, name)
