"""Continuous batching on the embedded GGUF: ``LlamaBackend.generate_rolling``.

Units join the decode loop between steps and leave it when they finish. The tests
drive the loop with a small scripted ``admit``: which units join at which step. As
everywhere on the real model, nothing asserts exact floats across batch shapes (see
``test_llama_backend``): only counts, bounds, the order things happen in, the ids
given back, and closeness of label log-probabilities.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from deliberate.backends.base import Generate, GenerateRequest, Score
from deliberate.backends.llama.decode import PREFILL_STEP
from deliberate.clock import Deadline
from deliberate.errors import BackendError
from deliberate.tasks import make_task

from helpers_real import open_model
from test_llama_backend import check_kv_bookkeeping

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def backend():
    backend = open_model(n_ctx=4096, n_seq_max=16)
    yield backend
    backend.close()


class Script:
    """``admit`` hands out ``plan[k]`` at its k-th call; ``deliver`` records results in
    order, with the admit count at which each came back."""

    def __init__(self, plan: dict[int, list[Any]]) -> None:
        self.plan = plan
        self.calls = 0
        self.held: list[int] = []
        self.results: dict[Any, Any] = {}
        self.when: dict[Any, int] = {}
        self.order: list[Any] = []

    def admit(self, held: int) -> list[Any]:
        self.held.append(held)
        units = self.plan.get(self.calls, [])
        self.calls += 1
        return units

    def deliver(self, key: Any, result: Any) -> None:
        assert key not in self.results, f"{key} delivered twice"
        self.results[key] = result
        self.when[key] = self.calls
        self.order.append(key)


COUNTING = "1, 2, 3, 4, 5, 6, 7,"  # a base model goes on counting: no end token soon


def later(seconds: float = 120.0) -> Deadline:
    return Deadline.after(seconds)


def request(prompt: str, *, n: int = 1, max_tokens: int = 8, temperature: float = 0.0) -> GenerateRequest:
    return GenerateRequest(prompt, n=n, max_tokens=max_tokens, temperature=temperature, seed=5)


def test_every_unit_is_delivered_once_with_its_samples(backend) -> None:
    script = Script({
        0: [Generate(request("Once upon a time", n=3, temperature=0.8), later(), "a", 0, 3)],
        2: [Generate(request("The capital of France is"), later(), "b", 0, 1),
            Generate(request("Once upon a time, in a land", n=2, temperature=0.8), later(), "c", 0, 2)],
        5: [Generate(request("1 + 1 =", max_tokens=3), later(), "d", 0, 1)],
    })  # fmt: skip
    backend.generate_rolling(script.admit, script.deliver)
    assert set(script.results) == {"a", "b", "c", "d"}
    assert [len(script.results[k]) for k in "abcd"] == [3, 1, 2, 1]
    for key, cap in zip("abcd", (8, 8, 8, 3)):
        for sample in script.results[key]:
            assert sample.finish_reason in ("stop", "length")
            assert 0 < sample.completion_tokens <= cap
            assert sample.prompt_tokens > 0
    assert max(script.held) <= 7 and script.held[-1] == 0  # one id per sample, all given back
    check_kv_bookkeeping(backend)


def test_a_short_unit_leaves_before_a_long_one_it_joined(backend) -> None:
    script = Script({
        0: [Generate(GenerateRequest(COUNTING, max_tokens=40), later(), "long", 0, 1)],
        3: [Generate(request("Roses are red,", max_tokens=2), later(), "short", 0, 1)],
    })  # fmt: skip
    backend.generate_rolling(script.admit, script.deliver)
    assert script.order == ["short", "long"]
    assert script.results["long"][0].completion_tokens == 40
    assert script.when["short"] < script.when["long"]
    check_kv_bookkeeping(backend)


def test_a_joining_prompt_shares_the_cached_prefix(backend) -> None:
    stem = "The quick brown fox jumps over the lazy dog. " * 8
    backend.generate([request(stem + "First,")], later())  # now cached
    script = Script({0: [Generate(request(stem + "Second,"), later(), "x", 0, 1)]})
    backend.generate_rolling(script.admit, script.deliver)
    [sample] = script.results["x"]
    assert sample.cached_tokens >= len(backend.model.tokenize(stem)) - 2
    check_kv_bookkeeping(backend)


def test_a_long_prompt_is_prefilled_over_several_steps_beside_a_decoding_branch(backend) -> None:
    long_prompt = " ".join(f"word{i}" for i in range(400))  # well over PREFILL_STEP tokens
    script = Script({
        0: [Generate(GenerateRequest(COUNTING, max_tokens=30), later(), "decoding", 0, 1)],
        2: [Generate(request(long_prompt, max_tokens=2), later(), "long prompt", 0, 1)],
    })  # fmt: skip
    backend.generate_rolling(script.admit, script.deliver)
    assert script.results["long prompt"][0].completion_tokens == 2
    assert script.results["decoding"][0].completion_tokens == 30
    check_kv_bookkeeping(backend)


def test_prompt_tokens_fill_a_step_only_as_far_as_the_deadline_allows(backend) -> None:
    # A step of 128 prompt tokens can take seconds on a busy CPU: near a deadline the
    # loop feeds only what its seconds-per-token estimate says fits (4/5 of the time
    # left). Pretend the CPU is slow, so a 3 s deadline leaves room for about 48.
    long_prompt = " ".join(f"item{i}" for i in range(300))
    sizes: list[int] = []
    decode = backend._decode

    def recording(n: int) -> None:
        sizes.append(n)
        decode(n)

    def run(deadline: Deadline, key: str) -> None:
        sizes.clear()
        backend._token_seconds = 0.05  # s/token: the estimate a slow machine would have
        # The key comes first: the two prompts share no prefix, so the second is not
        # served from the prefix cache when the first finished its prefill in time.
        script = Script({0: [Generate(request(f"{key} " + long_prompt, max_tokens=1), deadline, key, 0, 1)]})
        backend._decode = recording
        try:
            backend.generate_rolling(script.admit, script.deliver)
        finally:
            backend._decode = decode
        assert script.results[key][0].finish_reason in ("length", "deadline", "stop")

    run(Deadline.after(3.0), "near")
    assert 0 < sizes[0] <= int(0.8 * 3.0 / 0.05)  # not the full PREFILL_STEP
    run(Deadline.after(None), "far")
    assert sizes[0] == PREFILL_STEP  # without a deadline nothing is held back
    check_kv_bookkeeping(backend)


def test_scores_in_the_loop_are_close_to_score_labels(backend) -> None:
    task = make_task("game24")
    labels = tuple(task.labels)
    prompts = [task.value_prompt("", {"left": left.split()}).render() for left in ("4 6", "1 2 3", "10 13")]
    direct = backend.score_labels(prompts, labels, later())
    script = Script({
        0: [Generate(request("Once upon a time", max_tokens=12), later(), "gen", 0, 1)],
        1: [Score(p, labels, later(), i) for i, p in enumerate(prompts)],
    })  # fmt: skip
    backend.generate_rolling(script.admit, script.deliver)
    for i, expected in enumerate(direct):
        scored = script.results[i]
        assert list(scored) == list(labels)
        assert all(math.isfinite(v) and v <= 0 for v in scored.values())
        assert max(abs(scored[label] - expected[label]) for label in labels) <= 0.3  # numerics only
    check_kv_bookkeeping(backend)


def test_a_bad_unit_is_delivered_its_error_and_the_rest_go_on(backend) -> None:
    script = Script({0: [Score("Judge:", (" a", " a"), later(), "labels"),
                         Generate(request("1 + 1 =", max_tokens=2), later(), "fine", 0, 1)]})  # fmt: skip
    backend.generate_rolling(script.admit, script.deliver)
    assert isinstance(script.results["labels"], BackendError)  # labels must start with different tokens
    assert script.results["fine"][0].completion_tokens == 2
    check_kv_bookkeeping(backend)


def test_a_unit_whose_deadline_passes_ends_and_frees_its_ids(backend) -> None:
    soon = Deadline.after(0.3)
    script = Script({
        0: [Generate(GenerateRequest(COUNTING, n=2, max_tokens=4000), soon, "late", 0, 2),
            Score("Is this late?", (" yes", " no"), Deadline.after(0.0), "expired")],
    })  # fmt: skip
    started = time.monotonic()
    backend.generate_rolling(script.admit, script.deliver)
    assert time.monotonic() - started < 3
    assert [s.finish_reason for s in script.results["late"]] == ["deadline", "deadline"]
    assert script.results["expired"] == {}
    check_kv_bookkeeping(backend)


def test_an_interrupted_loop_gives_back_every_id(backend) -> None:
    class Stop(Exception):
        pass

    script = Script({0: [Generate(GenerateRequest(COUNTING, n=4, max_tokens=50), later(), "a", 0, 4)]})
    admit = script.admit

    def interrupting(held: int) -> list[Any]:
        if script.calls == 5:
            raise Stop
        return admit(held)

    with pytest.raises(Stop):
        backend.generate_rolling(interrupting, script.deliver)
    check_kv_bookkeeping(backend)
