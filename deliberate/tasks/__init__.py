"""Built-in tasks, found by name (``--task``). Adding one means one file and one line here."""

from __future__ import annotations

from typing import Any

from deliberate.errors import UnknownNameError, UsageError
from deliberate.tasks.base import Prompt, State, Step, Task
from deliberate.tasks.game24 import Game24Task
from deliberate.tasks.generic import GenericTask
from deliberate.tasks.math import MathTask

__all__ = ["Prompt", "State", "Step", "Task", "detect", "make_task", "names"]

REGISTRY: dict[str, type] = {"generic": GenericTask, "game24": Game24Task, "math": MathTask}


def names() -> list[str]:
    return list(REGISTRY)


def detect(question: str) -> str:
    """The task for ``--task auto``: Game of 24 when the question reads like one."""
    import re

    numbers = re.findall(r"\d+(?:\.\d+)?", question)
    if "24" in question and (len(numbers) == 4 or (len(numbers) == 5 and numbers[-1] == "24")):
        return "game24"
    return "generic"


def make_task(name: str | Task, **options: Any) -> Task:
    if not isinstance(name, str):
        return name  # already a task object
    if name not in REGISTRY:
        raise UnknownNameError(f"unknown task {name!r} (tasks: {', '.join(REGISTRY)})")
    try:
        return REGISTRY[name](**options)
    except TypeError as exc:
        raise UsageError(f"task {name}: {exc}") from None
