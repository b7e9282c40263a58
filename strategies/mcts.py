"""Monte Carlo tree search: UCT selection, expansion, model rollouts, value backup.

Each iteration walks down from the root by UCT, expands the leaf it reaches, judges
the new children, rolls every child out to a final state in one batched call, and
backs the reward up the path. A rollout that ends in a verified solution scores 1; an
unverified final state scores its judged value; a rollout that dies scores 0. The
reward is blended with the child's own value, so cheap judgements steer early search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig


@dataclass
class Options:
    k: int = 4  # children per expansion
    c: float = 1.0  # exploration weight in UCT
    value_weight: float = 0.5  # share of the judged value in each reward
    rollout_temperature: float = 0.7
    max_expansions: int = 2  # re-expansions of a node before it counts as dead


class MonteCarlo:
    name = "mcts"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        pass

    def run(self, search: Search) -> None:
        while True:
            leaf = self._select(search)
            if leaf is None:
                return  # the whole tree is dead
            if search.is_terminal(leaf):
                self._backup(search, leaf, self._reward(search, leaf))
                continue
            [children] = search.expand([leaf], self.options.k)
            if not children:
                if search.graph[leaf]["expansions"] >= self.options.max_expansions:
                    search.prune(leaf, "dead end")
                self._backup(search, leaf, 0.0)
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

    def _select(self, search: Search) -> int | None:
        graph = search.graph
        node = ROOT
        while graph.status(node) == "expanded":
            children = [c for c in graph.children(node) if graph.status(c) not in ("pruned", "failed")]
            if not children:
                if graph[node]["expansions"] < self.options.max_expansions:
                    return node  # expand again for fresh thoughts
                if node == ROOT:
                    return None
                search.prune(node, "no live children")
                search.backtrack(node, ROOT)
                node = ROOT
                continue
            parent_visits = graph[node]["visits"]
            node = max(children, key=lambda c: self._uct(search, c, parent_visits))
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
        for ancestor in search.graph.ancestors_and_self(node):
            attrs = search.graph[ancestor]
            attrs["visits"] += 1
            attrs["value_sum"] += reward
