"""Tasks: reading questions, parsing steps, verifying answers, writing prompts."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import can_make_24
from deliberate.calculator import evaluate, format_number
from deliberate.errors import QuestionError, UnknownNameError, UsageError
from deliberate.tasks import detect, make_task, names
from deliberate.tasks.base import VALUE_LABELS, Prompt, vote_labels
from deliberate.tasks.game24 import Game24Task, parse_numbers
from deliberate.tasks.generic import GenericTask
from deliberate.tasks.math import MathTask, arithmetic_ok, equations, numeric_answer
from deliberate.tools import calculate

QUESTION = "Use 4 9 10 13 to make 24."


@pytest.fixture
def game24() -> Game24Task:
    """The model writes the whole step and computes ("10 - 4 = 6"): the no-tools protocol."""
    return Game24Task(openings="pair", tools=False)


@pytest.fixture
def game24_tools() -> Game24Task:
    """The default: the model writes the move, the calculator computes the rest."""
    return Game24Task()


def state_of(left: list[str], exprs: list[str] | None = None) -> dict:
    return {"steps": [], "left": left, "exprs": exprs or list(left)}


# -- the registry ---------------------------------------------------------------------------------


def test_registry_and_detection():
    assert set(names()) >= {"generic", "game24", "math"}
    assert detect(QUESTION) == "game24"
    assert detect("4 9 10 13 -> 24") == "game24"
    assert detect("What is 2 + 2?") == "math"
    assert detect("What is the capital of France?") == "generic"


def test_make_task_by_name_object_and_errors():
    assert isinstance(make_task("game24"), Game24Task)
    task = GenericTask()
    assert make_task(task) is task
    with pytest.raises(UnknownNameError, match="'chess'.*game24"):
        make_task("chess")
    with pytest.raises(UsageError, match="game24"):
        make_task("game24", colour="blue")
    with pytest.raises(UsageError, match="openings"):
        make_task("game24", openings="sideways")


# -- game24: questions and states ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "numbers"),
    [(QUESTION, [4, 9, 10, 13]), ("4 9 10 13", [4, 9, 10, 13]), ("numbers: 2.5 4 6 8", [Fraction(5, 2), 4, 6, 8])],
)
def test_parse_numbers(question, numbers):
    assert parse_numbers(question) == [Fraction(n) for n in numbers]


@pytest.mark.parametrize("question", ["Use 1 2 to make 24", "1 2 3 4 5 6", "no numbers", ""])
def test_a_question_without_four_numbers_is_a_question_error(question, game24):
    with pytest.raises(QuestionError, match="four numbers"):
        game24.root(question)


def test_root_state_is_sorted_and_keyed(game24):
    state = game24.root("Use 13 4 10 9 to make 24.")
    assert state == {"steps": [], "left": ["4", "9", "10", "13"], "exprs": ["4", "9", "10", "13"]}
    assert game24.key(state) == "4 9 10 13"
    assert not game24.is_terminal(state)
    assert game24.answer(QUESTION, state) is None and game24.verify(QUESTION, state) is None


# -- game24: steps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["10 - 4 = 6", "10 - 4 = 6 (left: 6 9 13)", "Step 1: 10 − 4 = 6", "  10-4=6", "10 - 4 = 6.0"],
)
def test_a_correct_step_is_read_in_its_usual_spellings(text, game24):
    step = game24.parse_step(QUESTION, game24.root(QUESTION), text, verify=True)
    assert step is not None
    assert step.thought == "10 - 4 = 6 (left: 6 9 13)"
    assert step.state["left"] == ["6", "9", "13"]
    assert step.state["exprs"] == ["(10 - 4)", "9", "13"]
    assert step.state["steps"] == [step.thought]


@pytest.mark.parametrize(("text", "result"), [("13 x 4 = 52", "52"), ("13 × 4 = 52", "52"), ("13 ÷ 4 = 13/4", "13/4"), ("4 / 10 = 2/5", "2/5")])
def test_operator_look_alikes(text, result, game24):
    step = game24.parse_step(QUESTION, game24.root(QUESTION), text, verify=True)
    assert step is not None and result in step.state["left"]


def test_wrong_arithmetic_is_rejected_only_with_the_verifier(game24):
    root = game24.root(QUESTION)
    assert game24.parse_step(QUESTION, root, "10 - 4 = 7", verify=True) is None
    unchecked = game24.parse_step(QUESTION, root, "10 - 4 = 7", verify=False)
    assert unchecked is not None and unchecked.state["left"] == ["7", "9", "13"]


@pytest.mark.parametrize("text", ["10 - 5 = 5", "4 * 4 = 16", "24 = 24", "I think 10 - 4 = 6", "", "ten minus four", "10 ^ 4 = 10000", "9 / 0 = 0"])
def test_a_step_using_numbers_not_left_or_not_a_step_is_rejected(text, game24):
    state = state_of(["0", "4", "9", "10"]) if "/ 0" in text else game24.root(QUESTION)
    assert game24.parse_step(QUESTION, state, text, verify=True) is None
    if "/ 0" not in text:
        assert game24.parse_step(QUESTION, state, text, verify=False) is None


def test_a_repeated_number_can_be_used_twice_only_if_left_twice(game24):
    state = game24.root("Use 4 4 10 10 to make 24.")
    step = game24.parse_step(QUESTION, state, "4 * 4 = 16", verify=True)
    assert step is not None and step.state["left"] == ["10", "10", "16"]
    assert game24.parse_step(QUESTION, step.state, "16 - 16 = 0", verify=True) is None


def test_proposals_are_read_line_by_line_until_the_next_puzzle(game24):
    text = "10 - 4 = 6 (left: 6 9 13)\nthis line is noise\n9 + 13 = 23\n13 - 9 = 4\nInput: 1 2 3 4\n1 + 2 = 3\n"
    steps = game24.parse_proposals(QUESTION, game24.root(QUESTION), text, verify=True)
    assert [s.thought for s in steps] == ["10 - 4 = 6 (left: 6 9 13)", "13 - 9 = 4 (left: 4 4 10)"]


def test_dividing_by_a_fraction_is_a_valid_step(game24):
    # The task offers this very opening, so the model can only ever complete it in vain.
    state = state_of(["1/2", "12"], ["(3 - (5 / 2))", "12"])
    assert "12 / 1/2 =" in game24.openings(state)
    step = game24.parse_step("Use 2 3 5 12 to make 24.", state, "12 / 1/2 = 24", verify=True)
    assert step is not None and step.state["left"] == ["24"]


def test_dividing_a_fraction_or_multiplying_by_one_is_read(game24):
    state = state_of(["1/2", "12"], ["(3 - (5 / 2))", "12"])
    assert game24.parse_step(QUESTION, state, "12 * 1/2 = 6", verify=True).state["left"] == ["6"]
    assert game24.parse_step(QUESTION, state, "1/2 / 12 = 1/24", verify=True).state["left"] == ["1/24"]


# -- game24: random play keeps states honest ---------------------------------------------------------


@st.composite
def plays(draw: st.DrawFn):
    numbers = draw(st.lists(st.integers(min_value=1, max_value=13), min_size=4, max_size=4))
    moves = draw(st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99), st.sampled_from("+-*/")), min_size=3, max_size=3))
    return numbers, moves


@settings(max_examples=300, deadline=None)
@given(plays())
def test_random_valid_play_keeps_each_expression_equal_to_its_number(play):
    """Along any game, each number left is exactly the value of its expression, the
    left list stays sorted, and the final verification agrees with the arithmetic."""
    numbers, moves = play
    task = Game24Task()
    question = "Use " + " ".join(map(str, numbers)) + " to make 24."
    state = task.root(question)
    for i, j, op in moves:
        left = [Fraction(n) for n in state["left"]]
        i, j = i % len(left), j % len(left)
        if i == j:
            j = (j + 1) % len(left)
        a, b = left[i], left[j]
        if op == "/" and (b == 0 or b.denominator != 1):
            op = "*"  # see test_dividing_by_a_fraction_is_a_valid_step for division by a fraction
        c = evaluate(f"{format_number(a)} {op} {format_number(b)}")
        step = task.parse_step(question, state, f"{format_number(a)} {op} {format_number(b)} = {format_number(c)}", verify=True)
        assert step is not None, (state["left"], a, op, b)
        state = step.state
        remaining = [n for k, n in enumerate(left) if k not in (i, j)] + [c]
        assert sorted(Fraction(n) for n in state["left"]) == sorted(remaining)
        assert [Fraction(n) for n in state["left"]] == sorted(Fraction(n) for n in state["left"])
        for number, expr in zip(state["left"], state["exprs"]):
            assert evaluate(expr) == Fraction(number)
    assert task.is_terminal(state)
    value = Fraction(state["left"][0])
    assert task.verify(question, state) is (value == 24)
    if value != 24:
        assert task.answer(question, state) is None  # a chain that ends on another number has not answered
        state = {**state, "left": ["24"]}  # as if the last step had claimed 24
    assert task.answer(question, state).endswith("= 24")
    assert evaluate(task.answer(question, state).rsplit("=", 1)[0]) == value


def test_verify_needs_24_from_exactly_the_four_numbers(game24):
    assert game24.verify(QUESTION, state_of(["24"], ["(10 - 4) * (13 - 9)"])) is True
    assert game24.verify(QUESTION, state_of(["24"], ["(10 - 4) * (13 - 9) * 1"])) is False  # an extra number
    assert game24.verify(QUESTION, state_of(["24"], ["(10 - 4) * 4"])) is False  # not the puzzle's numbers
    assert game24.verify(QUESTION, state_of(["23"], ["(10 - 4) * (13 - 9) - 1"])) is False
    assert game24.verify(QUESTION, state_of(["24"], ["(10 - 4) * (13 - 9"])) is False  # unreadable


def test_answer_drops_only_enclosing_brackets(game24):
    assert game24.answer(QUESTION, state_of(["24"], ["((10 - 4) * (13 - 9))"])) == "(10 - 4) * (13 - 9) = 24"
    assert game24.answer(QUESTION, state_of(["24"], ["(10 - 4) * (13 - 9)"])) == "(10 - 4) * (13 - 9) = 24"


# -- game24: openings and prompts ------------------------------------------------------------------


def test_pair_openings_cover_each_pair_once_and_never_divide_by_zero(game24):
    openings = game24.openings(state_of(["0", "3", "3", "8"]))
    assert len(openings) == len(set(openings))
    assert "3 / 0 =" not in openings and "0 / 3 =" in openings
    assert "8 - 3 =" in openings and "3 - 8 =" not in openings  # the larger first
    assert openings.index("8 * 3 =") < openings.index("8 + 3 =") < openings.index("8 - 3 =") < openings.index("8 / 3 =")
    assert openings.count("3 * 3 =") == 1  # equal numbers give the same steps once
    for opening in openings:
        a, op, b, eq = opening.split()
        assert eq == "=" and op in "+-*/"


@pytest.mark.parametrize(("style", "first"), [("operation", "4 +"), ("operand", "4"), ("none", "")])
def test_other_opening_styles(style, first):
    for tools, results in ((True, "greedy"), (False, "greedy"), (False, "sampled")):
        task = Game24Task(openings=style, tools=tools, results=results)
        openings = task.openings(task.root(QUESTION))
        assert openings[0] == first
        # The model stops before the result where the tool or a greedy ask writes it.
        stops = tools or results == "greedy"
        assert task.step_tokens == (10 if stops else 16)
        assert ("=" in task.step_stop) is stops
        assert task.mode == ("propose" if style == "none" else "sample")  # lists, as the ToT paper asks


# -- game24 with the calculator tool ---------------------------------------------------------------


def test_by_default_the_model_opens_with_an_operand_and_the_tool_computes(game24_tools):
    assert game24_tools.opening_style == "operand" and game24_tools.tools
    root = game24_tools.root(QUESTION)
    assert game24_tools.openings(root) == ["4", "9", "10", "13"]
    step = game24_tools.parse_step(QUESTION, root, "10 - 4 ", verify=True)
    assert step.thought == "10 - 4 = 6 (left: 6 9 13)" and step.move == "10 - 4"
    assert step.calls == ({"tool": "calculator", "input": "10 - 4", "output": "6"},)
    # Whatever the model adds after "=" is ignored: the tool's result stands.
    assert game24_tools.parse_step(QUESTION, root, "10 - 4 = 7", verify=True).state["left"] == ["6", "9", "13"]
    assert game24_tools.parse_step(QUESTION, root, "13 / 4", verify=False).state["left"] == ["13/4", "9", "10"]


@pytest.mark.parametrize("text", ["10 - 5", "4 * 4", "10 - 4 + 9", "I think 10 - 4", "", "10 ^ 4", "10 -"])
def test_the_tool_rejects_moves_that_are_not_one_operation_on_numbers_left(text, game24_tools):
    root = game24_tools.root(QUESTION)
    for verify in (True, False):
        assert game24_tools.parse_step(QUESTION, root, text, verify=verify) is None


def test_the_tool_never_divides_by_zero(game24_tools):
    state = state_of(["0", "4", "9", "10"])
    assert game24_tools.parse_step(QUESTION, state, "9 / 0", verify=False) is None
    assert "9 / 0" not in game24_tools.moves(state, verify=False)


def test_with_the_tool_pair_openings_are_whole_moves_and_every_move_is_listed():
    task = Game24Task(openings="pair")
    root = task.root(QUESTION)
    openings = task.openings(root)
    assert openings == task.moves(root, verify=False)  # the tool makes one child per move
    assert all(task.parse_step(QUESTION, root, o, verify=False).move == o for o in openings)
    assert Game24Task(openings="pair", tools=False).moves(root, verify=False) is None  # the model may say anything


def test_tools_are_a_search_setting_not_a_task_option():
    from deliberate import think
    from deliberate.errors import UsageError

    assert make_task("game24", tools=False).tools is False
    assert not hasattr(make_task("generic", tools=False), "tools")  # a task without tools ignores it
    with pytest.raises(UsageError, match="--no-tools"):
        think("4 9 10 13", task="game24", task_options={"tools": False}, model="/nonexistent.gguf")



def test_prompts_end_where_the_model_continues(game24):
    root = game24.root(QUESTION)
    step = game24.step_prompt(QUESTION, root).render()
    assert step.endswith("Input: 4 9 10 13\nPossible next steps:\n")
    value = game24.value_prompt(QUESTION, root).render()
    assert value.endswith("Numbers: 4 9 10 13\nJudgement:")
    vote = game24.vote_prompt(QUESTION, root, ["10 - 4 = 6 (left: 6 9 13)", "9 + 4 = 13 (left: 10 13 13)"]).render()
    assert "A: 10 - 4 = 6 (left: 6 9 13)\nB: 9 + 4 = 13" in vote and vote.endswith("The best candidate is")
    assert all(label.startswith(" ") for label in game24.labels)


def test_prompt_renders_for_a_chat_model():
    prompt = Prompt("Do it.", "EXAMPLES\n", "Query\n", "Reply:")
    seen = []

    def chat(messages):
        seen.extend(messages)
        return "<chat>"

    assert prompt.render() == "Do it.\n\nEXAMPLES\nQuery\nReply:"
    assert prompt.render(chat) == "<chat>Reply:"
    assert seen == [{"role": "user", "content": "Do it.\n\nEXAMPLES\nQuery"}]


def test_vote_labels_start_with_different_letters():
    assert vote_labels(3) == [" A", " B", " C"]
    assert len({label.strip()[0] for label in vote_labels(20)}) == 20
    assert set(VALUE_LABELS) == {" sure", " likely", " impossible"}


def test_brute_force_helper_agrees_with_known_puzzles():
    # The test helper itself, so the strategy tests rest on a true oracle.
    assert can_make_24([4, 9, 10, 13]) and can_make_24([3, 3, 8, 8]) and can_make_24([1, 5, 5, 5])
    assert not can_make_24([1, 1, 1, 1]) and not can_make_24([1, 1, 2, 3])


# -- generic and math --------------------------------------------------------------------------------


def test_generic_steps_and_answers():
    task = GenericTask()
    root = task.root("What is 6 times 7?")
    step = task.parse_step("q", root, "Step 1: Six sevens.", verify=True)
    assert step.thought == "Six sevens." and not task.is_terminal(step.state)
    done = task.parse_step("q", step.state, "Answer: 42.", verify=True)
    assert done.thought == "Answer: 42" and task.is_terminal(done.state)
    assert task.answer("q", done.state) == "42" and task.verify("q", done.state) is None
    assert task.parse_step("q", root, "Final answer = 42", verify=True).state["answer"] == "42"
    for text in ["", "   ", "Question: another one?", "Answer: .", "Step:"]:
        assert task.parse_step("q", root, text, verify=True) is None


def test_a_bare_answer_line_is_not_a_step():
    # A model often stops right after "Answer:". That is no answer, and not a reasoning
    # step either: as a step it would be replayed as "Answer:" in every later prompt.
    task = GenericTask()
    assert task.parse_step("q", task.root("q"), "Answer:", verify=True) is None


def test_generic_key_ignores_case_and_spacing():
    task = GenericTask()
    a = task.parse_step("q", task.root("q"), "Step: Six  SEVENS", verify=True).state
    b = task.parse_step("q", task.root("q"), "six sevens", verify=True).state
    assert task.key(a) == task.key(b)


def test_generic_stops_at_max_depth_and_rejects_an_empty_question():
    task = GenericTask(max_depth=2)
    state = task.root("q")
    for text in ["one", "two"]:
        assert not task.is_terminal(state)
        state = task.parse_step("q", state, text, verify=True).state
    assert task.is_terminal(state) and task.answer("q", state) is None
    with pytest.raises(QuestionError):
        task.root("   ")


def test_generic_prompts_show_the_steps_so_far():
    task = GenericTask(shots="Question: x?\nAnswer: y")
    state = task.parse_step("q", task.root("q"), "first", verify=True).state
    prompt = task.step_prompt("Why?", state).render()
    assert "Question: x?\nAnswer: y\n\n" in prompt and prompt.endswith("Question: Why?\nStep: first\n")
    value = task.value_prompt("Why?", state).render()
    assert "Steps:\nfirst\n</data-" in value and value.endswith("Judgement:")
    assert task.propose_prompt("Why?", state) is None and task.openings(state) == [""]
    assert len(task.parse_proposals("q", state, "a\nAnswer: b\n\n", verify=True)) == 2


def test_math_checks_every_equation_in_a_step():
    assert equations("It costs 3 * 4 = 12 dollars, then 12 + 2 = 14.") == [("3 * 4", "12"), ("12 + 2", "14")]
    assert arithmetic_ok("$12 + $2 = $14 and 1,000 * 2 = 2,000")
    assert not arithmetic_ok("3 * 4 = 13")
    assert arithmetic_ok("no equations here")
    task = MathTask()
    root = task.root("q")
    assert task.parse_step("q", root, "Step: 3 * 4 = 13", verify=True) is None
    assert task.parse_step("q", root, "Step: 3 * 4 = 13", verify=False) is not None
    assert task.parse_step("It costs $1,450. How much?", root, "Answer: $1,450.", verify=True).state["answer"] == "1450"


def test_math_reads_negative_numbers_but_not_a_minus_after_a_word():
    # GSM8K's own solutions, which the verifier once rejected: it read "8 + 1" and "21/3".
    assert arithmetic_ok("-14 + (-8) + 1 = <<-14+-8+1=-21>>-21 degrees Fahrenheit")
    assert arithmetic_ok("-21/3 = <<-21/3=-7>>-7 degrees") and arithmetic_ok("Increase 3 degrees = -6 + 3 = -3")
    assert equations("-36 + 13 + (-15) = -38")[0] == ("-36 + 13 + (-15)", "-38")
    # A minus after a word, or spaced from its number, is subtraction's, not a sign.
    assert arithmetic_ok("Elsa had 40 marbles - 3 - 5 = <<40-3-5=32>>32 marbles.")
    assert equations("3x-5=16") == [] and equations("w-20+10 = 7")[0][0] == "20+10"
    # A bare-arithmetic copy: the prose and the annotation must be one expression.
    good = "((-5 * -6 + -9 - 3) + (-7 - -2 - 6 * 6)) = <<((-5 * -6 + -9 - 3) + (-7 - -2 - 6 * 6))=-23>>-23"
    assert arithmetic_ok(good)
    assert not arithmetic_ok("(3 * -7 * -4 * 2) + (7 - -3 - -3 * 1) = <<(3-7*(-4*2)+(-7*3*1))=38>>38")


def test_a_bare_arithmetic_answer_must_be_computed_not_an_operand_read_back():
    from deliberate.tasks.math import answer_supported

    question = "What is 17 * 3?"
    assert not answer_supported(question, [], "Answer: 17")
    assert not answer_supported(question, [], "Answer: 17 * 3")  # its last number is 3, an operand
    assert answer_supported(question, ["17 * 3 = <<17 * 3=51>>51"], "Answer: 51")
    assert answer_supported(question, [], "Answer: 17 * 3 = 51")
    assert not answer_supported(question, ["(17 * 3) =", "17"], "Answer: 17")  # a result is on its "=" line
    task = MathTask()
    assert task.parse_step(question, task.root(question), "Step: (17 * 3) =", verify=True) is None  # no result
    assert task.parse_step(question, task.root(question), "Step: (17 * 3) =", verify=False) is not None
    # A word problem may answer with a number it states (GSM8K has such items).
    assert answer_supported("Ann has 5 apples and 3 pears. How many apples does she have?", [], "Answer: 5")


def test_math_reads_an_equation_through_an_annotation_with_no_result():
    # Without the tool the model may write "<<15+25>>", which hid the prose's claim.
    assert not arithmetic_ok("15 + 25 = <<15+25>>25 chickens.")
    assert arithmetic_ok("15 + 25 = <<15+25>>40 chickens.")
    # An annotation with a result is the computation, and is itself checked; the prose
    # expression in front of it claims the same result.
    assert not arithmetic_ok("15 + 25 = <<15+25=41>>41")
    assert arithmetic_ok("48 / 2 = <<48/2=24>>24 clips") and arithmetic_ok("<<48/2=24>> clips")
    assert equations("48 / 2 = <<48/2=24>>24") == [("48/2", "24"), ("48 / 2", "24")]


def test_the_prose_in_front_of_an_annotation_is_held_to_its_result():
    # With the tool the annotation's result is always right; what the model claims
    # shows in the prose it wrote before "<<": here that 12 * 4 is 16.
    task = MathTask()
    assert task.check_step("The boxes hold 12 * 4 = <<12*4=48>>48 eggs.", verify=True)
    assert not task.check_step("The boxes hold 12 * 4 = <<4*4=16>>16 eggs.", verify=True)
    assert not task.check_step("So 16 - 2 = <<16/2=8>>8 are left.", verify=True)
    assert task.check_step("Each gets 10 / 3 = <<10/3=3.333333>>3.33 cakes.", verify=True)  # rounded by the tool
    # GSM8K writes units inside an expression; the pattern then reads only its tail,
    # which is not the whole expression and is not held to the result.
    assert task.check_step("The tank holds 72 cubic ft * 3/4 = <<72*3/4=54>>54 cubic ft.", verify=True)
    assert task.check_step("Clayton scored 10 points + 14 + 6 = <<10+14+6=30>>30 points.", verify=True)
    assert task.check_step("There are 60 students x 2/3 = <<60*2/3=40>>40 students.", verify=True)
    assert task.check_step("The area is 3 ^ 2 = <<3^2=9>>9 square feet.", verify=True)


@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 300), st.integers(0, 300), st.sampled_from("+-*"))
def test_a_tool_completed_step_passes_exactly_when_its_prose_says_the_same(a, b, c, d, op):
    # The model writes "a op b = <<c op d=", the calculator the rest: the step stands
    # exactly when the prose's own expression has the calculator's result.
    assume(op != "-" or (a != b and c != d))  # taking a number from itself is rejected anyway
    result, ok = calculate(f"{c}{op}{d}")
    assert ok
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    step = f"That is {a} {op} {b} = <<{c}{op}{d}={result}>>{result} apples."
    assert MathTask().check_step(step, verify=True) == (value == int(result))


@given(st.integers(0, 500), st.integers(1, 500), st.sampled_from("+-*/"), st.integers(-1000, 250000))
def test_an_annotated_step_passes_exactly_when_its_result_is_right(a, b, op, claimed):
    from fractions import Fraction

    right = {"+": a + b, "-": a - b, "*": a * b, "/": Fraction(a, b)}[op]
    step = f"That is {a} {op} {b} = <<{a}{op}{b}={claimed}>>{claimed} apples."
    vacuous = op == "-" and a == b  # right arithmetic that says nothing: also rejected
    assert MathTask().check_step(step, verify=True) == (claimed == right and not vacuous)


@pytest.mark.parametrize("step", [
    "400 - 400 = <<400-400=0>>0 dollars.",  # as the tool completes it
    "Raymond has 400 - 400 = 0 <<400 - 400 = 0.",  # as a model without the tool writes it
    "The net profit is $10 - $10 = $0.",
])
def test_math_rejects_a_step_that_takes_a_number_from_itself(step):
    task = MathTask()
    assert arithmetic_ok(step)  # the arithmetic is right...
    assert not task.check_step(step, verify=True)  # ...but the step computes nothing
    assert task.check_step(step, verify=False)
    assert task.check_step("It takes 60 / 60 = <<60/60=1>>1 hour.", verify=True)  # x / x is a unit change


def test_math_checks_every_link_of_a_chain_of_equations():
    # "6 * 2 = 12" follows "3 * 2 = 6" in the same chain: both are claims.
    assert equations("3 * 2 = 6 * 2 = 12") == [("3 * 2", "6"), ("6 * 2", "12")]
    assert arithmetic_ok("The pad costs 3 * 2 = 6 * 2 = 12 dollars.")
    assert not arithmetic_ok("The earnings are 20 + 15 = 35 + 15 = 70.")  # 35 + 15 is 50
    assert not MathTask().check_step("20 + 15 = 35 + 15 = 70.", verify=True)


def test_math_answer_lines_are_checked_against_the_chain():
    task, question = MathTask(), "Mia buys 3 notebooks at $4 each and a pen for $2. How much does she spend?"
    steps = {"steps": ["The notebooks cost 3 * 4 = <<3*4=12>>12 dollars.", "With the pen, 12 + 2 = <<12+2=14>>14."], "answer": None}
    assert task.parse_step(question, steps, "Answer: $14", verify=True).state["answer"] == "14"
    assert task.parse_step(question, steps, "Answer: 3", verify=True) is not None  # a number the question gave
    # A number nothing computed is a guess; an answer line's own arithmetic is checked.
    assert task.parse_step(question, steps, "Answer: 30", verify=True) is None
    assert task.parse_step(question, steps, "Answer: 14 * 2 = 28", verify=True) is not None
    assert task.parse_step(question, steps, "Answer: 14 * 2 = 30", verify=True) is None
    assert task.parse_step(question, steps, "Answer: fourteen dollars", verify=True) is None
    # Without the verifier every answer line stands.
    assert task.parse_step(question, steps, "Answer: 30", verify=False).state["answer"] == "30"


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=5), st.integers(0, 10**6))
def test_an_answer_passes_exactly_when_the_chain_or_question_holds_its_number(results, answer):
    task = MathTask()
    steps = [f"That makes {n} + 0 = <<{n}+0={n}>>{n} apples." for n in results]
    step = task.parse_step("How many apples are there?", {"steps": steps, "answer": None}, f"Answer: {answer}", verify=True)
    assert (step is not None) == (answer in results)


@pytest.mark.parametrize(("text", "number"), [("1,450", "1450"), ("18.0", "18"), ("about 7 or 8", "8"), ("-3", "-3"), ("none", None),
                                              ("7.875 hours", "7.875"), ("$2.50", "2.5"), ("0.250", "0.25"),
                                              # a fraction is one number, not its denominator
                                              ("1/5 of them", "1/5"), ("33 3/4 cups", "135/4"), ("6 / 3", "2"), ("1/0", None)])
def test_numeric_answer(text, number):
    assert numeric_answer(text) == number


def test_a_fraction_answer_votes_for_its_value_not_its_denominator():
    task, question = MathTask(), "A snake of 10 feet has a head one-tenth of its length. How long is the head?"
    steps = {"steps": ["The head is 10 / 100 = <<10/100=0.1>>0.1 feet."], "answer": None}
    assert task.parse_step(question, steps, "Answer: 1/10", verify=True).state["answer"] == "1/10"
    # "2/5" used to be read as 5, a number the question gave; 2/5 is one nothing computed.
    assert task.parse_step(question, steps, "Answer: 2/5", verify=True) is None


def test_a_decimal_must_be_the_exact_value_rounded_to_its_places():
    task = MathTask()
    assert task.check_step("Each gets 10 / 3 = 3.33 cakes.", verify=True)
    assert task.check_step("Each gets 10 / 3 = <<10/3=3.333333>>3.33 cakes.", verify=True)
    assert not task.check_step("Each gets 10 / 3 = 3.34 cakes.", verify=True)
    assert not task.check_step("Each gets 10 / 3 = 3 cakes.", verify=True)  # a whole number must be exact
    assert not task.check_step("Each gets <<10/3=3.333333>>3 cakes.", verify=True)


def test_an_annotation_the_prose_pattern_cannot_read_is_still_checked():
    # "^" is not one of the prose pattern's operators, so without the tool a model's
    # "<<10-0.10^3=9>>" was never checked; the calculator reads it.
    task = MathTask()
    assert not task.check_step("The rest is 10 - 0.10^3 = <<10-0.10^3=9>>9 feet.", verify=True)
    assert task.check_step("The rest is <<10-0.10^3=9.999>>9.999 feet.", verify=True)
    assert task.check_step("The area is <<3^2=9>>9 square feet.", verify=True)


@given(st.integers(0, 10**4), st.integers(1, 10**4), st.sampled_from(["+", "-", "*", "/", "^"]))
def test_the_verifier_accepts_every_step_the_calculator_tool_completes(a, b, op):
    # The tool writes a rounded decimal for 10/3 ("3.333333"); the verifier must not
    # reject its own calculator's results, or every uneven division is a dead end.
    assume(not (op == "-" and a == b) and not (op == "^" and (b > 3 or a > 100)))
    result, ok = calculate(f"{a}{op}{b}")
    assert ok
    step = f"That is {a} {op} {b} = <<{a}{op}{b}={result}>>{result} apples."
    assert MathTask().check_step(step, verify=True)


def test_without_the_tool_results_are_greedy_by_default_and_sampled_on_request():
    greedy, sampled = Game24Task(openings="none", tools=False), Game24Task(openings="none", tools=False, results="sampled")
    root = greedy.root(QUESTION)
    # Greedy: the model samples the move, stops at "=", and a greedy ask writes the result.
    assert greedy.greedy_tail == " =" and "=" in greedy.step_stop
    assert "10 - 4" in greedy.moves(root, verify=False)  # one result per move: moves can be tracked
    # Sampled (the ToT paper's way): the whole line in one go, so a move may give any result.
    assert sampled.greedy_tail is None and "=" not in sampled.step_stop
    assert sampled.moves(root, verify=False) is None
    assert Game24Task().greedy_tail is None  # with the calculator there is nothing to decode
    assert Game24Task(openings="pair", tools=False).greedy_tail is None  # "a op b =" is the opening
    with pytest.raises(UsageError, match="results must be one of greedy, sampled, got 'hot'"):
        make_task("game24", tools=False, results="hot")


def test_a_chain_that_ends_on_another_number_gives_no_answer(game24):
    assert game24.answer(QUESTION, state_of(["25"], ["((10 + 4) + (13 - 2))"])) is None
    assert game24.answer(QUESTION, state_of(["24"], ["((10 - 4) * (13 - 9))"])) == "(10 - 4) * (13 - 9) = 24"
    assert game24.answer(QUESTION, state_of(["48/2"], ["((10 - 4) * (13 - 9))"])) is not None  # 48/2 is 24
