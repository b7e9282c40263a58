"""A safe calculator for model-written arithmetic: exact rationals, never ``eval``.

Model output is untrusted text. It is parsed with ``ast`` and walked node by node
against a whitelist: numbers, ``+ - * /``, parentheses, unary minus and plus, and
``**`` with a small integer exponent. Everything else (names, calls, attributes,
subscripts, comparisons...) is a ``CalculatorError``. Input length, nesting depth and
the size of every intermediate value are bounded, so each call is fast whatever it gets.
"""

from __future__ import annotations

import ast
import re
import threading
import warnings
from fractions import Fraction

from deliberate.errors import CalculatorError

_PARSING = threading.Lock()

MAX_LENGTH = 256  # characters of input
MAX_DEPTH = 32  # nesting of parentheses and operators
MAX_EXPONENT = 16  # |n| in a ** n
MAX_BITS = 256  # numerator and denominator of every value, in bits

# People and models write these; they mean the ASCII operators.
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "−": "-", "–": "-", "·": "*"})


def normalize(expression: str) -> str:
    """ASCII operators for the usual look-alikes; ``x`` only between numbers or brackets."""
    text = expression.replace("**", "^^")
    text = re.sub(r"(?<=[\d)\s])[xX](?=[\s\d(])", "*", text)
    text = text.translate(_SYMBOLS)
    return text.replace("^^", "**").replace("^", "**")


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression, or ``CalculatorError``."""
    return _walk(_parse(expression), 0)


def subtracts_from_itself(expression: str) -> bool:
    """Whether the expression takes a number from itself (``400 - 400``), which gives
    0 whatever the numbers mean. False for anything the calculator cannot read."""
    try:
        tree = _parse(expression)
    except CalculatorError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            left, right = node.left, node.right
            if isinstance(left, ast.Constant) and isinstance(right, ast.Constant) and left.value == right.value:
                return True
    return False


def _parse(expression: str) -> ast.expr:
    """The expression's syntax tree, within the length and nesting bounds."""
    if not isinstance(expression, str):
        raise CalculatorError("expression must be text")
    # Bound the length before any other work, so a megabyte of input is rejected at once.
    # Normalizing never shortens the text, so this check loses nothing.
    text = expression.strip()
    if len(text) > MAX_LENGTH:
        raise CalculatorError(f"expression longer than {MAX_LENGTH} characters")
    text = normalize(text).strip()
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_LENGTH:
        raise CalculatorError(f"expression longer than {MAX_LENGTH} characters")
    if _max_bracket_depth(text) > MAX_DEPTH:
        raise CalculatorError(f"expression nested deeper than {MAX_DEPTH}")
    try:
        # One parse at a time: CPython 3.11's ast.parse is not safe in threads ("AST
        # constructor recursion depth mismatch" when searches of deliberate serve parse
        # at once), and catch_warnings changes the process's warning filters.
        with _PARSING, warnings.catch_warnings():
            # "1if" or "2j3" would print a SyntaxWarning on the user's terminal.
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from exc
    return tree.body


def _max_bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _checked(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise CalculatorError("number too large")
    return value


def _walk(node: ast.AST, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
        raise CalculatorError(f"expression nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalculatorError(f"not a number: {value!r}")
        if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
            raise CalculatorError("not a finite number")
        return _checked(Fraction(repr(value)) if isinstance(value, float) else Fraction(value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _walk(node.operand, depth + 1)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left = _walk(node.left, depth + 1)
        right = _walk(node.right, depth + 1)
        op = node.op
        if isinstance(op, ast.Add):
            return _checked(left + right)
        if isinstance(op, ast.Sub):
            return _checked(left - right)
        if isinstance(op, ast.Mult):
            return _checked(left * right)
        if isinstance(op, ast.Div):
            if right == 0:
                raise CalculatorError("division by zero")
            return _checked(left / right)
        if isinstance(op, ast.Pow):
            return _power(left, right)
        raise CalculatorError(f"operator not allowed: {type(op).__name__}")
    raise CalculatorError(f"not allowed in arithmetic: {type(node).__name__}")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent must be a whole number of at most {MAX_EXPONENT}")
    n = int(exponent)
    if base == 0 and n < 0:
        raise CalculatorError("division by zero")
    # Bound the size before computing it.
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    if bits * abs(n) > MAX_BITS:
        raise CalculatorError("number too large")
    return _checked(base**n)


def format_number(value: Fraction) -> str:
    """``24``, ``-3`` or ``8/3``: how exact values appear in states and answers."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def parse_number(text: str) -> Fraction:
    """A literal number, fraction (``8/3``) or decimal; anything else is a ``CalculatorError``."""
    text = normalize(text).strip().rstrip(".")
    if not re.fullmatch(r"-?\s*(\d+(\.\d*)?|\.\d+)(\s*/\s*-?\d+)?", text):
        raise CalculatorError(f"not a number: {text!r}")
    return evaluate(text)
