"""Reading answers as numbers, and MATH answers in LaTeX.

``plain_number`` reads the plain numbers GSM8K and Game of 24 answers end with.
``math_equal`` compares MATH-500 answers after normalizing their LaTeX, after Hendrycks
et al.'s ``strip_string``: spacing and decoration dropped, fractions and roots in one
spelling, and two answers that are the same number equal.
"""

from __future__ import annotations

import re
from fractions import Fraction

from deliberate.calculator import parse_number
from deliberate.errors import CalculatorError


def plain_number(text: str) -> Fraction | None:
    """A plain number such as "1,450", "$18.", "-3.50" or "8/3"; None for anything else."""
    text = text.strip().replace("$", "").rstrip(".").strip()
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    try:
        return parse_number(text)
    except CalculatorError:
        return None



def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces matched."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    depth = 0
    opening = text.index("{", start)
    for i in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[opening + 1 : i]
    return None


# Spacing, sizing and decoration that never change a MATH answer's value.
_MATH_NOISE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\%", "%", "\\$", "$", "^\\circ", "^{\\circ}")


def normalize_math(text: str) -> str:
    """A MATH answer in one canonical spelling: "\\dfrac12" and "1/2" both become "\\frac{1}{2}"."""
    text = last_boxed(text) or text
    for noise in _MATH_NOISE:
        text = text.replace(noise, "")
    text = text.replace("dfrac", "frac").replace("tfrac", "frac")
    text = re.sub(r"(?<=\S)\s*\\(?:text|mbox)\{[^{}]*\}\s*$", "", text.strip())  # a trailing unit: "10\\text{ cm}"
    text = re.sub(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    if text.count("=") == 1 and re.fullmatch(r"[a-zA-Z]{1,2}", text.split("=")[0]):
        text = text.split("=")[1]  # "x=5" answers 5
    text = re.sub(r"\\(frac|sqrt)(\d)", r"\\\1{\2}", text)  # \\frac12 -> \\frac{1}2, \\sqrt2 -> \\sqrt{2}
    text = re.sub(r"(\\frac\{[^{}]*\})(\d)", r"\1{\2}", text)
    text = re.sub(r"^(-?)(\d+)/(\d+)$", r"\1\\frac{\2}{\3}", text)
    text = re.sub(r"^(-?)\.(\d)", r"\g<1>0.\2", text)
    return re.sub(r"^(-?\d+)\.0+$", r"\1", text)


def _math_number(text: str) -> Fraction | None:
    fraction = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}", text)
    if fraction:
        if int(fraction[3]) == 0:
            return None
        value = Fraction(int(fraction[2]), int(fraction[3]))
        return -value if fraction[1] else value
    return plain_number(text)


def math_equal(answer: str, gold: str) -> bool:
    """MATH-500: the normalized strings match, or both are the same number."""
    a, g = normalize_math(answer), normalize_math(gold)
    if a == g and a:
        return True
    x, y = _math_number(a), _math_number(g)
    return x is not None and x == y
