"""deliberate: give a local language model time to think.

    >>> import deliberate
    >>> result = deliberate.think("Use 4 5 6 10 to make 24.", task="game24", strategy="bfs", think=15)
    >>> result.answer

The search engine, strategies and tasks are pure Python; llama.cpp is imported only
when a model is actually loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["think", "load", "Result", "ThinkOptions", "__version__"]

if TYPE_CHECKING:
    from deliberate.api import Result, ThinkOptions, load, think


def __getattr__(name: str) -> Any:
    # Lazy, so "import deliberate" stays fast and never loads llama.cpp.
    if name in ("think", "load", "Result", "ThinkOptions"):
        from deliberate import api

        return getattr(api, name)
    raise AttributeError(f"module 'deliberate' has no attribute {name!r}")
