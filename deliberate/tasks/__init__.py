"""Built-in tasks, found by name (``--task``). Adding one means one file and one line here."""

from __future__ import annotations

import re
from typing import Any

from deliberate.errors import UnknownNameError, UsageError
from deliberate.tasks.base import Prompt, State, Step, Task
from deliberate.tasks.game24 import PHRASING, Game24Task
from deliberate.tasks.generic import GenericTask
from deliberate.tasks.math import MathTask

__all__ = ["Prompt", "State", "Step", "Task", "detect", "make_task", "names"]

REGISTRY: dict[str, type] = {"generic": GenericTask, "game24": Game24Task, "math": MathTask}


def names() -> list[str]:
    return list(REGISTRY)


# A question that is nothing but four numbers, such as "4 9 10 13" or "1, 1, 11, 11",
# perhaps with its target: "4 9 10 13 -> 24".
_FOUR_NUMBERS = re.compile(r"^\s*\d+(?:\s*[,;]?\s+\d+|\s*[,;]\s*\d+){3}\s*(?:(?:->|→|=)\s*24\s*)?[.?]?\s*$")


def detect(question: str) -> str:
    """The task for ``--task auto``: Game of 24 only for Game of 24 phrasing.

    That is "make 24", "24 game", "game of 24" or "get 24" with four other numbers, or
    a question that is nothing but four numbers. Arithmetic that merely mentions 24
    ("What is 24 divided by 2?") is a generic question.
    """
    if _FOUR_NUMBERS.match(question):
        return "game24"
    numbers = re.findall(r"\d+(?:\.\d+)?", PHRASING.sub(" ", question))
    if PHRASING.search(question) and len(numbers) == 4:
        return "game24"
    return "generic"


def make_task(name: str | Task, *, tools: bool = True, **options: Any) -> Task:
    """The task ``name`` with its ``options``; ``tools`` reaches a task that has tools."""
    if not isinstance(name, str):
        return name  # already a task object
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown task {name!r} (tasks: {', '.join(REGISTRY)})")
    cls = REGISTRY[name]
    if getattr(cls, "tool_names", ()):
        options["tools"] = tools
    try:
        return cls(**options)
    except TypeError as exc:
        raise UsageError(f"task {name}: {exc}") from None
