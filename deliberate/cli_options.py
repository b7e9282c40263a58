"""Options that several commands share, and the ``KEY=VALUE`` reader behind them.

``deliberate`` and ``deliberate bench`` both take a model, llama.cpp's threads and
offload, strategy and task options, and a generation mode; each is defined here once,
as an annotated type, so every command spells, bounds and documents it the same way::

    def solve(threads: Threads = None, task_opt: TaskOptions = []): ...

Only typer is imported here, so both CLI modules can import this one without loading
the model or each other.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

Threads = Annotated[
    Optional[int], typer.Option("--threads", min=1, help="CPU threads", show_default="physical cores")
]
GpuLayers = Annotated[
    Optional[int], typer.Option("--gpu-layers", help="Layers to offload to Metal/CUDA (needs a GPU build).")
]
StrategyOptions = Annotated[
    list[str], typer.Option("--opt", "-o", help="Strategy option key=value (repeatable).")
]
TaskOptions = Annotated[
    list[str], typer.Option("--task-opt", help="Task option key=value (repeatable), e.g. openings=none.")
]
Mode = Annotated[
    Optional[str], typer.Option("--mode", help="propose or sample", show_default="the task's choice")
]
# A model the command may reach over HTTP, and one it must load in this process.
ModelOrServer = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="GGUF path or http(s)://host:port/v1", show_default="$DELIBERATE_MODEL, else the embedded model"),
]
ModelFile = Annotated[
    Optional[str], typer.Option("--model", "-m", help="GGUF path", show_default="$DELIBERATE_MODEL, else the embedded model")
]


def parse_pairs(pairs: list[str], flag: str) -> dict[str, Any]:
    """``["openings=none", "max_depth=4"]`` as a dict; numbers and true/false are read as such."""
    from deliberate.errors import UsageError

    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} takes key=value, got {pair!r}")
        parsed[key.strip()] = _scalar(value.strip())
    return parsed


def _scalar(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
