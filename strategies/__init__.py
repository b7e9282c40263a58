"""Search strategies, found by name. Adding one means one file and one entry point.

A strategy only decides which node to expand, evaluate, prune or roll out next. It
never formats prompts, parses text or reads the clock: the ``Search`` does that.

The names come from the ``deliberate.strategies`` entry-point group: the built-ins
(declared in pyproject.toml, and in ``deliberate.plugins.BUILTINS``) and any installed
plugin's (see ``deliberate.plugins``). A module is imported only when its strategy is
asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from deliberate.options import parse_options
from deliberate.plugins import STRATEGIES


def names() -> list[str]:
    """Every strategy's name: the built-ins in their usual order, then plugins'."""
    return STRATEGIES.names()


def load(name: str) -> type:
    """The strategy class ``name``; ``UnknownNameError`` lists the known ones."""
    return STRATEGIES.load(name)


def make(name: str, options: Mapping[str, Any] | Iterable[str] | None = None) -> Any:
    """A strategy instance with its options parsed and checked."""
    cls = load(name)
    return cls(parse_options(cls.Options, options, owner=f"strategy {name}"))
