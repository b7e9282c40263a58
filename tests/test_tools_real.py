"""Tool calls inside the llama.cpp decode loop, on the embedded GGUF.

What holds on every build: each call's result is the calculator's (whatever the
model would have written), the text holds the call as GSM8K writes it, and continuing
after a call costs only the result's tokens (and the close marker) of prefill, never
the prompt again. Which calls the model writes depends on llama.cpp's floats, so no
test names them; the prompt ends right before an annotation in the exemplars' style,
where a few samples write at least one call whatever the numerics.
"""

from __future__ import annotations

import statistics

import pytest

from deliberate.backends.base import GenerateRequest
from deliberate.backends.tool_calls import continue_after_tools
from deliberate.backends.shared import SharedBackend
from deliberate.clock import Deadline
from deliberate.tasks.math import MathTask, claim_holds, equations
from deliberate.tools import CALCULATOR, calculate

from helpers_real import open_model, run_cli

pytestmark = pytest.mark.model

QUESTION = "A baker makes 6 trays of 7 rolls and sells 30 of them. How many rolls are left?"


@pytest.fixture(scope="module")
def backend():
    backend = open_model(n_ctx=4096, n_seq_max=16)
    yield backend
    backend.close()


def _request(n: int = 8, *, score_tools: bool = False) -> GenerateRequest:
    task = MathTask()
    prompt = task.step_prompt(QUESTION, task.root(QUESTION)).render() + "Step: The baker makes 6 * 7 ="
    return GenerateRequest(prompt=prompt, n=n, max_tokens=48, stop=("\n",), temperature=0.7, seed=5, tools=CALCULATOR,
                           score_tools=score_tools)


def _check_calls(samples) -> list:
    calls = [call for sample in samples for call in sample.calls]
    for sample in samples:
        for call in sample.calls:
            assert call.output == calculate(call.input)[0]
            assert f"<<{call.input}={call.output}>>" in sample.text
    return calls


def test_calls_run_in_the_decode_loop_and_cost_only_the_results_tokens(backend):
    samples = backend.generate_with_tools([_request()], Deadline.after(120))[0]
    calls = _check_calls(samples)
    assert calls, [s.text for s in samples]
    assert all(c.logprob is None for c in calls)  # not asked for: no logits row spent on it
    result_tokens = [len(backend.model.tokenize(call.output, bos=False)) for call in calls]
    # The target: the median prefill per call is at most the result's tokens + 2.
    assert statistics.median(c.prefill for c in calls) <= statistics.median(result_tokens) + 2
    for call, tokens in zip(calls, result_tokens):
        # The result and ">>", plus at most the piece of a token that ran past "=".
        assert tokens + 1 <= call.prefill <= tokens + 4
    assert backend.live_sequences() == 0


def test_the_decode_loop_scores_the_tools_tokens_as_the_model_would_have_written_them(backend):
    import math

    samples = backend.generate_with_tools([_request(score_tools=True)], Deadline.after(120))[0]
    calls = _check_calls(samples)
    scored = [c for c in calls if c.logprob is not None]
    assert scored, [s.text for s in samples]
    # A log-probability of the result's tokens and ">>": finite and at most 0.
    assert all(math.isfinite(c.logprob) and c.logprob <= 0 for c in scored)
    # (A call goes unscored when the sampled token ran past "=": the model had begun a
    # result of its own, and the logits before it were spent.)
    assert all(c.record()["logprob"] == c.logprob for c in calls)


def test_the_base_path_gives_calculator_results_on_the_same_model(backend):
    samples = continue_after_tools(backend, [_request(4, score_tools=True)], Deadline.after(120))[0]
    calls = _check_calls(samples)
    assert all(c.logprob is None for c in calls)  # a continuation request cannot tell
    assert backend.live_sequences() == 0


def test_a_shared_backend_runs_calls_in_its_inner_decode_loop():
    shared = SharedBackend(open_model(n_ctx=4096, n_seq_max=16))  # closes its inner backend
    try:
        samples = shared.generate_with_tools([_request(4)], Deadline.after(120))[0]
        calls = _check_calls(samples)
        assert calls
        assert all(c.prefill <= len(shared.inner.model.tokenize(c.output, bos=False)) + 4 for c in calls)
    finally:
        shared.close()


def test_solve_gives_bare_arithmetic_to_the_calculator_and_answers_only_what_it_computed(tmp_path):
    """The real CLI with ``--task auto``: the question goes to ``math``, and whatever the
    model copies, an answer (if any) is a result the calculator wrote or a number the
    question states. Which expression the model copies depends on llama.cpp's floats."""
    import json
    import re

    question = "((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) ="
    trace = tmp_path / "t.json"
    run = run_cli("solve", question, "--strategy", "cot", "--think", "20s", "--json", "--trace", str(trace), timeout=120)
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    data = json.loads(trace.read_text())
    assert data["meta"]["task"] == "math"
    calls = [e for e in data["events"] if e["type"] == "tool"]
    assert all(e["tool"] == "calculator" and e["output"] == calculate(e["input"])[0] for e in calls)
    if result["answer"] is not None:  # the calculator's results, right prose equations, the question's numbers
        thoughts = [node.get("thought") or "" for node in data["graph"]["nodes"]]
        held = {rhs for t in thoughts for lhs, rhs in equations(t) if claim_holds(lhs, rhs)}
        allowed = {e["output"] for e in calls} | held | set(re.findall(r"-?\d+", question))
        assert result["answer"] in allowed, (result["answer"], thoughts)
