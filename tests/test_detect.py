"""``--task auto``: Game of 24 only for Game of 24 phrasing, never for arithmetic that mentions 24;
``math`` for a number to compute; ``generic`` for the rest."""

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

# Not a puzzle, but a number to compute: the calculator's task.
MATH = [
    "What is 24 divided by 2, times 3, plus 1?",
    "I have 3 boxes of 8 apples and eat 4; 24 hours later how many?",
    "What is 6 + 6 + 6 + 6?",
    "How many hours are in 24 days?",
    "A day has 24 hours. How many minutes are in 3 days?",
    "If 4 friends share 24 cookies and each eats 2, how many are left after 1 hour?",
    "What is 24 * 3?",
    "What is 10 + 13 + 1 - 24?",
    "What is 17 * 3?",
    "What is the sum of 4, 9, 10 and 13?",
    "What is the product of 1, 1, 11 and 11?",
    "How many 24-packs do I need for 96 cans?",
    "If I make 24 dollars an hour for 8 hours a day, 5 days a week, 4 weeks, what do I earn?",
    "What is 2 to the power of 4, plus 8?",
    "How much is 1/4 of 24?",
    "My phone battery drains 4% an hour; it is at 24%. How many hours are left?",
    "Anna has 5 apples and eats 2. How many are left?",
    "Tom has 3 apples and buys 5 more. How many apples does he have?",
    "((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =",
    "Compute 2.5 / 5",
    "Mr. Tan sold his house for $400 000 and paid 3% in fees. How much did he keep?",
    "A shirt costs $40 and is 25% off. What is the sale price?",
    "Grace weighs 125 pounds and Alex 2 pounds less than 4 times that. What are their combined weights?",
    "Sally scored 50, 80 and 60. Find her mean score.",
    "I have a flute, two lamps and four stoves. How many objects do I have?",
    "If a pen costs 3 dollars, what would 12 pens cost?",
    "Calculate the total of 12 boxes of 6 eggs.",
    "A tank holds 300 liters and leaks 12 liters an hour. How long until it is empty?",
    "Ben is 3 times as old as Ann, who is 4. How old is Ben?",
    "A car goes 60 miles an hour for 2.5 hours. How far does it go?",
]

# Neither a puzzle nor a number to compute (or nothing the calculator can compute).
GENERIC = [
    "Is 1247 divisible by 3, 5 or 7?",
    "Is 24 a prime number?",
    "What is the square root of 24?",
    "Convert 24 degrees Celsius to Fahrenheit.",
    "Add 1, 2, 3 and 24.",
    "A train leaves at 4 and arrives 24 minutes later at gate 9 platform 10. When does it arrive?",
    "Is the sky green?",
    "Every cat is a mammal. Tom is a cat. Is Tom a mammal?",
    "Sort these numbers: 24, 3, 9, 1.",
    "Round 24.6 to the nearest whole number.",
    "Is 24 greater than 4 * 6 - 1?",
    "What day is it 24 days after March 3, 2025?",
    "Name 4 planets.",
    "Write 24 in binary.",
    "Which is larger: 3/8 or 9/24?",
    "1 2 3",
    "1 2 3 4 5",
    "How many legs does a spider have?",
    "What is the capital of France?",
    "What is the total population of Mars?",
    "Does 3 + 4 equal 7?",
    "Can I pay 5 dollars with 2 coins?",
    "True or false: 7 is more than 3 and costs nothing.",
    "How many penguins are more than 5 years old?\nOptions:\n(A) 1\n(B) 2\n(C) 3",
    "Take 3 steps forward and 3 back. Do you return to the start?\nOptions:\n- Yes\n- No",
    "Today is 12/24/1937. What is the date tomorrow in MM/DD/YYYY?\n(A) 12/25/1937\n(B) 12/11/1937",
    "What is love?",
    "Who won the 1998 World Cup?",
    "Translate 'I have 3 cats' into French.",
    "Explain why 0.1 + 0.2 is not exactly 0.3 in floating point.",
]


@pytest.mark.parametrize("question", GAME24)
def test_game24_phrasing_is_game24(question: str) -> None:
    assert detect(question) == "game24"
    make_task("game24").root(question)  # and the task can read its four numbers


@pytest.mark.parametrize("question", MATH)
def test_a_number_to_compute_is_math(question: str) -> None:
    assert detect(question) == "math"


@pytest.mark.parametrize("question", GENERIC)
def test_other_questions_are_generic(question: str) -> None:
    assert detect(question) == "generic"


def test_the_tables_are_large_enough_and_apart() -> None:
    assert len(GAME24) >= 30 and len(MATH) >= 30 and len(GENERIC) >= 30
    assert not set(GAME24) & set(MATH) and not set(MATH) & set(GENERIC) and not set(GAME24) & set(GENERIC)


@pytest.mark.parametrize("question", [
    " " * 100_000 + "1", "\n" * 100_000 + "x", "1" + " " * 100_000 + "2", "1" + " \t" * 50_000 + "x",
    "1 " * 50_000, "1 ) " * 25_000, "1 + " * 25_000 + "x?", "( " * 50_000 + "1", "If " + "a, " * 30_000 + "what is 2 and 3?",
    "\n (A) " * 15_000, "1, " * 30_000 + "2",
])
def test_a_long_pathological_question_is_read_in_linear_time(question: str) -> None:
    # Patterns that backtrack over a run of blanks took seconds at 20,000 characters;
    # at 100,000 they would take a minute. Linear, each takes milliseconds.
    from conftest import wall_clock_limit
    from deliberate.tasks.detection import is_arithmetic

    with wall_clock_limit(5.0):
        assert detect(question) in {"game24", "math", "generic"}
        is_arithmetic(question)
