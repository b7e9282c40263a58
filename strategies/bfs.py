"""Breadth-first tree of thoughts: expand the best ``breadth`` states at every depth.

One round walks the depths from the root down; at each depth it expands the best
unexpanded states there (all in one batched call) and judges their children. Later
rounds take the next-best states the earlier rounds left, so a search with time to
spare widens instead of stopping. When no state is left unexpanded, the states with
something left to try are expanded again with fresh seeds, least-tried first, until
the time is up or the task proves that nothing is left (or each has been tried
``max_expansions`` times, when that is set). States pruned for a low value are taken
back when nothing else is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from deliberate.search import Search, SearchConfig
from deliberate.strategies.base import by_value


@dataclass
class Options:
    breadth: int = 5  # states kept at each depth (ToT's b)
    k: int = 8  # thoughts asked for per expanded state
    prune_below: float = 0.0  # children judged below this value are pruned (0: never)
    max_expansions: int = 0  # tries per state; 0: no limit, keep widening until the deadline


class BreadthFirst:
    name = "bfs"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        pass

    def run(self, search: Search) -> None:
        graph = search.graph
        depths = search.task.max_depth
        while True:
            grew = False
            for depth in range(depths):
                waiting = [n for n in graph.with_status("open") if graph.depth(n) == depth]
                frontier = by_value(search, waiting)[: self.options.breadth]
                grew |= self._step(search, frontier)
            if grew:
                continue
            limit = self.options.max_expansions or float("inf")
            again = [
                n for n in graph.with_status("expanded")
                if graph[n]["expansions"] < limit and not search.exhausted(n)
            ]
            if not again and search.revivable():
                for node in search.revivable():  # a low value is a guess, not a proof
                    search.revive(node)
                continue
            if not again:
                return  # the task proves every reachable state has nothing left to try
            # Least-tried first, then best: a long budget widens the whole tree evenly.
            again = sorted(by_value(search, again), key=lambda n: graph[n]["expansions"])
            self._step(search, again[: self.options.breadth])

    def _step(self, search: Search, frontier: list[int]) -> bool:
        if not frontier:
            return False
        children = [c for group in search.expand(frontier, self.options.k) for c in group]
        search.evaluate(children)
        for child in children:
            value = search.graph.value(child)
            if value is not None and value < self.options.prune_below and not search.is_terminal(child):
                search.prune(child, f"value {value:.2f} below {self.options.prune_below}")
        return bool(children)
