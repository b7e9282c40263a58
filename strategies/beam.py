"""Beam search over sampled steps: keep the ``width`` best states, drop the rest.

Every beam state gets ``k`` sampled continuations in one batched call, all children
are judged together, and the best ``width`` non-final ones form the next beam; the
others are pruned. When the beam empties (every state final or dead), a new beam
starts from the best states that still have thoughts to try, states pruned outside
the beam included, until the task proves that none is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig
from deliberate.strategies.base import by_value


@dataclass
class Options:
    width: int = 4
    k: int = 4  # samples per beam state


class Beam:
    name = "beam"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        pass

    def run(self, search: Search) -> None:
        beam = [ROOT]
        while beam:
            while beam:
                children = [c for group in search.expand(beam, self.options.k, mode="sample") for c in group]
                search.evaluate(children)
                ranked = by_value(search, [c for c in children if not search.is_terminal(c)])
                beam = ranked[: self.options.width]
                for dropped in ranked[self.options.width :]:
                    search.prune(dropped, "outside the beam")
            # The beam ran dry: start a new one from the best states with thoughts left
            # to try. Falling outside a beam is no proof, so pruned states compete too.
            graph = search.graph
            left = [n for n in graph.with_status("open", "expanded") if not search.exhausted(n)]
            left += [n for n in search.revivable() if not search.exhausted(n)]
            beam = by_value(search, left)[: self.options.width]
            for node in beam:
                search.revive(node)
