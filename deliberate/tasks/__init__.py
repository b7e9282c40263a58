"""Tasks, found by name (``--task``). Adding one means one file and one entry point.

The names come from the ``deliberate.tasks`` entry-point group: the built-ins
(``generic``, ``game24``, ``math``, declared in pyproject.toml and in
``deliberate.plugins.BUILTINS``) and any installed plugin's (see ``deliberate.plugins``).
A task's module is imported only when the task is made; ``detect`` reads Game of
24's phrasing from ``game24_moves``, which does not import the task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deliberate.errors import UsageError
from deliberate.options import check_keywords
from deliberate.plugins import TASKS
from deliberate.tasks.base import Prompt, State, Step, Task
from deliberate.tasks.game24_moves import PHRASING

__all__ = ["Prompt", "State", "Step", "Task", "detect", "from_options", "make_task", "names"]


def names() -> list[str]:
    """Every task's name: the built-ins, then plugins'."""
    return TASKS.names()


# A question that is nothing but four numbers, such as "4 9 10 13" or "1, 1, 11, 11",
# perhaps with its target: "4 9 10 13 -> 24".
_FOUR_NUMBERS = re.compile(r"^\s*\d+(?:\s*[,;]?\s+\d+|\s*[,;]\s*\d+){3}\s*(?:(?:->|→|=)\s*24\s*)?[.?]?\s*$")


# Multiple choice: an "Options:" line or a "(A) ..." line. Its answer is a letter.
_CHOICES = re.compile(r"^\s*(?:options\s*:|\([A-Za-z]\)\s)", re.I | re.M)
# A question answered yes, no, true or false, by how its asking sentence begins.
_YES_NO = re.compile(
    r"^(?:is|are|was|were|am|do|does|did|can|could|will|would|should|shall|has|have|had|may|must|true or false)\b",
    re.I,
)
# An asking sentence that wants a quantity.
_QUANTITY = re.compile(
    r"\bhow\s+(?:many|much|long|far|old|fast|tall|big|high|heavy|wide|deep|often)\b"
    r"|\b(?:total|sum|product|difference|average|amount|cost|costs|price|percent|percentage|profit"
    r"|earn|earns|earned|spend|spent|pay|paid|left|remain|remaining|combined|mean|median|calculate|compute|find)\b",
    re.I,
)
# "What is/was/will ... ?", perhaps after "If ...,": a quantity when the question gives two numbers or more.
_WHAT_IS = re.compile(r"^(?:if\b.*,\s*)?what(?:'s|\s+(?:is|was|are|were|will|would))\b", re.I)
# Where a sentence ends: after ".", "?" or "!" (not "Mr." or "e.g."), or a line break.
_SENTENCE_END = re.compile(r"(?<![A-Z][a-z]\.)(?<![A-Z][a-z]{2}\.)(?<!\b[a-z]\.[a-z]\.)(?<=[.?!])\s+|\n+")
_NUMBER_WORDS = r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|half|twice|double|triple"
_GIVES_NUMBER = re.compile(rf"\d+(?:[.,]\d+)*|\b(?:{_NUMBER_WORDS})\b", re.I)
# Bare arithmetic: "((-1 + 2) * 3 - 4) =", "What is 17 * 3?", "Compute 2.5 / 5".
_ARITHMETIC = re.compile(
    r"^\s*(?:(?:what\s+is|what's|calculate|compute|evaluate|work\s+out)\s+)?"
    r"(?=[-+*/×÷()\d\s.,]*\d\s*\)*\s*[-+*/×÷]\s*\(*\s*-?\d)[-+*/×÷()\d\s.,]+?\s*=?\s*\??\s*$",
    re.I,
)


def detect(question: str) -> str:
    """The task for ``--task auto``.

    ``game24`` for Game of 24 phrasing only: "make 24", "24 game", "game of 24" or "get
    24" with four other numbers, or a question that is nothing but four numbers.
    Arithmetic that merely mentions 24 ("What is 24 * 3?") is not a puzzle.

    ``math`` for a question whose answer is a number to compute: bare arithmetic
    ("((-1 + 2) * 3 - 4) =", "What is 17 * 3?"), or a word problem that gives numbers
    (digits or number words) and whose asking sentence wants a quantity ("how many",
    "how much", "the total", "the cost", ...). Not a multiple-choice question, and not
    one asked yes or no ("Is 24 a prime number?"). ``generic`` for everything else.
    The rules are measured on the datasets by tests/test_detect_datasets.py.
    """
    if _FOUR_NUMBERS.match(question):
        return "game24"
    numbers = re.findall(r"\d+(?:\.\d+)?", PHRASING.sub(" ", question))
    if PHRASING.search(question) and len(numbers) == 4:
        return "game24"
    if _ARITHMETIC.match(question):
        return "math"
    if _CHOICES.search(question) or not _GIVES_NUMBER.search(question):
        return "generic"
    asking = _asking_sentence(question)
    if _YES_NO.match(asking):
        return "generic"
    if _QUANTITY.search(asking) or (_WHAT_IS.match(asking) and len(_GIVES_NUMBER.findall(question)) >= 2):
        return "math"
    return "generic"


def _asking_sentence(question: str) -> str:
    """The sentence that asks: the last one ending in "?", else the last one."""
    sentences = [s.strip() for s in _SENTENCE_END.split(question.strip()) if s.strip()]
    asked = [s for s in sentences if s.endswith("?")]
    return (asked or sentences or [""])[-1]


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
