"""Game of 24: combine four numbers with + - * / into 24, one operation per step.

The state is the numbers still left, each with the expression that made it. A step
reads ``a op b = c (left: ...)``. With the verifier on, the safe calculator
recomputes ``a op b`` in exact rationals and a step with wrong arithmetic, or with
numbers that are not left, is rejected. The final check is exact: one number left,
equal to 24, built from all four inputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

from deliberate.calculator import evaluate, format_number, parse_number
from deliberate.errors import CalculatorError, QuestionError, UsageError
from deliberate.tasks.base import VALUE_LABELS, Prompt, State, Step, vote_labels

INSTRUCTION = "Combine two of the numbers with + - * / to make a new number. List possible next steps."

EXAMPLES = """Input: 2 3 7 9
Possible next steps:
2 + 3 = 5 (left: 5 7 9)
3 * 7 = 21 (left: 2 9 21)
9 - 7 = 2 (left: 2 2 3)
2 * 9 = 18 (left: 3 7 18)
7 + 9 = 16 (left: 2 3 16)
9 / 3 = 3 (left: 2 3 7)
7 - 2 = 5 (left: 3 5 9)
3 + 9 = 12 (left: 2 7 12)

Input: 3 8 10
Possible next steps:
3 * 8 = 24 (left: 10 24)
10 - 8 = 2 (left: 2 3)
8 + 10 = 18 (left: 3 18)
10 - 3 = 7 (left: 7 8)
3 + 8 = 11 (left: 10 11)
8 * 10 = 80 (left: 3 80)

Input: 4 6
Possible next steps:
4 * 6 = 24 (left: 24)
4 + 6 = 10 (left: 10)
6 - 4 = 2 (left: 2)
6 / 4 = 3/2 (left: 3/2)

"""

VALUE_INSTRUCTION = "Judge whether the numbers can still make 24 with + - * /. Reply sure, likely or impossible."

VALUE_EXAMPLES = """Numbers: 4 6
Judgement: sure
Numbers: 1 2
Judgement: impossible
Numbers: 2 3 4
Judgement: sure
Numbers: 10 10 11
Judgement: impossible
Numbers: 5 5 14
Judgement: sure
Numbers: 6 9 13
Judgement: likely
Numbers: 1 1 1
Judgement: impossible
Numbers: 12 12
Judgement: sure
"""

_OPS = {"+", "-", "*", "/"}
OPENING_STYLES = ("pair", "operation", "operand", "none")
_NUM = r"-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?"
# An operand's fraction has no spaces, so "12 / 1/2" reads as 12 divided by 1/2.
_OPERAND = r"-?\d+(?:\.\d+)?(?:/\d+)?"
_STEP = re.compile(
    rf"^\s*(?:step\s*\d*[:.)]\s*)?(?P<a>{_OPERAND})\s*(?P<op>[-+*/×x÷−])\s*(?P<b>{_OPERAND})\s*=\s*(?P<c>{_NUM})",
    re.IGNORECASE,
)
_SYMBOL = {"×": "*", "x": "*", "X": "*", "÷": "/", "−": "-"}


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


def _sorted(numbers: Sequence[Fraction]) -> list[Fraction]:
    return sorted(numbers)


class Game24Task:
    name = "game24"
    mode: Literal["propose", "sample"] = "sample"
    labels = VALUE_LABELS
    step_stop = ("\n", " (")  # the "(left: ...)" part is ours to compute, not the model's
    step_tokens = 16
    propose_tokens = 120
    max_depth = 3

    def __init__(self, *, openings: str = "pair") -> None:
        if openings not in OPENING_STYLES:
            raise UsageError(f"game24 openings must be one of {', '.join(OPENING_STYLES)}, got {openings!r}")
        self.opening_style = openings
        # After "a op b =" only a number is left to write: " 1728" is five tokens.
        self.step_tokens = 8 if openings == "pair" else 16

    # -- states ----------------------------------------------------------------
    def root(self, question: str) -> State:
        numbers = _sorted(parse_numbers(question))
        texts = [format_number(n) for n in numbers]
        return {"steps": [], "left": texts, "exprs": texts}

    def key(self, state: State) -> str:
        return " ".join(state["left"])

    def is_terminal(self, state: State) -> bool:
        return len(state["left"]) == 1

    def answer(self, question: str, state: State) -> str | None:
        if not self.is_terminal(state):
            return None
        return f"{_strip_outer(state['exprs'][0])} = {state['left'][0]}"

    def verify(self, question: str, state: State) -> bool | None:
        if not self.is_terminal(state):
            return None
        try:
            value = evaluate(state["exprs"][0])
        except CalculatorError:
            return False
        used = sorted(Fraction(n) for n in re.findall(r"\d+(?:\.\d+)?", state["exprs"][0]))
        return value == 24 and used == sorted(parse_numbers(question))

    # -- generating steps ------------------------------------------------------
    def propose_prompt(self, question: str, state: State) -> Prompt | None:
        return Prompt(INSTRUCTION, EXAMPLES, f"Input: {' '.join(state['left'])}\n", "Possible next steps:\n")

    def step_prompt(self, question: str, state: State) -> Prompt:
        # A sampled step is the first line of a proposal list.
        return self.propose_prompt(question, state)  # type: ignore[return-value]

    def openings(self, state: State) -> list[str]:
        """How each sampled step starts; the model writes the rest.

        - "pair" (default): "8 * 3 =": the search picks the operation, the model
          computes the result and the calculator checks it. A 270M model left to pick
          operands itself mostly repeats one pair, or names numbers that are not left.
        - "operation": "8 *": the model picks the second operand too.
        - "operand": "8": the model writes the whole operation.
        - "none": the model writes the whole step.
        """
        numbers = list(dict.fromkeys(state["left"]))
        if self.opening_style == "pair":
            return _pair_openings(state["left"])
        if self.opening_style == "operand":
            return numbers
        if self.opening_style == "operation":
            return [f"{a} {op}" for a in numbers for op in ("+", "-", "*", "/")]
        return [""]

    def parse_proposals(self, question: str, state: State, text: str, *, verify: bool) -> list[Step]:
        steps: list[Step] = []
        for line in text.split("\n"):
            if line.strip().lower().startswith("input"):
                break  # the model has moved on to a new puzzle
            step = self.parse_step(question, state, line, verify=verify)
            if step is not None:
                steps.append(step)
        return steps

    def parse_step(self, question: str, state: State, text: str, *, verify: bool) -> Step | None:
        match = _STEP.match(text.strip())
        if not match:
            return None
        try:
            a, b = parse_number(match["a"]), parse_number(match["b"])
            claimed = parse_number(match["c"])
        except CalculatorError:
            return None
        op = _SYMBOL.get(match["op"], match["op"])
        left = [Fraction(n) for n in state["left"]]
        exprs = list(state["exprs"])
        picked = []
        for wanted in (a, b):  # both operands must be numbers that are still left
            if wanted not in left:
                return None
            i = left.index(wanted)
            picked.append(exprs.pop(i))
            left.pop(i)
        if verify:
            try:
                actual = evaluate(f"({format_number(a)}) {op} ({format_number(b)})")
            except CalculatorError:
                return None
            if actual != claimed:
                return None
        result = claimed
        pairs = sorted(zip(left + [result], exprs + [f"({picked[0]} {op} {picked[1]})"]), key=lambda p: p[0])
        new_left = [format_number(n) for n, _ in pairs]
        thought = f"{format_number(a)} {op} {format_number(b)} = {format_number(result)} (left: {' '.join(new_left)})"
        state = {"steps": [*state["steps"], thought], "left": new_left, "exprs": [e for _, e in pairs]}
        return Step(thought, state, _move(a, op, b))

    def moves(self, state: State, *, verify: bool) -> list[str] | None:
        """Every legal "a op b" from ``state`` (as the pair openings list them).

        Only a verified step has one right result per move; without the verifier a
        move can give any number of different children, so none is ever the last.
        """
        if not verify:
            return None
        return [opening.removesuffix(" =") for opening in _pair_openings(state["left"])]

    # -- judging ---------------------------------------------------------------
    def value_prompt(self, question: str, state: State) -> Prompt:
        return Prompt(VALUE_INSTRUCTION, VALUE_EXAMPLES, f"Numbers: {' '.join(state['left'])}\n", "Judgement:")

    def vote_prompt(self, question: str, state: State, candidates: Sequence[str]) -> Prompt:
        letters = [label.strip() for label in vote_labels(len(candidates))]
        listed = "".join(f"{letter}: {c}\n" for letter, c in zip(letters, candidates))
        return Prompt(
            "Choose the step most likely to lead to 24.",
            "",
            f"Numbers: {' '.join(state['left'])}\nCandidate steps:\n{listed}",
            "The best candidate is",
        )


def _pair_openings(left: Sequence[str]) -> list[str]:
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


def _move(a: Fraction, op: str, b: Fraction) -> str:
    """A step's move in the form ``moves`` lists: the larger operand first for + and *."""
    if op in "+*" and b > a:
        a, b = b, a
    return f"{format_number(a)} {op} {format_number(b)}"


def _strip_outer(expr: str) -> str:
    if expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, char in enumerate(expr):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and i < len(expr) - 1:
                return expr  # the outer brackets do not enclose the whole
        return expr[1:-1]
    return expr
