"""Game of 24's moves as text: reading a puzzle's numbers and a step's move, listing
the legal moves of a state, and writing them the one way the search compares them.

Used by the task (``game24``) and by ``tasks.detect``, which reads the phrasing
without importing the task.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from deliberate.calculator import format_number
from deliberate.errors import QuestionError

_NUM = r"-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?"
# An operand's fraction has no spaces, so "12 / 1/2" reads as 12 divided by 1/2.
_OPERAND = r"-?\d+(?:\.\d+)?(?:/\d+)?"
STEP = re.compile(
    rf"^\s*(?:step\s*\d*[:.)]\s*)?(?P<a>{_OPERAND})\s*(?P<op>[-+*/×x÷−])\s*(?P<b>{_OPERAND})\s*=\s*(?P<c>{_NUM})",
    re.IGNORECASE,
)
# A move alone, for the calculator to complete: "8 * 3", perhaps followed by the
# model's own "= ..." (which is ignored), but no further operation.
MOVE = re.compile(
    rf"^\s*(?:step\s*\d*[:.)]\s*)?(?P<a>{_OPERAND})\s*(?P<op>[-+*/×x÷−])\s*(?P<b>{_OPERAND})\s*(?:=.*)?$",
    re.IGNORECASE | re.DOTALL,
)
# The move of a listed step, up to its "=": "8 * 3 = 24 (left: 24)" gives "8 * 3".
HEAD = re.compile(rf"^\s*(?P<head>{_OPERAND}\s*[-+*/×x÷−]\s*{_OPERAND})\s*=")
SYMBOL = {"×": "*", "x": "*", "X": "*", "÷": "/", "−": "-"}


# Game of 24 phrasing: "make 24", "the 24 game", "game of 24", "get 24".
PHRASING = re.compile(
    r"\b(?:make|makes|making|get|gets|getting)\s+(?:exactly\s+)?24\b|\b24\s+game\b|\bgame\s+of\s+24\b", re.I
)


def parse_numbers(question: str) -> list[Fraction]:
    """The four puzzle numbers in a question such as "Use 4 5 6 10 to make 24."."""
    found = [Fraction(n) for n in re.findall(r"\d+(?:\.\d+)?", PHRASING.sub(" ", question))]
    if len(found) == 5 and found[-1] == 24:  # "... to reach 24"
        found = found[:4]
    if len(found) != 4:
        raise QuestionError(
            f"game24 needs exactly four numbers, found {len(found)} in {question.strip()[:60]!r}"
        )
    return found


def pair_openings(left: Sequence[str]) -> list[str]:
    """"a op b =" for each pair of numbers left, grouped by operation so that a few
    samples already cover different kinds of step. Subtraction takes the larger first;
    division goes both ways and never by zero."""
    values = [Fraction(n) for n in left]
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[Fraction, Fraction]] = set()
    for i in range(len(left)):
        for j in range(i + 1, len(left)):
            if (values[i], values[j]) not in seen:  # equal numbers give the same steps
                seen.add((values[i], values[j]))
                pairs.append((i, j))
    openings: dict[str, None] = {}
    for op in ("*", "+", "-", "/"):
        for i, j in pairs:
            a, b = (i, j) if values[i] >= values[j] else (j, i)
            orders = [(a, b), (b, a)] if op == "/" else [(a, b)]
            for x, y in orders:
                if op == "/" and values[y] == 0:
                    continue
                openings[f"{left[x]} {op} {left[y]} ="] = None
    return list(openings)


def canonical_move(a: Fraction, op: str, b: Fraction) -> str:
    """A step's move in the form ``moves`` lists: the larger operand first for + and *."""
    if op in "+*" and b > a:
        a, b = b, a
    return f"{format_number(a)} {op} {format_number(b)}"


def strip_outer(expr: str) -> str:
    if expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, char in enumerate(expr):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and i < len(expr) - 1:
                return expr  # the outer brackets do not enclose the whole
        return expr[1:-1]
    return expr
