"""Tool calls inside generation: the call syntax, the calculator as a tool, the base
backend's continuation requests, and the math task with GSM8K's ``<<48/2=24>>``.

The scripted "model" here writes GSM8K-style lines with its own (often wrong) results
inside the annotations. With the tool on, those results never reach the text: the
calculator's do.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import think_guarded
from deliberate.backends.base import GenerateRequest, Sample
from deliberate.backends.tool_calls import continue_after_tools, generate_with_tools
from deliberate.backends.scripted import ScriptedBackend
from deliberate.calculator import evaluate
from deliberate.clock import Deadline
from deliberate.tasks import make_task
from deliberate.tasks.detection import is_arithmetic
from deliberate.tasks.math import ARITHMETIC_EXAMPLES, EXAMPLES, annotations_ok, arithmetic_ok
from deliberate.tools import CALCULATOR, MAX_INPUT_TOKENS, ToolSyntax, calculate, decimal

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether in April and May?"
)


class LineModel:
    """A model that writes one scripted line per prompt, calls included.

    It continues the line it is in (the text after the prompt's last newline). After
    the k-th close marker that the tool wrote, it goes on with what its script has
    after its own k-th close marker, so a result it wrote itself never comes back.
    """

    def __init__(self, *lines: str, question: str = "Natalia", answer: str = "72") -> None:
        self.lines = list(lines)
        self.question, self.answer = question, answer  # the start of our question; the last line's answer

    def __call__(self, prompt: str, request: GenerateRequest, seed: int) -> str:
        current = prompt[prompt.rfind("\n") + 1 :]
        finished = prompt[: prompt.rfind("\n") + 1].split(f"Question: {self.question}")[-1]
        done_steps = len(re.findall(r"^(?:Step:|Answer:)", finished, re.M))
        if done_steps >= len(self.lines):
            return f"Answer: {self.answer}\n"
        script = self.lines[done_steps]
        closes = current.count(">>")
        written = current.split(">>", closes)[-1]  # the line since the tool last wrote
        rest = script.split(">>", closes)[-1] if closes else script
        return rest[len(written) :] if rest.startswith(written) else rest


# -- the syntax and the calculator as a tool ----------------------------------------------


def test_open_and_finished_calls_are_read_from_the_text():
    assert CALCULATOR.open_call("sold 48 / 2 = <<48/2") == len("sold 48 / 2 = <<")
    assert CALCULATOR.open_call("<<48/2=24>>24 clips") is None
    assert CALCULATOR.open_call("no call at all = 3") is None
    assert CALCULATOR.finished_call("sold <<48/2") is None  # no end marker yet
    assert CALCULATOR.finished_call("sold 48 / 2 = <<48/2=") == ("48/2", len("sold 48 / 2 = <<48/2="))
    # The token that met the end marker ran on: the index says where the tool writes.
    assert CALCULATOR.finished_call("x <<6*7=4") == ("6*7", len("x <<6*7="))
    assert CALCULATOR.finished_call("<<1+1=2>> then <<3*3=") == ("3*3", len("<<1+1=2>> then <<3*3="))


@pytest.mark.parametrize(
    ("expression", "output"),
    [("48/2", "24"), ("3 * 4", "12"), ("1/3", "0.333333"), ("40*25/100", "10"), ("7/2", "3.5"),
     ("1,200 + 300", "1500"), ("$12 + 2", "14"), ("2**10", "1024"), ("-5 + 2", "-3")],
)
def test_the_calculator_tool_writes_decimal_results(expression, output):
    assert calculate(expression) == (output, True)


@pytest.mark.parametrize(
    "expression", ["48/0", "__import__('os').system('true')", "open('x')", "1 if 1 else 2", "", "x + 1", "9**99999"]
)
def test_input_the_calculator_refuses_gets_an_error_string_and_is_never_run(expression):
    output, ok = calculate(expression)
    assert not ok and output.startswith("error: ")
    assert ">>" not in output and "\n" not in output  # the text goes on after it


def test_decimal_is_exact_for_integers_and_rounds_the_rest():
    assert decimal(evaluate("10/4")) == "2.5"
    assert decimal(evaluate("-1/8")) == "-0.125"
    assert decimal(evaluate("2/3")) == "0.666667"
    assert decimal(evaluate("1/10000000")) == "0"


# -- the base backend: continuation requests ------------------------------------------------


def _request(prompt: str = "Q\n", **kw) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, n=kw.pop("n", 1), max_tokens=kw.pop("max_tokens", 64),
                           stop=("\n",), tools=kw.pop("tools", CALCULATOR), **kw)


def test_continuation_requests_put_the_tools_result_in_place_of_the_models(scripted):
    backend = scripted(LineModel("She sold 48 / 2 = <<48/2=99>>24 clips in May.\n"))
    [[sample]] = continue_after_tools(backend, [_request(f"Question: {QUESTION}\n")], Deadline.after(10, backend.clock))
    assert sample.text == "She sold 48 / 2 = <<48/2=24>>24 clips in May."
    assert sample.finish_reason == "stop"
    [call] = sample.calls
    assert (call.tool, call.input, call.output, call.ok) == ("calculator", "48/2", "24", True)
    assert call.prefill > 0  # the scripted backend has no prefix cache: each continuation re-prefills
    prompts = [p for kind, p in backend.history if kind == "generate"]
    assert len(prompts) == 3  # the line, the call's input, the rest of the line
    assert prompts[1].endswith("= <<") and prompts[2].endswith("<<48/2=24>>")


def test_the_rounds_ask_for_the_input_up_to_the_end_marker_only(scripted):
    seen: list[GenerateRequest] = []
    model = LineModel("Half is <<48/2=99>>24.\n")

    def respond(prompt, request, seed):
        seen.append(request)
        return model(prompt, request, seed)

    backend = scripted(respond)
    continue_after_tools(backend, [_request(f"Question: {QUESTION}\n")], Deadline.after(10, backend.clock))
    assert [r.stop for r in seen] == [("\n",), ("=",), ("\n",)]
    assert seen[1].max_tokens <= MAX_INPUT_TOKENS
    assert all(r.tools is None for r in seen)  # plain generate requests


def test_a_refused_call_gets_an_error_and_the_text_goes_on(scripted):
    backend = scripted(LineModel("Each gets 48 / 0 = <<48/0=0>>0 clips.\n"))
    [[sample]] = continue_after_tools(backend, [_request(f"Question: {QUESTION}\n")], Deadline.after(10, backend.clock))
    assert sample.text == "Each gets 48 / 0 = <<48/0=error: division by zero>>0 clips."
    assert not sample.calls[0].ok


def test_a_stop_inside_a_call_ends_the_sample_without_a_call(scripted):
    backend = scripted(LineModel("It is <<48 times\n"))
    [[sample]] = continue_after_tools(backend, [_request(f"Question: {QUESTION}\n")], Deadline.after(10, backend.clock))
    assert sample.text == "It is <<48 times" and sample.calls == () and sample.finish_reason == "stop"


def test_calls_past_the_limit_are_left_to_the_model(scripted):
    once = ToolSyntax("calculator", "<<", "=", ">>", calculate, max_calls=1)
    backend = scripted(LineModel("<<1+1=5>>2 and <<2+2=5>>4\n"))
    [[sample]] = continue_after_tools(
        backend, [_request(f"Question: {QUESTION}\n", tools=once)], Deadline.after(10, backend.clock)
    )
    assert sample.text == "<<1+1=2>>2 and <<2+2=5>>4"  # the second result is the model's own
    assert len(sample.calls) == 1


def test_every_sample_of_a_request_gets_its_own_calls(scripted):
    backend = scripted(LineModel("A <<2*3=1>>6.\n"))
    [samples] = continue_after_tools(backend, [_request(f"Question: {QUESTION}\n", n=3)], Deadline.after(10, backend.clock))
    assert [s.text for s in samples] == ["A <<2*3=6>>6."] * 3
    assert all(len(s.calls) == 1 for s in samples)


def test_requests_without_tools_are_plain_generate_calls(scripted):
    backend = scripted(LineModel("A <<2*3=1>>6.\n"))
    [[sample]] = generate_with_tools(backend, [_request(f"Question: {QUESTION}\n", tools=None)], Deadline.after(10, backend.clock))
    assert sample.text == "A <<2*3=1>>6." and sample.calls == ()
    assert len(backend.history) == 1


def test_a_backend_with_its_own_method_is_asked_through_it(scripted):
    class Own(ScriptedBackend):
        asked = 0

        def generate_with_tools(self, requests, deadline):
            self.asked += 1
            return [[Sample("own", 1, 1, "stop")] for _ in requests]

    backend = Own(clock=scripted(None).clock)
    assert generate_with_tools(backend, [_request()], Deadline.after(10, backend.clock)) == [[Sample("own", 1, 1, "stop")]]
    assert backend.asked == 1


def test_the_deadline_ends_a_sample_between_rounds(scripted):
    backend = scripted(LineModel("She sold 48 / 2 = <<48/2=99>>24 clips in May, a lot more words here.\n"))
    backend.seconds_per_token = 1.0
    [[sample]] = continue_after_tools(backend, [_request(f"Question: {QUESTION}\n")], Deadline.after(9, backend.clock))
    assert sample.finish_reason == "deadline"
    assert backend.clock.now() <= 9 + 1e-9


segments = st.lists(
    st.tuples(
        st.text(alphabet="abc ,.", max_size=8),  # prose
        st.tuples(st.integers(0, 99), st.sampled_from("+-*"), st.integers(0, 99)),  # a call
        st.integers(0, 999),  # the model's own (ignored) result
    ),
    max_size=4,
)


@given(segments, st.text(alphabet="xyz .", max_size=8))
@settings(max_examples=60, deadline=None)
def test_the_text_is_the_models_with_every_result_the_tools(parts, tail):
    """For any line of prose and calls, the sample is the model's text with each call's
    result replaced by the calculator's, and one call recorded per annotation."""
    from conftest import WatchedClock

    line = "".join(f"{prose}<<{a}{op}{b}={own}>>" for prose, (a, op, b), own in parts) + tail
    backend = ScriptedBackend(LineModel(line + "\n"), clock=WatchedClock())
    [[sample]] = continue_after_tools(backend, [_request(f"Question: {QUESTION}\n", max_tokens=400)], Deadline.after(100, backend.clock))
    expected = "".join(f"{prose}<<{a}{op}{b}={calculate(f'{a}{op}{b}')[0]}>>" for prose, (a, op, b), _ in parts) + tail
    assert sample.text == expected
    assert [c.input for c in sample.calls] == [f"{a}{op}{b}" for _, (a, op, b), _ in parts]


# -- the math task: GSM8K annotations ---------------------------------------------------------


def test_our_exemplars_are_in_gsm8ks_style_and_every_annotation_is_right():
    lines = [line for line in EXAMPLES.splitlines() if line.startswith("Step:")]
    assert lines and all("<<" in line and ">>" in line for line in lines)
    for line in lines:
        assert arithmetic_ok(line) and annotations_ok(line)
        for expression, result in re.findall(r"<<([^=]*)=([^>]*)>>", line):
            assert calculate(expression) == (result, True)


def test_our_arithmetic_exemplars_copy_the_expression_as_written_into_one_right_annotation():
    blocks = [b for b in ARITHMETIC_EXAMPLES.split("\n\n") if b.strip()]
    assert len(blocks) >= 3
    for block in blocks:
        question, step, answer = block.splitlines()
        question = question.removeprefix("Question: ")
        assert is_arithmetic(question)
        [(expression, result)] = re.findall(r"<<([^=]*)=([^>]*)>>", step)
        assert expression == re.sub(r"^What is |\s*[=?]\s*$", "", question), block  # copied as written
        assert step.startswith(f"Step: {expression} = <<")  # and in the prose, so the two copies are compared
        assert calculate(expression) == (result, True) and arithmetic_ok(step) and annotations_ok(step)
        assert answer == f"Answer: {result}"


def test_bare_arithmetic_is_prompted_with_the_arithmetic_exemplars():
    task, own = make_task("math"), make_task("math", shots="Question: 1 + 1 =\nAnswer: 2\n\n")
    root = task.root(QUESTION)
    assert task.step_prompt(QUESTION, root).examples == EXAMPLES
    for question in ("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "What is 17 * 3?"):
        assert task.step_prompt(question, root).examples == ARITHMETIC_EXAMPLES
        assert own.step_prompt(question, root).examples.startswith("Question: 1 + 1 =")  # the user's serve all
    assert own.step_prompt(QUESTION, root).examples.startswith("Question: 1 + 1 =")


def test_the_calculator_computes_a_copied_expression_that_the_model_would_get_wrong(scripted):
    question = "((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) ="
    # The model copies the expression and would compute 9 (as the embedded model did on
    # this BBH item); the calculator writes 24 in its place, and the model goes on after it.
    model = LineModel("Step: (-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7) = <<(-1+2+9*5)-(-2+-4+-4*-7)=9>>24\n",
                      question="((-1", answer="24")
    result = think_guarded(question, scripted(model), task="auto", strategy="cot", think=10)
    assert result.answer == "24" and result.trace["meta"]["task"] == "math"
    calls = [c for n in result.graph for c in result.graph[n].get("calls", [])]
    assert [(c["input"], c["output"]) for c in calls] == [("(-1+2+9*5)-(-2+-4+-4*-7)", "24")]
    without = think_guarded(question, scripted(model), task="math", strategy="cot", think=10, tools=False)
    assert without.answer != "24"  # the model's own 9 is rejected, and 24 is a guess it never computed


def test_the_verifier_rejects_a_number_that_is_not_the_annotations_result():
    assert annotations_ok("48 / 2 = <<48/2=24>>24 clips")
    assert not annotations_ok("48 / 2 = <<48/2=24>>25 clips")
    assert not annotations_ok("<<48/0=error: division by zero>>0")
    assert annotations_ok("<<48/2=24>> clips")  # no number after it: nothing to compare


class Recording(ScriptedBackend):
    """Records the requests the search sends, before any continuation round."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.sent: list[GenerateRequest] = []

    def generate_with_tools(self, requests, deadline):
        self.sent.extend(requests)
        return continue_after_tools(self, requests, deadline)

    def generate(self, requests, deadline):
        if not any(r.tools for r in requests) and self.sent == []:
            self.sent.extend(requests)
        return super().generate(requests, deadline)


def test_math_requests_carry_the_calculator_and_no_tools_turns_it_off(fake_clock):
    for tools, expected in ((True, CALCULATOR), (False, None)):
        backend = Recording(lambda prompt, request, seed: "Answer: 72\n", clock=fake_clock)
        think_guarded(QUESTION, backend, task="math", strategy="cot", think=10, tools=tools)
        assert backend.sent and backend.sent[0].tools == expected


def test_a_math_search_records_each_call_in_its_node_and_trace(scripted):
    model = LineModel("Step: In May she sold 48 / 2 = <<48/2=23>>24 clips.\n",
                      "Step: Altogether 48 + 24 = <<48+24=70>>72 clips.\n")
    result = think_guarded(QUESTION, scripted(model), task="math", strategy="cot", think=10)
    assert result.answer == "72"
    steps = [result.graph[n]["thought"] for n in result.graph if n != 0]
    assert "In May she sold 48 / 2 = <<48/2=24>>24 clips." in steps
    assert "Altogether 48 + 24 = <<48+24=72>>72 clips." in steps
    calls = [c for n in result.graph for c in result.graph[n].get("calls", [])]
    assert [(c["input"], c["output"]) for c in calls] == [("48/2", "24"), ("48+24", "72")]
    tool_events = [e for e in result.trace["events"] if e["type"] == "tool"]
    assert [(e["input"], e["output"]) for e in tool_events] == [("48/2", "24"), ("48+24", "72")]
    assert all(e["prefill"] > 0 and e["tool"] == "calculator" for e in tool_events)
    assert result.stats.tool_calls == 2 and result.trace["meta"]["stats"]["tool_calls"] == 2


def test_without_the_tool_the_models_wrong_annotation_is_caught_by_the_verifier(scripted):
    model = LineModel("Step: In May she sold 48 / 2 = <<48/2=23>>24 clips.\n")
    result = think_guarded(QUESTION, scripted(model), task="math", strategy="cot", think=10, tools=False)
    steps = [result.graph[n]["thought"] for n in result.graph if n != 0]
    assert not any("<<48/2=23>>" in s for s in steps)  # rejected: 48/2 is not 23
    assert not [e for e in result.trace["events"] if e["type"] == "tool"]


def test_make_task_passes_tools_to_the_math_task():
    assert make_task("math").tools is True
    assert make_task("math", tools=False).tools is False
