"""Search strategies, found by name. Adding one means one file and one line here.

A strategy only decides which node to expand, evaluate, prune or roll out next. It
never formats prompts, parses text or reads the clock: the ``Search`` does that.
Modules are imported only when their strategy is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from deliberate.errors import UnknownNameError
from deliberate.options import parse_options

REGISTRY: dict[str, str] = {
    "cot": "deliberate.strategies.cot:ChainOfThought",
    "best-of-n": "deliberate.strategies.best_of_n:BestOfN",
    "self-consistency": "deliberate.strategies.self_consistency:SelfConsistency",
    "bfs": "deliberate.strategies.bfs:BreadthFirst",
    "dfs": "deliberate.strategies.dfs:DepthFirst",
    "beam": "deliberate.strategies.beam:Beam",
    "mcts": "deliberate.strategies.mcts:MonteCarlo",
}


def names() -> list[str]:
    return list(REGISTRY)


def load(name: str) -> type:
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown strategy {name!r} (strategies: {', '.join(REGISTRY)})")
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def make(name: str, options: Mapping[str, Any] | Iterable[str] | None = None) -> Any:
    """A strategy instance with its options parsed and checked."""
    cls = load(name)
    return cls(parse_options(cls.Options, options, owner=f"strategy {name}"))
