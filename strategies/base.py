"""What every strategy has: a name, an ``Options`` dataclass, ``configure`` and ``run``."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from deliberate.search import Search, SearchConfig


class Strategy(Protocol):
    name: ClassVar[str]
    Options: ClassVar[type]
    options: Any

    def configure(self, config: SearchConfig) -> None:
        """Adjust the search settings this strategy depends on, before the search starts."""
        ...

    def run(self, search: Search) -> None:
        """Search until done; every search operation may raise StopSearch to end it."""
        ...


def by_value(search: Search, nodes: list[int]) -> list[int]:
    """Nodes from best to worst value; unjudged nodes count as middling (0.5)."""
    def score(node: int) -> tuple[float, int]:
        value = search.graph.value(node)
        return (0.5 if value is None else value, -node)

    return sorted(nodes, key=score, reverse=True)
