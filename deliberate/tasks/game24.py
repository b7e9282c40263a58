"""Game of 24: combine four numbers with + - * / into 24, one operation per step.

The state is the numbers still left, each with the expression that made it. A step
reads ``a op b = c (left: ...)``.

With the calculator tool on (the default), the model writes only the move ``a op b``
and stops at ``=``; the calculator computes `` = c (left: ...)`` in exact rationals,
so the model never does arithmetic. With ``tools=False`` the model writes ``c`` too,
and the verifier (if on) rejects a step whose arithmetic is wrong. By default
(``results="greedy"``) the move is sampled and ``c`` is the model's greedy
continuation of "a op b =": its single most likely number, so each move has one
result and the search can tell which moves a state has tried. ``results="sampled"``
samples the whole line in one go, as the ToT paper does. Either way a step naming
numbers that are not left is rejected, and the final check is exact: one number
left, equal to 24, built from all four inputs. A chain that ends on another number
gives no answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

from deliberate.calculator import evaluate, format_number, parse_number
from deliberate.errors import CalculatorError, UsageError
from deliberate.tasks.base import VALUE_LABELS, Prompt, State, Step, vote_labels
from deliberate.tasks.game24_moves import (
    HEAD,
    MOVE,
    STEP,
    SYMBOL,
    canonical_move,
    pair_openings,
    parse_numbers,
    strip_outer,
)

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
OPENING_STYLES = ("pair", "operation", "operand", "none")
RESULT_STYLES = ("greedy", "sampled")


class Game24Task:
    name = "game24"
    mode: Literal["propose", "sample"] = "sample"
    labels = VALUE_LABELS
    step_stop: tuple[str, ...] = ("\n", " (")  # the "(left: ...)" part is ours to compute, not the model's
    step_tokens = 16
    propose_tokens = 120
    max_depth = 3
    tool_names = ("calculator",)  # the tools this task can use (``tools=False`` turns them off)

    # Without the calculator and with greedy results, a sampled move that stops at "="
    # is continued greedily after this text (``Search`` reads it): the result alone.
    greedy_tail: str | None = None
    tail_stop: tuple[str, ...] = ("\n", " (")
    tail_tokens = 8  # " 1728" is five tokens

    def __init__(self, *, openings: str = "operand", tools: bool = True, results: str = "greedy") -> None:
        if openings not in OPENING_STYLES:
            raise UsageError(f"game24 openings must be one of {', '.join(OPENING_STYLES)}, got {openings!r}")
        if results not in RESULT_STYLES:
            raise UsageError(f"game24 results must be one of {', '.join(RESULT_STYLES)}, got {results!r}")
        if not isinstance(tools, bool):
            raise UsageError(f"game24 tools must be true or false, got {tools!r}")
        self.opening_style = openings
        self.tools = tools
        self.results = results
        if openings == "none":
            # No opening to spread samples over: ask for lists of proposals, as the ToT
            # paper does; one sampled line at a time mostly repeats the same first move.
            self.mode = "propose"
        if tools:
            # The model writes the move and stops at "="; the calculator writes the rest.
            self.step_stop = ("\n", "=", " (")
            self.step_tokens = 10
        elif openings == "pair":
            self.step_tokens = 8  # after "a op b =" only a number is left to write
        elif results == "greedy":
            # The model samples the move and stops at "="; a greedy ask writes the result.
            self.step_stop = ("\n", "=", " (")
            self.step_tokens = 10
            self.greedy_tail = " ="

    # -- states ----------------------------------------------------------------
    def root(self, question: str) -> State:
        numbers = sorted(parse_numbers(question))
        texts = [format_number(n) for n in numbers]
        return {"steps": [], "left": texts, "exprs": texts}

    def key(self, state: State) -> str:
        return " ".join(state["left"])

    def is_terminal(self, state: State) -> bool:
        return len(state["left"]) == 1

    def answer(self, question: str, state: State) -> str | None:
        if not self.is_terminal(state) or Fraction(state["left"][0]) != 24:
            return None  # a chain that ends on another number has not answered
        return f"{strip_outer(state['exprs'][0])} = {state['left'][0]}"

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

        - "operand" (default): "8": the model chooses the operation and the second
          operand; the opening only spreads the samples over first operands.
        - "operation": "8 *": the model picks the second operand.
        - "pair": "8 * 3": pure enumeration. With the calculator on, the opening is the
          whole move and no model is asked at all: the ceiling and the control, not
          the product. With ``tools=False`` it is "8 * 3 =" and the model computes.
        - "none": the model writes the whole step, as lines of a list of proposals
          by default (``mode = "propose"``: the ToT protocol).
        """
        numbers = list(dict.fromkeys(state["left"]))
        if self.opening_style == "pair":
            pairs = pair_openings(state["left"])
            return [p.removesuffix(" =") for p in pairs] if self.tools else pairs
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

    def listed_moves(self, text: str) -> list[str]:
        """The moves "a op b" of a list of proposals, each line's up to its "=", once
        each: where the greedy result is decoded (``greedy_tail``)."""
        heads: list[str] = []
        for line in text.split("\n"):
            if line.strip().lower().startswith("input"):
                break
            if match := HEAD.match(line):
                heads.append(match["head"])
        return list(dict.fromkeys(heads))

    def parse_step(self, question: str, state: State, text: str, *, verify: bool) -> Step | None:
        """The step ``text`` makes from ``state``, or None.

        With the calculator on, ``text`` is a move, "8 * 3" (anything the model wrote
        after "=" is ignored): the calculator computes the result. Without it the text
        must give the result, "8 * 3 = 24", which the verifier checks if it is on.
        """
        match = (MOVE if self.tools else STEP).match(text.strip())
        if not match:
            return None
        try:
            a, b = parse_number(match["a"]), parse_number(match["b"])
            claimed = None if self.tools else parse_number(match["c"])
        except CalculatorError:
            return None
        op = SYMBOL.get(match["op"], match["op"])
        left = [Fraction(n) for n in state["left"]]
        exprs = list(state["exprs"])
        picked = []
        for wanted in (a, b):  # both operands must be numbers that are still left
            if wanted not in left:
                return None
            i = left.index(wanted)
            picked.append(exprs.pop(i))
            left.pop(i)
        call = None
        if self.tools or verify:
            expression = f"({format_number(a)}) {op} ({format_number(b)})"
            try:
                actual = evaluate(expression)
            except CalculatorError:
                return None  # division by zero: no number comes of it
            if claimed is not None and actual != claimed:
                return None  # the model's own arithmetic is wrong
            if self.tools:
                call = {"tool": "calculator", "input": f"{format_number(a)} {op} {format_number(b)}",
                        "output": format_number(actual)}
            result = actual
        else:
            assert claimed is not None
            result = claimed
        pairs = sorted(zip(left + [result], exprs + [f"({picked[0]} {op} {picked[1]})"]), key=lambda p: p[0])
        new_left = [format_number(n) for n, _ in pairs]
        thought = f"{format_number(a)} {op} {format_number(b)} = {format_number(result)} (left: {' '.join(new_left)})"
        state = {"steps": [*state["steps"], thought], "left": new_left, "exprs": [e for _, e in pairs]}
        return Step(thought, state, canonical_move(a, op, b), (call,) if call else ())

    def moves(self, state: State, *, verify: bool) -> list[str] | None:
        """Every legal "a op b" from ``state`` (as the pair openings list them).

        A computed or verified step has one right result per move, and so has a greedy
        result (the model's most likely number); with sampled results and neither the
        calculator nor the verifier, a move can give any number of different children,
        so none is ever the last.
        """
        if not (verify or self.tools or self.greedy_tail):
            return None
        return [opening.removesuffix(" =") for opening in pair_openings(state["left"])]

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
