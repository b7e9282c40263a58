"""``SharedBackend`` over a backend with continuous batching (``generate_rolling``).

The inner backend here (``StepBackend``) is a small real one with a decode loop of
its own: every step it asks for new units, advances each live sample by one token,
and delivers a unit once all its samples are done. A prompt's first word sets how
many steps its samples take, so the tests can make one request outlast another.
It records what every step held, for the tests to read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from deliberate.backends.base import BackendStats, GenerateRequest, Sample, Score
from deliberate.backends.shared import SharedBackend
from deliberate.clock import Deadline
from deliberate.errors import BackendError

from test_serve_shared import in_threads


@dataclass(eq=False)
class _Live:
    unit: Any
    left: int  # steps to go


class StepBackend:
    """Continuous batching in miniature. A prompt "<k> ..." takes k steps (2 if the
    first word is not a number); a sample's text is the prompt in upper case and its
    sample index. Scoring takes one step and scores each label -len(prompt). An empty
    prompt is an error for its unit alone. ``steps`` holds, per step, the keys live in
    it; ``ids`` the ids held at each admit; ``fail_at`` makes that step raise."""

    def __init__(self, n_seq_max: int = 64, step_seconds: float = 0.002) -> None:
        self.n_seq_max = n_seq_max
        self.step_seconds = step_seconds
        self.stats = BackendStats()
        self.steps: list[list[Any]] = []
        self.ids: list[int] = []
        self.admitted: list[Any] = []
        self.fail_at: int | None = None

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline, *, deadlines: Sequence[Deadline] | None = None) -> list[list[Sample]]:
        raise AssertionError("a rolling backend is served through generate_rolling")

    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False,
                     deadlines: Sequence[Deadline] | None = None) -> list[dict[str, float]]:  # fmt: skip
        raise AssertionError("a rolling backend scores inside generate_rolling")

    def generate_rolling(self, admit: Any, deliver: Any) -> None:
        live: list[_Live] = []
        while True:
            held = sum(item.unit.count for item in live)
            self.ids.append(held)
            units = list(admit(held))
            self.admitted.extend(units)
            for unit in units:
                prompt = unit.prompt if isinstance(unit, Score) else unit.request.prompt
                if not prompt:
                    deliver(unit.key, BackendError("empty prompt"))
                    continue
                first = prompt.split()[0]
                live.append(_Live(unit, 1 if isinstance(unit, Score) else int(first) if first.isdigit() else 2))
            if not live and not units:
                return
            if self.fail_at is not None and len(self.steps) == self.fail_at:
                raise BackendError("the step failed")
            self.steps.append([item.unit.key for item in live])
            time.sleep(self.step_seconds)
            for item in live:
                item.left -= 1
                if item.left <= 0 or item.unit.deadline.expired():
                    deliver(item.unit.key, self._result(item))
            live = [item for item in live if item.left > 0 and not item.unit.deadline.expired()]

    def _result(self, item: _Live) -> Any:
        unit = item.unit
        if isinstance(unit, Score):
            return {} if item.left > 0 else {label: -float(len(unit.prompt)) for label in unit.labels}
        if item.left > 0:
            return [Sample("", 1, 0, "deadline") for _ in range(unit.count)]
        text = unit.request.prompt.upper()
        return [Sample(f"{text} #{unit.first + j}", 1, 1, "stop") for j in range(unit.count)]

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return "".join(m["content"] for m in messages)

    def describe(self) -> dict[str, Any]:
        return {"backend": "step"}

    def close(self) -> None:
        pass


@pytest.fixture
def pair() -> tuple[StepBackend, SharedBackend]:
    inner = StepBackend()
    shared = SharedBackend(inner)
    yield inner, shared
    shared.close()


def ask(shared: SharedBackend, *prompts: str, n: int = 1, seconds: float = 10.0) -> list[list[Sample]]:
    return shared.generate([GenerateRequest(p, n=n) for p in prompts], Deadline.after(seconds))


def test_a_rolling_backend_is_served_by_its_own_loop(pair) -> None:
    inner, shared = pair
    assert shared.rolling
    [[sample]] = ask(shared, "3 steps")
    assert sample.text == "3 STEPS #0" and sample.finish_reason == "stop"
    assert len(inner.steps) == 3


def test_a_short_call_returns_while_a_long_one_still_decodes(pair) -> None:
    inner, shared = pair
    inner.step_seconds = 0.01
    finished: dict[str, float] = {}

    def long() -> None:
        ask(shared, "60 long")
        finished["long"] = time.monotonic()

    thread = threading.Thread(target=long)
    thread.start()
    while not inner.steps:
        time.sleep(0.001)
    [[short]] = ask(shared, "2 short")
    finished["short"] = time.monotonic()
    thread.join(10)
    assert short.text == "2 SHORT #0"
    assert finished["short"] < finished["long"]  # it did not wait for the long one's end
    together = [keys for keys in inner.steps if len(keys) == 2]
    assert len(together) == 2  # its two steps decoded beside the long request


def test_every_caller_gets_its_own_samples_in_order(pair) -> None:
    inner, shared = pair
    results = in_threads(4, lambda i: ask(shared, f"{1 + i} search{i} a", f"{3 - i % 3} search{i} b", n=1 + i % 3))
    for i, samples in enumerate(results):
        assert [[s.text for s in group] for group in samples] == [
            [f"{1 + i} SEARCH{i} A #{j}" for j in range(1 + i % 3)],
            [f"{3 - i % 3} SEARCH{i} B #{j}" for j in range(1 + i % 3)],
        ]
    assert max(len(keys) for keys in inner.steps) > 2  # calls of different searches shared steps


def test_a_request_with_more_samples_than_ids_joins_in_parts() -> None:
    inner = StepBackend(n_seq_max=4)
    shared = SharedBackend(inner, capacity=3)
    try:
        [samples] = ask(shared, "2 wide", n=8)
    finally:
        shared.close()
    assert [s.text for s in samples] == [f"2 WIDE #{j}" for j in range(8)]  # each sample's own index
    assert [(u.first, u.count) for u in inner.admitted] == [(0, 3), (3, 3), (6, 2)]
    assert max(inner.ids) <= 3  # never more ids than the capacity


def test_ids_held_never_pass_the_capacity() -> None:
    inner = StepBackend()
    shared = SharedBackend(inner, capacity=5)
    try:
        results = in_threads(4, lambda i: ask(shared, f"{2 + i} s{i}", f"3 t{i}", n=2))
    finally:
        shared.close()
    assert all(not isinstance(r, Exception) for r in results)
    assert max(inner.ids) <= 5 and max(inner.ids) >= 4


def test_scoring_joins_the_loop_and_a_repeated_prompt_is_scored_once(pair) -> None:
    inner, shared = pair
    scores = shared.score_labels(["ab", "abc", "ab", "ab"], [" yes", " no"], Deadline.after(10))
    assert scores == [{" yes": -2.0, " no": -2.0}, {" yes": -3.0, " no": -3.0}, {" yes": -2.0, " no": -2.0}, {" yes": -2.0, " no": -2.0}]
    assert scores[0] is not scores[2]  # copies: a caller may change one
    assert sorted(u.prompt for u in inner.admitted) == ["ab", "abc"]


def test_scoring_and_generation_of_different_searches_share_steps(pair) -> None:
    inner, shared = pair
    inner.step_seconds = 0.01
    thread = threading.Thread(target=ask, args=(shared, "40 long"))
    thread.start()
    while not inner.steps:
        time.sleep(0.001)
    [scored] = shared.score_labels(["judge me"], [" a"], Deadline.after(10))
    thread.join(10)
    assert scored == {" a": -8.0}
    assert any(len(keys) == 2 for keys in inner.steps)


def test_a_bad_unit_fails_only_its_own_call(pair) -> None:
    inner, shared = pair
    results = in_threads(2, lambda i: ask(shared, "" if i == 0 else "2 fine"))
    assert isinstance(results[0], BackendError)
    assert results[1][0][0].text == "2 FINE #0"


def test_a_failing_loop_fails_the_calls_in_it_and_the_next_call_runs(pair) -> None:
    inner, shared = pair
    inner.fail_at = 1
    with pytest.raises(BackendError, match="the step failed"):
        ask(shared, "5 doomed")
    inner.fail_at = None
    assert ask(shared, "1 after")[0][0].text == "1 AFTER #0"


def test_a_unit_past_its_deadline_comes_back_with_deadline_samples(pair) -> None:
    inner, shared = pair
    inner.step_seconds = 0.01
    started = time.monotonic()
    [samples] = ask(shared, "1000 endless", n=2, seconds=0.2)
    assert time.monotonic() - started < 2
    assert [s.finish_reason for s in samples] == ["deadline", "deadline"]
