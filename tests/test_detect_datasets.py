"""``--task auto`` on the real datasets: word problems are ``math``, the rest is not.

The rules in ``deliberate.tasks.detect`` are read off the questions of GSM8K (word
problems with a number to compute) and BIG-Bench Hard and ProntoQA (multiple choice,
yes/no, true/false, words). These tests hold them to those datasets; they skip where
../shared is absent (a user's clone) and always run in CI.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import shared_dataset
from deliberate.tasks import detect

# BIG-Bench Hard tasks whose answer is a number to compute from numbers the question gives.
NUMERIC_BBH = {"multistep_arithmetic_two", "object_counting"}


def shares(questions: list[str]) -> Counter[str]:
    return Counter(detect(question) for question in questions)


@pytest.mark.parametrize("split", ["test", "train"])
def test_gsm8k_word_problems_are_math(split: str) -> None:
    with shared_dataset("gsm8k", f"{split}.jsonl").open(encoding="utf-8") as handle:
        questions = [json.loads(line)["question"] for line in handle if line.strip()]
    found = shares(questions)
    assert found["math"] >= 0.98 * len(questions), found  # 99.3 % on both splits when written


def test_bbh_arithmetic_is_math_and_nothing_else_in_bbh_is() -> None:
    folder = shared_dataset("bbh", "bbh")
    for file in sorted(folder.glob("*.json")):
        questions = [example["input"] for example in json.loads(file.read_text(encoding="utf-8"))["examples"]]
        found = shares(questions)
        if file.stem == "multistep_arithmetic_two":  # "((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) ="
            assert found["math"] == len(questions), found
        elif file.stem == "object_counting":  # math where it gives numbers ("four stoves"), else generic
            assert found["math"] >= 0.5 * len(questions) and found["game24"] == 0, found
        else:  # multiple choice, yes/no, sorting, words: a number to compute is not the answer
            assert found == {"generic": len(questions)}, (file.stem, found)
    assert {file.stem for file in folder.glob("*.json")} >= NUMERIC_BBH


def test_prontoqa_true_or_false_is_generic() -> None:
    problems = json.loads(shared_dataset("prontoqa", "345hop_random_true.json").read_text(encoding="utf-8"))
    questions = [f"{p['test_example']['question']} {p['test_example']['query']}" for p in problems.values()]
    assert shares(questions) == {"generic": len(questions)}


def test_the_calculator_alone_answers_every_bbh_arithmetic_item() -> None:
    """The ceiling for multistep_arithmetic_two, as enumeration is Game of 24's: the
    question is an expression the calculator takes as written. What the model adds is
    copying it into a call without a slip (README, "Arithmetic and word problems")."""
    from deliberate.calculator import evaluate, format_number

    file = shared_dataset("bbh", "bbh", "multistep_arithmetic_two.json")
    examples = json.loads(file.read_text(encoding="utf-8"))["examples"]
    for example in examples:
        expression = example["input"].strip().removesuffix("=")
        assert format_number(evaluate(expression)) == example["target"], example
    assert len(examples) == 250
