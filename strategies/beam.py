"""Beam search over sampled steps: keep the ``width`` best states, drop the rest.

Every beam state gets ``k`` sampled continuations in one batched call, all children
are judged together, and the best ``width`` non-final ones form the next beam; the
others are pruned. When the beam empties (every state final or dead), a new beam
starts from the root with fresh seeds, until the budget ends.
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
    max_restarts: int = 1000


class Beam:
    name = "beam"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        pass

    def run(self, search: Search) -> None:
        idle = 0
        for _ in range(self.options.max_restarts):
            beam, grew = [ROOT], False
            while beam:
                children = [c for group in search.expand(beam, self.options.k, mode="sample") for c in group]
                search.evaluate(children)
                grew |= bool(children)
                ranked = by_value(search, [c for c in children if not search.is_terminal(c)])
                beam = ranked[: self.options.width]
                for dropped in ranked[self.options.width :]:
                    search.prune(dropped, "outside the beam")
            idle = 0 if grew else idle + 1
            if idle >= 3:
                return  # three restarts found nothing new: the space is exhausted
