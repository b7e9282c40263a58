"""Monte Carlo tree search: UCT selection, expansion, model rollouts, value backup.

Each iteration picks up to ``parallel`` leaves by UCT (a virtual loss on each picked
path steers the next pick elsewhere), expands them together, judges the new children,
rolls every child out to a final state in one batched call per step, and backs the
rewards up. A rollout that ends in a verified solution scores 1; an unverified final
state scores its judged value; a rollout that dies scores 0. The reward is blended
with the child's own value, so cheap judgements steer the early search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig


@dataclass
class Options:
    k: int = 4  # children per expansion
    parallel: int = 8  # leaves expanded together in one batched call
    c: float = 1.0  # exploration weight in UCT
    value_weight: float = 0.5  # share of the judged value in each reward
    rollout_temperature: float = 0.7


class MonteCarlo:
    name = "mcts"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        pass

    def run(self, search: Search) -> None:
        while True:
            leaves = self._select_many(search)
            if not leaves:
                return  # the whole tree is dead
            for leaf in [n for n in leaves if search.is_terminal(n)]:
                self._backup(search, leaf, self._reward(search, leaf))
            leaves = [n for n in leaves if not search.is_terminal(n)]
            if not leaves:
                continue
            groups = search.expand(leaves, self.options.k)
            children = [c for group in groups for c in group]
            for leaf, group in zip(leaves, groups):
                if not group:
                    if search.exhausted(leaf) and leaf != ROOT:
                        search.prune(leaf, "dead end: every move tried", dead=True)
                    self._backup(search, leaf, 0.0)
            if not children:
                continue
            search.evaluate(children)
            ends = search.rollout(children, temperature=self.options.rollout_temperature)
            if any(end is not None for end in ends):
                search.evaluate([end for end in ends if end is not None])
            for child, end in zip(children, ends):
                reward = 0.0 if end is None else self._reward(search, end)
                value = search.graph.value(child)
                if value is not None:
                    reward = (1 - self.options.value_weight) * reward + self.options.value_weight * value
                self._backup(search, end if end is not None else child, reward)

    def _select_many(self, search: Search) -> list[int]:
        """Up to ``parallel`` distinct leaves; a virtual loss (a visit worth 0) on each
        picked path makes UCT look elsewhere for the next one."""
        picked: list[int] = []
        for _ in range(self.options.parallel):
            leaf = self._select(search)
            if leaf is None or leaf in picked:
                break
            picked.append(leaf)
            self._backup(search, leaf, 0.0)
        for leaf in picked:  # take the virtual losses back
            search.graph.backup(leaf, 0.0, visits=-1)
        return picked

    def _select(self, search: Search) -> int | None:
        graph = search.graph
        node = ROOT
        while graph.status(node) == "expanded":
            # Final children had their reward backed up when they were reached; picking
            # one again would only repeat that, without asking the model anything.
            children = [c for c in graph.children(node) if graph.status(c) in ("open", "expanded")]
            if not children:
                if not search.exhausted(node):
                    return node  # expand again: openings are left to try
                if node == ROOT:
                    return None
                search.prune(node, "no live children", dead=True)
                search.backtrack(node, ROOT)
                node = ROOT
                continue
            if not search.exhausted(node):
                children.append(node)  # widening: the node itself competes with its children
            parent_visits = graph[node]["visits"]
            best = max(children, key=lambda c: self._uct(search, c, parent_visits))
            if best == node:
                return node
            node = best
        return node

    def _uct(self, search: Search, node: int, parent_visits: int) -> float:
        attrs = search.graph[node]
        if attrs["visits"]:
            mean = attrs["value_sum"] / attrs["visits"]
        else:
            mean = attrs["value"] if attrs["value"] is not None else 0.5
        return mean + self.options.c * math.sqrt(math.log(parent_visits + 1) / (attrs["visits"] + 1))

    def _reward(self, search: Search, node: int) -> float:
        status = search.graph.status(node)
        if status == "solved":
            return 1.0
        if status == "failed":
            return 0.0
        value = search.graph.value(node)
        return 0.5 if value is None else value

    def _backup(self, search: Search, node: int, reward: float) -> None:
        search.graph.backup(node, reward)
