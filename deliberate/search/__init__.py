"""The search: the only way a strategy reaches the model, the task or the clock.

A strategy calls ``expand``, ``evaluate``, ``prune``, ``backtrack`` and ``rollout``.
Each of them checks the budget first and raises ``StopSearch`` when it is spent, so
a strategy holds no timing code and can be stopped at any call. The search keeps the
thought graph, the event log and the best answer so far.

The budget has two parts. Until some terminal answer exists, exploration stops a
reserved slice (10 % by default) before the deadline, and ``finish`` spends that slice
completing the most promising partial state greedily. Once an answer exists,
exploration may use the whole budget.

The search is one class in five files, one idea each: ``plan`` (which requests an
expansion sends), ``generate`` (asking the model for thoughts and adding them to the
graph), ``judge`` (the value and vote judges), ``finish`` (the anytime answer: the best
terminal, or a greedy finish of the best partial state) and this file (the budget, the
events, pruning and rollouts).
``config`` holds the settings and counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deliberate.backends.base import Backend
from deliberate.clock import Deadline
from deliberate.graph import ThoughtGraph
from deliberate.search.config import (
    FINAL,
    FINISH_ON_INTERRUPT,
    OPEN,
    STALL_LIMIT,
    Event,
    SearchConfig,
    SearchStats,
    StopSearch,
)
from deliberate.search.finish import Finishing
from deliberate.search.generate import Generation
from deliberate.search.judge import Judging, vote_value
from deliberate.search.plan import Planning
from deliberate.tasks.base import Task

__all__ = [
    "FINAL", "FINISH_ON_INTERRUPT", "OPEN", "STALL_LIMIT", "Event", "Search", "SearchConfig", "SearchStats",
    "StopSearch", "vote_value",
]  # fmt: skip


class Search(Generation, Planning, Judging, Finishing):
    """One search: the thought graph, the budget, the events, and the operations a
    strategy calls. Its parts live in ``plan``, ``generate``, ``judge`` and ``finish``."""

    def __init__(
        self,
        question: str,
        task: Task,
        backend: Backend,
        deadline: Deadline,
        *,
        budget: float | None,
        config: SearchConfig | None = None,
        seed: int = 0,
        on_event: Callable[[Event], None] | None = None,
        graph: ThoughtGraph | None = None,
        events: list[Event] | None = None,
        elapsed_before: float = 0.0,
    ) -> None:
        self.question = question
        self.task = task
        self.backend = backend
        self.deadline = deadline
        self.budget = budget  # seconds, or None for no time limit
        self.config = config or SearchConfig()
        self.seed = seed
        self.on_event = on_event
        self.stats = SearchStats()
        self.stop_reason: str | None = None
        self._finishing: Deadline | None = None
        self._started = deadline.clock.now()
        self._elapsed_before = elapsed_before  # thinking time spent before a resume
        if graph is None:
            state = task.root(question)
            graph = ThoughtGraph(question, state, task.key(state), seed)
        self.graph = graph
        self.events: list[Event] = events if events is not None else []
        self._chat = backend.format_chat if self.config.chat else None
        self._barren = 0  # expansions in a row that added no node
        # For evaluator "auto": depth -> (ask the judge?, why); None means ask, as "value".
        self.judge_policy: Callable[[int], tuple[bool | None, str]] | None = None
        self._judge_at: dict[int, bool] = {}

    # -- time --------------------------------------------------------------------
    def elapsed(self) -> float:
        """Thinking seconds so far, including any earlier run that this one resumes."""
        return self._elapsed_before + self.deadline.clock.now() - self._started

    def _explore_deadline(self) -> Deadline:
        if self._finishing is not None:
            return self._finishing
        if self.budget is None or self.best_terminal() is not None:
            return self.deadline
        return self.deadline.sooner(max(0.0, self.deadline.remaining() - self.config.reserve * self.budget))

    def check(self) -> None:
        """Raise ``StopSearch`` if the search must end now."""
        if self.full():
            raise StopSearch("max-nodes")  # a hard cap: the greedy finish obeys it too
        if self.budget is None and self._barren >= STALL_LIMIT:
            raise StopSearch("stalled")
        if self._finishing is not None:
            if self._finishing.expired():
                raise StopSearch("interrupted" if self.deadline.cancelled else "deadline")
            return
        if self.deadline.cancelled:
            raise StopSearch("interrupted")
        if self.config.stop_when_solved and self.solved():
            raise StopSearch("solved")
        if self._explore_deadline().expired():
            raise StopSearch("deadline")

    def full(self) -> bool:
        """Whether the graph holds ``max_nodes`` nodes, so that no operation may add one."""
        return self.config.max_nodes is not None and len(self.graph) >= self.config.max_nodes

    # -- events ------------------------------------------------------------------
    def emit(self, kind: str, **data: Any) -> None:
        event = {"t": round(self.elapsed(), 4), "type": kind, **data}
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    # -- operations ----------------------------------------------------------------

    def prune(self, node: int, reason: str, *, dead: bool = False) -> None:
        """Stop exploring ``node``. ``dead`` says it is proven hopeless; otherwise the
        prune is the strategy's choice, and ``revive`` can take it back."""
        if self.graph.status(node) in OPEN:
            self.graph.set_status(node, "pruned")
            self.graph.set_pruned(node, reason, dead=dead)
            self.emit("prune", node=node, reason=reason, dead=dead)

    def revivable(self) -> list[int]:
        """Nodes pruned by a strategy's choice rather than proven dead."""
        return [n for n in self.graph.with_status("pruned") if not (self.graph[n]["pruned"] or {}).get("dead")]

    def revive(self, node: int) -> None:
        """Take back a strategy's prune: with time left, no state that is not proven
        dead stays unexplored."""
        if node in self.revivable():
            self.graph.set_status(node, "expanded" if self.graph[node]["expansions"] else "open")
            self.graph.set_pruned(node, None)
            self.emit("revive", node=node)

    def backtrack(self, from_node: int, to_node: int) -> None:
        self.emit("backtrack", source=from_node, target=to_node)

    def exhausted(self, node: int) -> bool:
        """Whether the task proves that ``node`` has nothing left to try: it lists the
        legal moves of the state, and each of them has given its child.

        A model that failed to give a step, however often, proves nothing: the node is
        asked again. Without a list of moves a node is never exhausted.
        """
        moves = self._moves(node)
        return moves is not None and set(moves) <= set(self.graph[node]["moves_done"])

    def is_terminal(self, node: int) -> bool:
        return self.graph.status(node) in FINAL

    def rollout(self, nodes: Sequence[int], *, temperature: float | None = None, retries: int = 2) -> list[int | None]:
        """Continue each node one sampled step at a time until it is final.

        All rollouts advance together, one batched call per step. A rollout that
        yields no valid step gets ``retries`` more tries before it is abandoned.
        Returns the final node each rollout reached, or None.
        """
        tips: list[int | None] = list(nodes)
        misses = [0] * len(tips)
        while True:
            active = [i for i, tip in enumerate(tips) if tip is not None and not self.is_terminal(tip)]
            active = [i for i in active if self.graph.status(tips[i]) in OPEN]  # type: ignore[arg-type]
            if not active:
                return [tip if tip is not None and self.is_terminal(tip) else None for tip in tips]
            found = self._expand([tips[i] for i in active], 1, mode="sample", temperature=temperature, rollout=True)  # type: ignore[misc]
            for i, new, follow in zip(active, found.children, found.merges):
                if new:
                    tips[i], misses[i] = new[0], 0
                    continue
                # A step into a state the graph already has: carry on from that node.
                if follow and (self.graph.status(follow[-1]) in OPEN or self.is_terminal(follow[-1])):
                    tips[i], misses[i] = follow[-1], 0
                    continue
                misses[i] += 1
                if misses[i] > retries:
                    tips[i] = None

    # -- answers -----------------------------------------------------------------
