"""``--task auto``: Game of 24 only for Game of 24 phrasing, never for arithmetic that mentions 24."""

from __future__ import annotations

import pytest

from deliberate.tasks import detect, make_task

GAME24 = [
    "Use 4 9 10 13 to make 24.",
    "Use the numbers 1 1 11 11 and + - * / to make 24.",
    "Use the numbers 4 5 6 10 and + - * / to make 24.",
    "4 9 10 13",
    "1 1 11 11",
    "6 6 6 6",
    "1, 2, 3, 4",
    "3 3 8 8.",
    "2,3,7,9",
    "Make 24 from 2 3 7 9.",
    "Can you make 24 with 1 5 5 5?",
    "How do I make 24 out of 3, 3, 8 and 8?",
    "With 4 4 10 10, make 24 using + - * /.",
    "Using each of 1 3 4 6 once, make 24.",
    "Combine 2 2 6 6 to make exactly 24.",
    "Solve the 24 game for 5 5 5 1.",
    "24 game: 3 4 5 6",
    "Play the 24 game with 1 2 7 7.",
    "Game of 24: 4 7 8 8",
    "Solve this game of 24 puzzle: 2 5 8 11",
    "Get 24 from 1 4 5 6.",
    "How can you get 24 using 3 9 10 12?",
    "Try to get 24 with the numbers 6 9 9 10.",
    "Is it possible to get 24 from 1 1 1 8?",
    "Find a way to make 24 with 7 7 3 3",
    "make 24: 8 8 3 3",
    "Using + - * / and brackets, make 24 from 12 12 12 12.",
    "What expression of 2 4 6 8 makes 24?",
    "Getting 24 from 5 6 7 8: show the steps.",
    "Numbers 10 10 4 4 - make 24.",
    "Make 24 with 13 13 13 13, or say it can't be done.",
    "Use 1 1 1 1 to make 24.",
]

GENERIC = [
    "Is 1247 divisible by 3, 5 or 7?",
    "What is 24 divided by 2, times 3, plus 1?",
    "I have 3 boxes of 8 apples and eat 4; 24 hours later how many?",
    "What is 6 + 6 + 6 + 6?",
    "How many hours are in 24 days?",
    "A day has 24 hours. How many minutes are in 3 days?",
    "If 4 friends share 24 cookies and each eats 2, how many are left after 1 hour?",
    "What is 24 * 3?",
    "Is 24 a prime number?",
    "What is the square root of 24?",
    "Convert 24 degrees Celsius to Fahrenheit.",
    "Add 1, 2, 3 and 24.",
    "What is 10 + 13 + 1 - 24?",
    "A train leaves at 4 and arrives 24 minutes later at gate 9 platform 10. When does it arrive?",
    "Is the sky green?",
    "Every cat is a mammal. Tom is a cat. Is Tom a mammal?",
    "What is 17 * 3?",
    "Sort these numbers: 24, 3, 9, 1.",
    "What is the sum of 4, 9, 10 and 13?",
    "What is the product of 1, 1, 11 and 11?",
    "Round 24.6 to the nearest whole number.",
    "How many 24-packs do I need for 96 cans?",
    "If I make 24 dollars an hour for 8 hours a day, 5 days a week, 4 weeks, what do I earn?",
    "Is 24 greater than 4 * 6 - 1?",
    "What day is it 24 days after March 3, 2025?",
    "Name 4 planets.",
    "Write 24 in binary.",
    "What is 2 to the power of 4, plus 8?",
    "How much is 1/4 of 24?",
    "Which is larger: 3/8 or 9/24?",
    "My phone battery drains 4% an hour; it is at 24%. How many hours are left?",
    "Anna has 5 apples and eats 2. How many are left?",
    "1 2 3",
    "1 2 3 4 5",
]


@pytest.mark.parametrize("question", GAME24)
def test_game24_phrasing_is_game24(question: str) -> None:
    assert detect(question) == "game24"
    make_task("game24").root(question)  # and the task can read its four numbers


@pytest.mark.parametrize("question", GENERIC)
def test_other_questions_are_generic(question: str) -> None:
    assert detect(question) == "generic"


def test_the_tables_are_large_enough() -> None:
    assert len(GAME24) >= 30 and len(GENERIC) >= 30
