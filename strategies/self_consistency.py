"""Self-consistency: keep sampling whole chains; the most common answer wins."""

from __future__ import annotations

from dataclasses import dataclass

from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig


@dataclass
class Options:
    width: int = 8  # chains sampled together in one batch
    temperature: float = 0.8
    max_chains: int = 0  # 0: until the budget ends
    # Weigh each chain's vote by the model's own probability of its tool results (a
    # backend that reports them: LlamaBackend); see ``Finishing.vote_weight``.
    weigh_tools: bool = False


class SelfConsistency:
    name = "self-consistency"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        config.temperature = self.options.temperature
        config.answer_by = "vote"
        if self.options.weigh_tools:
            config.vote_weight = "tool-likelihood"

    def run(self, search: Search) -> None:
        sampled = 0
        while not self.options.max_chains or sampled < self.options.max_chains:
            width = self.options.width
            if self.options.max_chains:
                width = min(width, self.options.max_chains - sampled)
            before = search.stats.tokens, len(search.graph)
            search.rollout([ROOT] * width, temperature=self.options.temperature)
            sampled += width
            tokens, nodes = search.stats.tokens, len(search.graph)
            if nodes == before[1] and (tokens == before[0] or search.budget is None):
                # Nothing new: every chain is already in the graph. Under a time budget,
                # resampled chains still add votes; under a node budget they never end it.
                return
