"""The thought graph: one ``networkx.DiGraph`` shared by every strategy.

Node 0 is the question. Every other node is a thought (one reasoning step) and the
task state it leads to. Edges run parent -> child, and each node has exactly one
parent, so the graph is always a tree. When a step reaches a state that already has
a node (same normalized key), no new node is made: the existing node records the
alias, and the value computed for that state is shared.

Node attributes (all JSON-ready so the trace can hold the graph as node-link data):
    thought: str          the step text that produced this node ("" for the root)
    state: dict           the task state after the step
    key: str              the task's normalized form of the state, for merging
    depth: int            steps from the root
    parent: int | None
    status: str           one of STATUSES
    values: list[dict]    every value obtained: {"value", "source", "detail", "t"}
    value: float | None   the value the strategies rank by (see ``settle_value``)
    visits, value_sum     Monte Carlo statistics (only MCTS writes them)
    tokens: int           completion tokens spent producing this thought
    created: float        seconds since the search began
    seed: int             derived from the parent's seed and this child's index
    expansions: int       how many times this node was expanded
    tries: int            samples asked of this node, over all its expansions (seeds count them)
    moves_done: list      the task's moves that gave this node a valid step (see ``Task.moves``)
    asks: dict            opening -> how many expansions asked under it (for re-asks' warmth)
    stale: int            expansions in a row that found no new move (then the search enumerates)
    origin: str | None    who chose this step's move: "model" (sampled or proposed) or
                          "enumerated" (the search listed the move and a tool completed it)
    calls: list           tool calls that wrote part of the thought: {"tool", "input", "output"}
    pruned: dict | None   why the node was pruned: {"reason": str, "dead": bool}; a dead
                          node is proven hopeless, any other prune is a strategy's choice
                          that the strategy may take back (``Search.revive``)
    aliases: list         [parent, thought] pairs that reached the same state later
    answer: str | None    set on terminal nodes
    rollout: bool         made during an MCTS rollout
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import networkx as nx

STATUSES = ("open", "expanded", "pruned", "terminal", "solved", "failed")
VALUE_SOURCES = ("value", "vote", "verifier", "rollout")
ROOT = 0


class ThoughtGraph:
    def __init__(self, question: str, root_state: dict[str, Any], root_key: str, seed: int) -> None:
        self.g: nx.DiGraph = nx.DiGraph(question=question)
        self._by_key: dict[str, int] = {}
        self._add(None, "", root_state, root_key, depth=0, seed=seed, created=0.0)

    # -- building ---------------------------------------------------------------
    def _add(
        self, parent: int | None, thought: str, state: dict, key: str, *, depth: int, seed: int, created: float
    ) -> int:
        node = self.g.number_of_nodes()  # nodes are never removed, so ids stay dense
        self.g.add_node(
            node,
            thought=thought,
            state=state,
            key=key,
            depth=depth,
            parent=parent,
            status="open",
            values=[],
            value=None,
            visits=0,
            value_sum=0.0,
            tokens=0,
            created=created,
            seed=seed,
            expansions=0,
            tries=0,
            moves_done=[],
            asks={},
            stale=0,
            origin=None,
            calls=[],
            pruned=None,
            aliases=[],
            answer=None,
            rollout=False,
        )
        if parent is not None:
            self.g.add_edge(parent, node)
        self._by_key[key] = node
        return node

    def add_child(
        self, parent: int, thought: str, state: dict, key: str, *, seed: int, created: float, tokens: int = 0
    ) -> tuple[int, bool]:
        """The child's node id and whether it merged into an existing node."""
        existing = self._by_key.get(key)
        if existing is not None:
            self.g.nodes[existing]["aliases"].append([parent, thought])
            return existing, True
        node = self._add(parent, thought, state, key, depth=self.depth(parent) + 1, seed=seed, created=created)
        self.g.nodes[node]["tokens"] = tokens
        return node, False

    def add_value(self, node: int, value: float, source: str, detail: Any = None, t: float = 0.0) -> None:
        if source not in VALUE_SOURCES:
            raise ValueError(f"unknown value source {source!r}")
        attrs = self.g.nodes[node]
        attrs["values"].append({"value": float(value), "source": source, "detail": detail, "t": round(t, 4)})
        attrs["value"] = settle_value(attrs["values"])

    def set_status(self, node: int, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.g.nodes[node]["status"] = status

    # -- reading ----------------------------------------------------------------
    def __getitem__(self, node: int) -> dict[str, Any]:
        return self.g.nodes[node]

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def __iter__(self) -> Iterator[int]:
        return iter(self.g.nodes)

    @property
    def question(self) -> str:
        return self.g.graph["question"]

    def children(self, node: int) -> list[int]:
        return list(self.g.successors(node))

    def parent(self, node: int) -> int | None:
        return self.g.nodes[node]["parent"]

    def depth(self, node: int) -> int:
        return self.g.nodes[node]["depth"]

    def status(self, node: int) -> str:
        return self.g.nodes[node]["status"]

    def value(self, node: int) -> float | None:
        return self.g.nodes[node]["value"]

    def path(self, node: int) -> list[int]:
        """Node ids from the root down to ``node``."""
        return list(reversed(list(self.ancestors_and_self(node))))

    def ancestors_and_self(self, node: int) -> Iterable[int]:
        current: int | None = node
        while current is not None:
            yield current
            current = self.g.nodes[current]["parent"]

    def node_for_key(self, key: str) -> int | None:
        return self._by_key.get(key)

    def with_status(self, *statuses: str) -> list[int]:
        return [n for n, s in self.g.nodes(data="status") if s in statuses]

    # -- persistence ------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return nx.node_link_data(self.g, edges="edges")

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ThoughtGraph:
        graph = cls.__new__(cls)
        graph.g = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
        for _, attrs in graph.g.nodes(data=True):
            # Traces written before these fields existed resume with their defaults.
            attrs.setdefault("tries", attrs.pop("tried", 0))
            attrs.setdefault("moves_done", [])
            attrs.setdefault("asks", {})
            attrs.setdefault("stale", 0)
            attrs.setdefault("origin", None if attrs.get("parent") is None else "model")
            attrs.setdefault("calls", [])
            attrs.setdefault("pruned", {"reason": "", "dead": False} if attrs.get("status") == "pruned" else None)
            attrs.pop("openings_done", None)
        graph._by_key = {attrs["key"]: node for node, attrs in graph.g.nodes(data=True)}
        return graph


def settle_value(values: list[dict[str, Any]]) -> float | None:
    """One number per node: a verifier's word is final; otherwise the mean model value.

    A verifier is exact (the task checked the arithmetic or the answer), so it overrides
    any model opinion. Model values from ``value`` and ``vote`` are averaged, because
    a node judged again (after a resume, say) should not forget the earlier judgement.
    """
    verified = [v["value"] for v in values if v["source"] == "verifier"]
    if verified:
        return verified[-1]
    model = [v["value"] for v in values if v["source"] != "verifier"]
    return sum(model) / len(model) if model else None
