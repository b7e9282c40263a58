"""Word problems with a numeric answer (GSM8K style), with every equation checked.

Steps are reasoning lines, as in the generic task. With the verifier on, each
``expression = number`` a step writes is recomputed by the safe calculator, and a
step with wrong arithmetic is rejected before it enters the tree.
"""

from __future__ import annotations

import re

from deliberate.calculator import evaluate, format_number, parse_number
from deliberate.errors import CalculatorError
from deliberate.tasks.base import State
from deliberate.tasks.generic import GenericTask

EXAMPLES = """Question: Mia buys 3 notebooks at $4 each and a pen for $2. How much does she spend?
Step: The notebooks cost 3 * 4 = 12 dollars.
Step: With the pen she spends 12 + 2 = 14 dollars.
Answer: 14

Question: A farm has 48 cows. A third of them are sold, and then 5 calves are born. How many cows are there now?
Step: A third of 48 is 48 / 3 = 16 cows sold.
Step: 48 - 16 = 32 cows remain.
Step: With the calves there are 32 + 5 = 37 cows.
Answer: 37

"""

# "3 * 4 = 12", "$12 + 2 = $14", "48 / 3 = 16": an arithmetic left side and a number.
_EQUATION = re.compile(
    r"(?P<lhs>[\d$.,()\s]*\d[\d$.,()\s]*(?:[-+*/×÷x][\d$.,()\s]*\d[\d$.,()\s]*)+)=\s*\$?(?P<rhs>-?\d[\d,]*(?:\.\d+)?)"
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def equations(text: str) -> list[tuple[str, str]]:
    """The (expression, claimed result) pairs written in a reasoning step."""
    return [(m["lhs"].strip(), m["rhs"]) for m in _EQUATION.finditer(text)]


def arithmetic_ok(text: str) -> bool:
    """False if any equation in the text is wrong; equations that cannot be read are ignored."""
    for lhs, rhs in equations(text):
        try:
            actual = evaluate(lhs.replace("$", "").replace(",", ""))
            claimed = parse_number(rhs.replace(",", ""))
        except CalculatorError:
            continue
        if actual != claimed:
            return False
    return True


def numeric_answer(text: str) -> str | None:
    """The last number in an answer line, normalized ("1,450" -> "1450", "18.0" -> "18")."""
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    try:
        return format_number(parse_number(numbers[-1].replace(",", "")))
    except CalculatorError:
        return None


class MathTask(GenericTask):
    name = "math"

    def __init__(self, *, shots: str | None = None, max_depth: int | None = None) -> None:
        super().__init__(shots=shots or EXAMPLES, max_depth=max_depth)

    def check_step(self, thought: str, *, verify: bool) -> bool:
        return arithmetic_ok(thought) if verify else True

    def _extend(self, state: State, thought: str, answer: str | None) -> State:
        if answer is not None:
            answer = numeric_answer(answer) or answer
        return super()._extend(state, thought, answer)
