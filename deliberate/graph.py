"""The thought graph: one ``networkx.DiGraph`` shared by every strategy.

Node 0 is the question. Every other node is a thought (one reasoning step) and the
task state it leads to. Edges run parent -> child, and each node has exactly one
parent, so the graph is always a tree. When a step reaches a state that already has
a node (same normalized key), no new node is made: the existing node records the
alias, and the value computed for that state is shared.

Every node holds every field of ``NodeData``, created whole by the graph. Strategies
and the search change nodes only through the graph's methods (``backup``,
``record_try``, ``record_expansion``, ``set_pruned``...), never by indexing the dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypedDict

import networkx as nx

STATUSES = ("open", "expanded", "pruned", "terminal", "solved", "failed")
VALUE_SOURCES = ("value", "vote", "verifier", "rollout")
ROOT = 0


class NodeData(TypedDict):
    """Every field a node has, with its meaning. All JSON-ready: the trace holds the
    graph as node-link data (plus an ``id``)."""

    thought: str  # the step text that produced this node ("" for the root)
    state: dict[str, Any]  # the task state after the step
    key: str  # the task's normalized form of the state, for merging
    depth: int  # steps from the root
    parent: int | None
    status: str  # one of STATUSES
    values: list[dict[str, Any]]  # every value obtained: {"value", "source", "detail", "t"}
    value: float | None  # the value the strategies rank by (see ``settle_value``)
    visits: int  # Monte Carlo visits (``backup``; only MCTS uses them)
    value_sum: float  # and the sum of the rewards backed up through this node
    tokens: int  # completion tokens spent producing this thought
    created: float  # seconds since the search began
    seed: int  # derived from the parent's seed and this child's index
    expansions: int  # how many times this node was expanded
    tries: int  # samples asked of this node, over all its expansions (seeds count them)
    moves_done: list[str]  # the task's moves that gave this node a valid step (``Task.moves``)
    asks: dict[str, int]  # opening -> how many expansions asked under it (for re-asks' warmth)
    stale: int  # expansions in a row that found (almost) no new move; then the search enumerates
    # Who chose this step's move: "model" (sampled or proposed), or "enumerated" (the
    # search listed the move and a tool completed it); None for the root.
    origin: str | None
    calls: list[dict[str, Any]]  # tool calls that wrote part of the thought: {"tool", "input", "output", ...}
    # Why the node was pruned: {"reason": str, "dead": bool}. A dead node is proven
    # hopeless; any other prune is a strategy's choice it may take back (``Search.revive``).
    pruned: dict[str, Any] | None
    aliases: list[list[Any]]  # [parent, thought] pairs that reached the same state later
    answer: str | None  # set on terminal nodes
    rollout: bool  # made during a rollout


# The fields every trace's nodes have had since format 1: a node without one is broken.
_STRUCTURE = ("thought", "state", "key", "depth", "parent", "status")


def new_node(thought: str, state: dict[str, Any], key: str, *, depth: int, parent: int | None, seed: int,
             created: float, tokens: int = 0, origin: str | None = None,
             calls: Sequence[dict[str, Any]] = (), rollout: bool = False) -> NodeData:  # fmt: skip
    """A node's data, whole: the fields given, every other field at its start."""
    return NodeData(
        thought=thought, state=state, key=key, depth=depth, parent=parent, status="open", values=[], value=None,
        visits=0, value_sum=0.0, tokens=tokens, created=created, seed=seed, expansions=0, tries=0, moves_done=[],
        asks={}, stale=0, origin=origin, calls=[dict(c) for c in calls], pruned=None, aliases=[], answer=None,
        rollout=rollout,
    )  # fmt: skip


class ThoughtGraph:
    def __init__(self, question: str, root_state: dict[str, Any], root_key: str, seed: int) -> None:
        self.g: nx.DiGraph = nx.DiGraph(question=question)
        self._by_key: dict[str, int] = {}
        self._add(None, new_node("", root_state, root_key, depth=0, parent=None, seed=seed, created=0.0))

    # -- building ---------------------------------------------------------------
    def _add(self, parent: int | None, data: NodeData) -> int:
        node = self.g.number_of_nodes()  # nodes are never removed, so ids stay dense
        self.g.add_node(node, **data)
        if parent is not None:
            self.g.add_edge(parent, node)
        self._by_key[data["key"]] = node
        return node

    def add_child(
        self,
        parent: int,
        thought: str,
        state: dict,
        key: str,
        *,
        seed: int,
        created: float,
        tokens: int = 0,
        origin: str | None = None,
        calls: Sequence[dict[str, Any]] = (),
        rollout: bool = False,
    ) -> tuple[int, bool]:
        """The child's node id and whether it merged into an existing node (which then
        records the alias, and keeps its own fields)."""
        existing = self._by_key.get(key)
        if existing is not None:
            self.g.nodes[existing]["aliases"].append([parent, thought])
            return existing, True
        data = new_node(thought, state, key, depth=self.depth(parent) + 1, parent=parent, seed=seed,
                        created=created, tokens=tokens, origin=origin, calls=calls, rollout=rollout)  # fmt: skip
        return self._add(parent, data), False

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

    def set_answer(self, node: int, answer: str | None) -> None:
        self.g.nodes[node]["answer"] = answer

    def set_pruned(self, node: int, reason: str | None, *, dead: bool = False) -> None:
        """Record why ``node`` was pruned, or (``reason=None``) that it no longer is."""
        self.g.nodes[node]["pruned"] = None if reason is None else {"reason": reason, "dead": dead}

    def record_try(self, node: int, samples: int) -> None:
        """``samples`` more were asked of ``node`` (seeds count them, so none repeats)."""
        self.g.nodes[node]["tries"] += samples

    def record_ask(self, node: int, opening: str) -> int:
        """One more expansion asked ``node`` under ``opening``; how many asked before."""
        asks = self.g.nodes[node]["asks"]
        earlier = asks.get(opening, 0)
        asks[opening] = earlier + 1
        return earlier

    def record_move(self, node: int, move: str) -> None:
        """``move`` gave ``node`` a valid step."""
        if move not in self.g.nodes[node]["moves_done"]:
            self.g.nodes[node]["moves_done"].append(move)

    def record_expansion(self, node: int, *, found_new: bool) -> None:
        """``node`` was expanded once more; ``found_new``: it found enough new moves
        (else its stale count grows, and the search enumerates once it is stale)."""
        attrs = self.g.nodes[node]
        attrs["expansions"] += 1
        attrs["stale"] = 0 if found_new else attrs["stale"] + 1

    def backup(self, node: int, reward: float, *, visits: int = 1) -> None:
        """Monte Carlo backup: ``visits`` visits worth ``reward`` each on ``node`` and
        its ancestors. ``visits=-1`` with reward 0 takes back a virtual loss."""
        for ancestor in self.ancestors_and_self(node):
            attrs = self.g.nodes[ancestor]
            attrs["visits"] += visits
            attrs["value_sum"] += visits * reward

    # -- reading ----------------------------------------------------------------
    def __getitem__(self, node: int) -> NodeData:
        """The node's fields, to read; change them through the methods above."""
        return self.g.nodes[node]  # type: ignore[return-value]

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

    def chains(self, node: int) -> int:
        """How many chains reached ``node``: the first, and each alias (a later chain
        that wrote its way to the same state)."""
        return 1 + len(self.g.nodes[node]["aliases"])

    def answers(self) -> dict[str, int]:
        """Every answer the search could give (a terminal or verified final state's), with
        the number of chains that reached it, most first; ties in the order first reached.
        Answers a verifier rejected (``failed``) are not among them."""
        counts: dict[str, int] = {}
        for node in sorted(self.with_status("solved", "terminal")):
            answer = self.g.nodes[node]["answer"]
            if answer:
                counts[answer] = counts.get(answer, 0) + self.chains(node)
        return dict(sorted(counts.items(), key=lambda pair: -pair[1]))

    # -- persistence ------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return nx.node_link_data(self.g, edges="edges")

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ThoughtGraph:
        graph = cls.__new__(cls)
        graph.g = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
        for _, attrs in graph.g.nodes(data=True):
            # Traces of format 1 may predate fields: those resume with their start values.
            attrs.setdefault("tries", attrs.pop("tried", 0))
            attrs.pop("openings_done", None)
            if "origin" not in attrs:
                attrs["origin"] = None if attrs.get("parent") is None else "model"
            if "pruned" not in attrs:
                attrs["pruned"] = {"reason": "", "dead": False} if attrs.get("status") == "pruned" else None
            start = new_node("", {}, "", depth=0, parent=None, seed=0, created=0.0)
            for name, value in start.items():
                if name not in _STRUCTURE:  # a node without these is broken, not old
                    attrs.setdefault(name, value)
            missing = [name for name in _STRUCTURE if name not in attrs]
            if missing:
                raise KeyError(f"a node lacks {', '.join(missing)}")
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
