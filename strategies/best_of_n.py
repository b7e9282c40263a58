"""Best-of-n: sample n whole chains at once, judge the answers, keep the best."""

from __future__ import annotations

from dataclasses import dataclass

from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig


@dataclass
class Options:
    n: int = 8
    temperature: float = 0.8


class BestOfN:
    name = "best-of-n"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        config.temperature = self.options.temperature

    def run(self, search: Search) -> None:
        ends = search.rollout([ROOT] * self.options.n, temperature=self.options.temperature)
        search.evaluate([end for end in ends if end is not None])
