"""Which task a question is for, as ``--task auto`` (and a request's ``"task": "auto"``) reads it.

Only regular expressions: nothing here imports a task. The rules are held to the
datasets in ../shared by tests/test_detect_datasets.py and to hand-written questions
by tests/test_detect.py.
"""

from __future__ import annotations

import functools
import re

from deliberate.tasks.game24_moves import PHRASING

# A question that is nothing but four numbers, such as "4 9 10 13" or "1, 1, 11, 11",
# perhaps with its target: "4 9 10 13 -> 24".
_FOUR_NUMBERS = re.compile(r"^\s*\d+(?:\s*[,;]?\s+\d+|\s*[,;]\s*\d+){3}\s*(?:(?:->|→|=)\s*24\s*)?[.?]?\s*$")


# Multiple choice: an "Options:" line or a "(A) ..." line. Its answer is a letter.
_CHOICES = re.compile(r"^ ?(?:options\s*:|\([A-Za-z]\)\s)", re.I | re.M)
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
# Bare arithmetic: "((-1 + 2) * 3 - 4) =", "What is 17 * 3?", "Compute 2.5 / 5": after
# the words that ask, nothing but numbers, operators and brackets, with a number, an
# operator and a number in a row.
_ASKS = re.compile(r"(?:what is|what's|calculate|compute|evaluate|work out) ", re.I)
_EXPRESSION = re.compile(r"[-+*/×÷()\d .,]+")
_OPERATION = re.compile(r"\d[ )]*[-+*/×÷][ (]*-?\d")


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
    question = _normalized(question)
    if _FOUR_NUMBERS.match(question):
        return "game24"
    numbers = re.findall(r"\d+(?:\.\d+)?", PHRASING.sub(" ", question))
    if PHRASING.search(question) and len(numbers) == 4:
        return "game24"
    if is_arithmetic(question):
        return "math"
    given = _GIVES_NUMBER.findall(question)
    if _CHOICES.search(question) or not given:
        return "generic"
    asking = asking_sentence(question)
    if _YES_NO.match(asking):
        return "generic"
    if _QUANTITY.search(asking) or (_WHAT_IS.match(asking) and len(given) >= 2):
        return "math"
    return "generic"


@functools.lru_cache(maxsize=256)  # the math task asks it of every step it checks
def is_arithmetic(question: str) -> bool:
    """Whether the question is bare arithmetic: "((-1 + 2) * 3 - 4) =", "What is 17 * 3?"."""
    body = _normalized(question)
    asks = _ASKS.match(body)
    body = body[asks.end() :] if asks else body
    body = body.rstrip("?").rstrip().removesuffix("=").rstrip()
    return _EXPRESSION.fullmatch(body) is not None and _OPERATION.search(body) is not None


def _normalized(question: str) -> str:
    """The question with each run of blanks one space and blank lines dropped, so that no
    pattern here backtracks over a long run of whitespace (a 20,000-space question took
    seconds before)."""
    return "\n".join(" ".join(line.split()) for line in question.splitlines() if line.strip())


def asking_sentence(question: str) -> str:
    """The sentence that asks: the last one ending in "?", else the last one."""
    sentences = [s.strip() for s in _SENTENCE_END.split(question.strip()) if s.strip()]
    asked = [s for s in sentences if s.endswith("?")]
    return (asked or sentences or [""])[-1]
