"""Chain of thought: one greedy step at a time, no branching, no backtracking."""

from __future__ import annotations

from dataclasses import dataclass

from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig


@dataclass
class Options:
    max_steps: int = 32  # a chain longer than this stops


class ChainOfThought:
    name = "cot"
    Options = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        config.temperature = 0.0

    def run(self, search: Search) -> None:
        node = ROOT
        for _ in range(self.options.max_steps):
            if search.is_terminal(node):
                return
            # A resumed chain already has its steps: follow them instead of asking again.
            children = [c for c in search.graph.children(node) if search.graph.status(c) != "pruned"]
            if not children:
                [children] = search.expand([node], 1, mode="sample", temperature=0.0)
            if not children:
                return  # the greedy step was not valid: a single chain has nowhere else to go
            node = children[0]
