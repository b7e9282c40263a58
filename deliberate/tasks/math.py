"""Word problems with a numeric answer (GSM8K style), with every equation checked.

Steps are reasoning lines, as in the generic task, written with GSM8K's calculator
annotations: ``48 / 2 = <<48/2=24>>24 clips``. With the calculator tool on (the
default) the model writes ``<<48/2=`` and the calculator writes ``24>>``, inside the
generation (``deliberate.tools``); the model then goes on with the text. With
``tools=False`` (``--no-tools``) the model writes the whole annotation itself.

With the verifier on, each ``expression = number`` a step writes is recomputed by the
safe calculator, a number written right after an annotation must be its result, so
must the prose expression written right before it (``12 * 4 = <<4*4=16>>``), and a
step with wrong arithmetic is rejected before it enters the tree; in a chain of
equations (``3 * 2 = 6 * 2 = 12``) every link is checked. So is a step that
takes a number from itself (``400 - 400 = <<400-400=0>>0``): right arithmetic, but it
gives 0 whatever the question says. The embedded model writes such steps often, and
their chains voted 0 (an answer no GSM8K test item has); GSM8K's own solutions write
one in 23,716 annotated steps. An answer line is checked too: its arithmetic, and that
its number is one the chain stated as a result or the question gave, not a guess.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction

from deliberate.calculator import evaluate, format_number, parse_number, subtracts_from_itself
from deliberate.errors import CalculatorError
from deliberate.tasks.base import Prompt, State
from deliberate.tasks.detection import is_arithmetic
from deliberate.tasks.generic import GenericTask
from deliberate.tools import CALCULATOR

# Our own exemplars, in GSM8K's annotation style (its train set stays in ../shared).
EXAMPLES = """Question: Mia buys 3 notebooks at $4 each and a pen for $2. How much does she spend?
Step: The notebooks cost 3 * 4 = <<3*4=12>>12 dollars.
Step: With the pen she spends 12 + 2 = <<12+2=14>>14 dollars.
Answer: 14

Question: A farm has 48 cows. A third of them are sold, and then 5 calves are born. How many cows are there now?
Step: A third of 48 is 48 / 3 = <<48/3=16>>16 cows sold.
Step: 48 - 16 = <<48-16=32>>32 cows remain.
Step: With the calves there are 32 + 5 = <<32+5=37>>37 cows.
Answer: 37

Question: A shirt costs $40 and is on sale for 25% off. What is the sale price?
Step: The discount is 40 * 25 / 100 = <<40*25/100=10>>10 dollars.
Step: The sale price is 40 - 10 = <<40-10=30>>30 dollars.
Answer: 30

"""

# For bare arithmetic ("((-1 + 2) * 3 - 4) =", "What is 17 * 3?"): the model copies the
# expression as the question writes it, spaces and all, into the prose and into one
# annotation, and the calculator computes it. A copy that differs from the other is a
# prose claim the verifier rejects. Our own exemplars.
ARITHMETIC_EXAMPLES = """Question: ((3 - 8 * 2) + (-4 * -5 + 6)) =
Step: ((3 - 8 * 2) + (-4 * -5 + 6)) = <<((3 - 8 * 2) + (-4 * -5 + 6))=13>>13
Answer: 13

Question: What is 17 * 3 + 4?
Step: 17 * 3 + 4 = <<17 * 3 + 4=55>>55
Answer: 55

Question: ((-6 + 9 * -1) * (2 - -3 - 4)) =
Step: ((-6 + 9 * -1) * (2 - -3 - 4)) = <<((-6 + 9 * -1) * (2 - -3 - 4))=-15>>-15
Answer: -15

"""

# "<<48/2=24>>24": an annotation, and the number written right after it (if any).
_ANNOTATION = re.compile(r"<<(?P<expr>[^<>=]*)=(?P<result>[^<>]*)>>\s*\$?(?P<after>-?\d[\d,]*(?:\.\d+)?)?")

# "3 * 4 = 12", "$12 + 2 = $14", "48 / 3 = 16": an arithmetic left side and a number.
# An operand may be negative: "-4 * -7", "(-2 + 3)", "5 - -3"; a minus sign is one only
# right before its number or bracket and not right after a word ("40 marbles - 3 - 5",
# "w-20+10", "3x-5"). Each character has one way to be read: no backtracking blow-up.
_OPERAND = r"[$.,()\s]*(?:(?<![\w)])-(?=[\d(])[$.,()\s]*)?\d[\d$.,()\s]*"
_LHS = rf"(?P<lhs>{_OPERAND}(?:[-+*/×÷x]{_OPERAND})+)="
_EQUATION = re.compile(_LHS + r"\s*\$?(?P<rhs>-?\d[\d,]*(?:\.\d+)?)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# "1/" or "33 3/" right before a last number: it is a fraction's denominator.
_FRACTION_BEFORE = re.compile(r"(?:(?<![\d.,])(?P<whole>\d+) +)?(?<![\d.,])(?P<numerator>\d+) */ *$")
# "= 24", "=$1,450", "<<48/2=24>>": a number stated as the result of something.
_RESULT = re.compile(r"=[ \t]*\$?(-?\d[\d,]*(?:\.\d+)?)")  # on the same line: "... =" then "17" is no result


# "<<15+25>>": an annotation without a result, which only a model without the tool writes.
_NO_RESULT = re.compile(r"<<[^<>=]*>>")
# "12 * 4 = <<4*4=16>>": the prose's own expression, then the annotation's result.
_PROSE_CLAIM = re.compile(_LHS + r"\s*<<[^<>=]*=(?P<result>[^<>]*)>>")
# An operator just before a prose expression: it is the tail of a longer one whose
# words the pattern cannot read ("72 cubic ft * 3/4 = <<72*3/4=54>>"), not the whole.
_TAIL = re.compile(r"[-+*/×÷x^]\s*$")


def equations(text: str) -> list[tuple[str, str]]:
    """The (expression, claimed result) pairs written in a reasoning step, the
    annotations' own included ("<<15+25=41>>"). An annotation with no result is read
    through: "15 + 25 = <<15+25>>25" claims 15 + 25 = 25. One with a result is the
    step's computation, and the prose expression in front of it claims the same
    result: "12 * 4 = <<4*4=16>>16" claims 12 * 4 = 16. With the tool the annotation's
    result is always right, so this is where a model's wrong claim shows: on GSM8K train
    at 9814194, 20 % of self-consistency's tool-arm chains wrote one, 7 % without the
    tool. An expression right after an operator is the tail of a longer one with words
    in it ("72 cubic ft * 3/4 = <<72*3/4=54>>") and is not read; GSM8K's own train
    solutions then break the rule in 5 of 14,260 such equations, each a typo.

    A chain "3 * 2 = 6 * 2 = 12" is two claims, 3 * 2 = 6 and 6 * 2 = 12: each search
    starts again at the last claimed result, which may begin the next left side.
    """
    prose = _NO_RESULT.sub(" ", text)
    found: list[tuple[str, str]] = []
    at = 0
    while (m := _EQUATION.search(prose, at)) is not None:
        found.append((m["lhs"].strip(), m["rhs"]))
        at = m.start("rhs")
    for m in _PROSE_CLAIM.finditer(prose):
        if not _TAIL.search(prose, 0, m.start("lhs")):
            found.append((m["lhs"].strip(), m["result"].strip()))
    return found


def claim_holds(expression: str, claimed: str) -> bool:
    """Whether ``expression = claimed`` is right; a claim that cannot be read holds.

    A decimal written to d places is right when it is the exact value rounded to d
    places: ``10 / 3 = 3.33``, and the calculator tool's own ``<<10/3=3.333333>>``. A
    whole number must be exact (``10 / 3 = 3`` is wrong).
    """
    try:
        actual = evaluate(expression.replace("$", "").replace(",", ""))
        value = parse_number(claimed.replace(",", ""))
    except CalculatorError:
        return True
    places = len(claimed.partition(".")[2].strip())
    return actual == value or (places > 0 and abs(actual - value) * 2 * 10**places <= 1)


def arithmetic_ok(text: str) -> bool:
    """False if any equation in the text is wrong; equations that cannot be read are ignored."""
    return all(claim_holds(lhs, rhs) for lhs, rhs in equations(text))


def subtracts_a_number_from_itself(text: str) -> bool:
    """True if an equation in the text takes a number from itself (``400 - 400 = 0``)."""
    return any(subtracts_from_itself(lhs.replace("$", "").replace(",", "")) for lhs, _ in equations(text))


def annotations_ok(text: str) -> bool:
    """False if an annotation's result is wrong (``<<10-0.1^3=9>>``, which the prose
    pattern of ``equations`` cannot read) or the calculator's error, or a number written
    right after an annotation is not its result (``<<3*4=12>>13``)."""
    for match in _ANNOTATION.finditer(text):
        result = match["result"].strip()
        if result.startswith("error") or not claim_holds(match["expr"], result):
            return False
        after = match["after"]
        if after is None:
            continue
        if not claim_holds(result, after):  # the result, or it rounded ("3.333333", then "3.33")
            return False
    return True


def numeric_answer(text: str) -> str | None:
    """The last number in an answer line, normalized ("1,450" -> "1450", "18.0" -> "18",
    "7.50" -> "7.5"); a decimal stays a decimal, as the model wrote it. A fraction is
    one number, not its denominator: "1/5" -> "1/5", "33 3/4" -> "135/4", "6/3" -> "2"."""
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return None
    written = numbers[-1][0].replace(",", "")
    try:
        value = parse_number(written)
    except CalculatorError:
        return None
    fraction = _FRACTION_BEFORE.search(text, 0, numbers[-1].start())
    if fraction is not None and "." not in written:
        if value == 0:
            return None
        return format_number(int(fraction["whole"] or 0) + Fraction(int(fraction["numerator"]), value))
    if value.denominator == 1:
        return format_number(value)
    return written.rstrip("0").rstrip(".")


def _values(numbers: list[str]) -> set[Fraction]:
    """The values of numbers as ``_NUMBER`` and ``_RESULT`` find them ("1,450", "-3.5")."""
    values = set()
    for number in numbers:
        try:
            values.add(parse_number(number.replace(",", "")))
        except CalculatorError:
            continue
    return values


def stated_numbers(text: str) -> set[Fraction]:
    """The values of every number a text writes ("1,450", "-3.5", the 20 of "20 chickens")."""
    return _values(_NUMBER.findall(text))


def computed_numbers(text: str) -> set[Fraction]:
    """The numbers a text states as results: whatever follows an "=" (an annotation's
    result, an equation's right side, "x = 2350"); whether the equation holds is
    ``arithmetic_ok``'s question, not this one's."""
    return _values(_RESULT.findall(text))


def answer_supported(question: str, steps: list[str], line: str) -> bool:
    """Whether an answer line's number is one the chain computed (in an earlier step or
    the line itself) or the question gave. An answer that neither computed nor read is
    a guess: "Answer: 30" after steps that never wrote 30 is rejected, and so is an
    answer with no number at all. GSM8K's own train solutions fail it for 60 of 7,473
    items (0.8 %), mostly answers stated in words ("she has 5 left"); a test counts them.

    Bare arithmetic ("What is 17 * 3?") states only operands, so there the answer must
    be computed: "Answer: 17" and "Answer: 17 * 3" (whose last number is 3) are guesses."""
    answer = numeric_answer(line)
    if answer is None:
        return False
    known = computed_numbers("\n".join([*steps, line]))
    if not is_arithmetic(question):
        known |= stated_numbers(question)
    return parse_number(answer) in known


class MathTask(GenericTask):
    name = "math"
    tool_names = ("calculator",)  # the tools this task can use (``tools=False`` turns them off)
    call_syntax = CALCULATOR  # "<<48/2=" from the model, "24>>" from the calculator

    def __init__(self, *, shots: str | None = None, max_depth: int | None = None, tools: bool = True) -> None:
        super().__init__(shots=shots or EXAMPLES, max_depth=max_depth)
        self.tools = tools
        self.own_shots = bool(shots)  # a user's exemplars serve every question

    def step_prompt(self, question: str, state: State) -> Prompt:
        """Word problems get the word-problem exemplars; bare arithmetic gets exemplars
        that copy the whole expression into one annotation, for the calculator to compute."""
        prompt = super().step_prompt(question, state)
        if self.own_shots or not is_arithmetic(question):
            return prompt
        return dataclasses.replace(prompt, examples=ARITHMETIC_EXAMPLES)

    def check_step(self, thought: str, *, verify: bool) -> bool:
        """A step's equations and annotations must hold, it must not take a number from
        itself, and it must not end at "=" with no result (no line of GSM8K's solutions
        does; the embedded model writes "(17 * 3) =" and stops)."""
        if not verify:
            return True
        if thought.rstrip().endswith("="):
            return False
        return arithmetic_ok(thought) and annotations_ok(thought) and not subtracts_a_number_from_itself(thought)

    def check_answer(self, question: str, state: State, line: str, *, verify: bool) -> bool:
        """An answer line's own arithmetic is checked like a step's, and its number must
        be one the chain computed or the question gave (``answer_supported``)."""
        if not verify:
            return True
        return self.check_step(line, verify=True) and answer_supported(question, state["steps"], line)

    def _extend(self, state: State, thought: str, answer: str | None) -> State:
        if answer is not None:
            answer = numeric_answer(answer) or answer
        return super()._extend(state, thought, answer)
