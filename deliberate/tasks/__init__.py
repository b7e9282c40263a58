"""Tasks, found by name (``--task``). Adding one means one file and one entry point.

The names come from the ``deliberate.tasks`` entry-point group: the built-ins
(``generic``, ``game24``, ``math``, declared in pyproject.toml and in
``deliberate.plugins.BUILTINS``) and any installed plugin's (see ``deliberate.plugins``).
A task's module is imported only when the task is made; ``detect`` (for ``--task
auto``, in ``deliberate.tasks.detection``) imports none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deliberate.errors import UnknownNameError, UsageError
from deliberate.options import check_keywords
from deliberate.plugins import TASKS
from deliberate.tasks.base import Prompt, State, Step, Task
from deliberate.tasks.detection import detect

__all__ = ["Prompt", "State", "Step", "Task", "checked_name", "detect", "from_options", "make_task", "names"]


def names() -> list[str]:
    """Every task's name: the built-ins, then plugins'."""
    return TASKS.names()


def checked_name(name: str | None) -> str:
    """``name`` as ``--task`` and a request's ``task`` take it: "auto" (also for None)
    or a task's name; anything else, "" too, is a one-line error that lists them all."""
    name = "auto" if name is None else name
    if name != "auto" and name not in TASKS:
        raise UnknownNameError(f"unknown task {name!r} (tasks: auto, {', '.join(names())})")
    return name


def make_task(name: str | Task, *, tools: bool = True, **options: Any) -> Task:
    """The task ``name`` with its ``options``; ``tools`` reaches a task that has tools."""
    if not isinstance(name, str):
        return name  # already a task object
    cls = TASKS.load(name)  # UnknownNameError lists the known ones; PluginError if broken
    options = check_keywords(cls.__init__, options, owner=f"task {name}", reserved=("tools",))
    if getattr(cls, "tool_names", ()):
        options["tools"] = tools
    try:
        return cls(**options)
    except TypeError as exc:
        raise UsageError(f"task {name}: {exc}") from None


def from_options(name: str, options: Mapping[str, Any] | None, *, tools: bool = True) -> Task:
    """The task ``name`` with options a user gave (``--task-opt``, a request's
    ``task_options``): unknown or mistyped ones are one-line errors, and ``tools`` is
    the search's setting (``--no-tools``), not one of them."""
    options = dict(options or {})
    if "tools" in options:
        raise UsageError("tools are a search setting: use --no-tools (tools=False), not --task-opt tools=")
    return make_task(name, tools=tools, **options)
