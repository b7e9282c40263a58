"""Depth-first tree of thoughts: follow the best child, back out of weak or dead branches.

A child judged below ``threshold`` is pruned. A node with no valid child left is a
dead end, and the search backtracks to its parent's next-best child. If the whole
tree is exhausted with time to spare, another pass re-expands every node that has
something left to try, with fresh seeds and no bar (the pruned ones are taken back:
a low value is a guess, not a proof). Passes go on until the time is up, or until a
pass finds nothing left to ask, which the task must prove.
"""

from __future__ import annotations

from dataclasses import dataclass

from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig
from deliberate.strategies.base import by_value


@dataclass
class Options:
    k: int = 8  # thoughts asked for per expansion
    threshold: float = 0.2  # children valued below this are pruned on the first pass
    passes: int = 0  # full passes over the tree before giving up; 0: until nothing is left


class DepthFirst:
    name = "dfs"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        pass

    def run(self, search: Search) -> None:
        attempt = 0
        while not self.options.passes or attempt < self.options.passes:
            asked = search.stats.expansions
            self._visit(search, ROOT, attempt, set())
            if search.stats.expansions == asked and not (attempt == 0 and search.revivable()):
                return  # a whole pass asked nothing: every reachable state is final or spent
            attempt += 1

    def _visit(self, search: Search, node: int, attempt: int, seen: set[int]) -> None:
        seen.add(node)
        graph = search.graph
        if search.is_terminal(node):
            return
        if graph[node]["expansions"] <= attempt:  # first visit this pass: ask for (more) thoughts
            search.expand([node], self.options.k)
        if attempt > 0:
            for child in graph.children(node):
                search.revive(child)
        children = [c for c in graph.children(node) if graph.status(c) not in ("pruned", "failed")]
        search.evaluate(children)
        # Later passes lower the bar, since the first pass found nothing above it.
        bar = self.options.threshold if attempt == 0 else 0.0
        for child in by_value(search, children):
            if child in seen or graph.status(child) in ("pruned", "failed"):
                continue
            value = graph.value(child)
            if value is not None and value < bar:
                search.prune(child, f"value {value:.2f} below {bar}")
                continue
            self._visit(search, child, attempt, seen)
            search.backtrack(child, node)
