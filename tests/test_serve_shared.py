"""``SharedBackend``: many search threads, one inner backend, their calls batched.

The inner backend here is a small real one (``BatchBackend``) that answers every
prompt in upper case, records each call it gets, and can hold a call open, so the
tests can line several callers up behind it.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

import pytest

from conftest import SOLVABLE, Game24Responder, game24_answer_ok, game24_scorer
from deliberate.backends.base import BackendStats, GenerateRequest, Sample
from deliberate.backends.scripted import ScriptedBackend, uniform_scores
from deliberate.backends.shared import SharedBackend
from deliberate.clock import Deadline, MonotonicClock
from deliberate.errors import BackendError


class SleepingClock(MonotonicClock):
    """Real time for a scripted backend: advancing it sleeps, so a token costs real time."""

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class BatchBackend:
    """Answers each prompt in upper case; a request whose own deadline has passed gets
    an empty "deadline" sample. ``calls`` holds each call's prompts; while ``hold`` is
    set a call waits for ``release``."""

    def __init__(self, n_seq_max: int = 64) -> None:
        self.n_seq_max = n_seq_max
        self.stats = BackendStats()
        self.calls: list[list[str]] = []
        self.deadlines: list[list[Any]] = []
        self.hold = threading.Event()
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail: Exception | None = None

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline, *, deadlines: Sequence[Deadline] | None = None) -> list[list[Sample]]:
        self.calls.append([r.prompt for r in requests])
        self.deadlines.append(list(deadlines or []))
        self.entered.set()
        if self.hold.is_set():
            assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        own = deadlines or [deadline] * len(requests)
        return [
            [Sample("", 1, 0, "deadline") if d.expired() else Sample(r.prompt.upper(), 1, 1, "stop") for _ in range(r.n)]
            for r, d in zip(requests, own)
        ]

    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False,
                     deadlines: Sequence[Deadline] | None = None) -> list[dict[str, float]]:  # fmt: skip
        self.calls.append(list(prompts))
        own = deadlines or [deadline] * len(prompts)
        return [{} if d.expired() else {label: -float(len(p)) for label in labels} for p, d in zip(prompts, own)]

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return "".join(m["content"] for m in messages)

    def describe(self) -> dict[str, Any]:
        return {"backend": "batch"}

    def close(self) -> None:
        pass


def in_threads(count: int, work: Any) -> list[Any]:
    """Run ``work(i)`` on ``count`` threads at once; their results in order."""
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except Exception as error:  # handed back to the test, with where it came from
            error.add_note("".join(traceback.format_exception(error)))
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return results


def requests(tag: str, count: int = 2, n: int = 1) -> list[GenerateRequest]:
    return [GenerateRequest(prompt=f"{tag} prompt {j}", n=n) for j in range(count)]


@pytest.fixture
def held() -> tuple[BatchBackend, SharedBackend]:
    """A shared backend whose first call is held open until the test lets it go."""
    inner = BatchBackend()
    shared = SharedBackend(inner)
    yield inner, shared
    inner.release.set()
    shared.close()


def line_up(inner: BatchBackend, shared: SharedBackend, callers: int) -> None:
    """Hold the inner backend in a first call, then wait until ``callers`` calls queue."""
    inner.hold.set()
    threading.Thread(target=shared.generate, args=(requests("first", 1), Deadline.after(10)), daemon=True).start()
    assert inner.entered.wait(5)
    end = time.monotonic() + 5
    while len(shared._pending) < callers + 1:  # the held call is still pending too
        assert time.monotonic() < end, "the callers did not queue"
        time.sleep(0.005)
    inner.hold.clear()
    inner.release.set()


def test_calls_pending_together_are_served_by_one_inner_call(held: tuple[BatchBackend, SharedBackend]) -> None:
    inner, shared = held
    threading.Timer(0.0, line_up, args=(inner, shared, 4)).start()
    time.sleep(0.05)  # the held call goes first
    results = in_threads(4, lambda i: shared.generate(requests(f"search{i}"), Deadline.after(10)))
    assert len(inner.calls) == 2  # the held call, then one call for all four
    assert sorted(inner.calls[1]) == sorted(f"search{i} prompt {j}" for i in range(4) for j in range(2))
    for i, samples in enumerate(results):  # each caller gets its own answers, in its order
        assert [s[0].text for s in samples] == [f"SEARCH{i} PROMPT {j}" for j in range(2)]


def test_each_request_keeps_its_own_deadline(held: tuple[BatchBackend, SharedBackend]) -> None:
    inner, shared = held
    deadlines = [Deadline.after(10) for _ in range(3)]
    threading.Timer(0.0, line_up, args=(inner, shared, 3)).start()
    time.sleep(0.05)
    results = in_threads(3, lambda i: shared.generate(requests(f"s{i}", 1), deadlines[i]))
    assert all(r[0][0].finish_reason == "stop" for r in results)
    given = {id(d) for d in inner.deadlines[1]}
    assert given == {id(d) for d in deadlines}  # the inner call saw each search's own deadline


def test_a_caller_whose_deadline_passes_while_waiting_returns_at_once(held: tuple[BatchBackend, SharedBackend]) -> None:
    inner, shared = held
    inner.hold.set()
    threading.Thread(target=shared.generate, args=(requests("first", 1), Deadline.after(10)), daemon=True).start()
    assert inner.entered.wait(5)
    deadline = Deadline.after(10)
    threading.Timer(0.2, deadline.cancel).start()  # as a disconnecting client would
    started = time.monotonic()
    [[sample], [other]] = shared.generate(requests("late"), deadline)
    assert time.monotonic() - started < 0.5
    assert sample.finish_reason == other.finish_reason == "deadline" and sample.text == ""
    assert len(inner.calls) == 1  # it never reached the model


def test_a_round_packs_requests_round_robin_up_to_the_sequence_ids() -> None:
    inner = BatchBackend(n_seq_max=4)
    shared = SharedBackend(inner)
    try:
        threading.Timer(0.0, line_up, args=(inner, shared, 3)).start()
        time.sleep(0.05)
        results = in_threads(3, lambda i: shared.generate(requests(f"s{i}", 3), Deadline.after(10)))
    finally:
        shared.close()
    rounds = inner.calls[1:]
    assert all(len(call) <= 3 for call in rounds)  # a quarter of the 4 ids stays with the prefix cache
    assert {p.split()[0] for p in rounds[0]} == {"s0", "s1", "s2"}  # everyone gets a share of the first round
    assert sorted(p for call in rounds for p in call) == sorted(f"s{i} prompt {j}" for i in range(3) for j in range(3))
    for i, samples in enumerate(results):
        assert [s[0].text for s in samples] == [f"S{i} PROMPT {j}" for j in range(3)]


def test_scoring_calls_with_the_same_labels_share_a_call(held: tuple[BatchBackend, SharedBackend]) -> None:
    inner, shared = held
    threading.Timer(0.0, line_up, args=(inner, shared, 3)).start()
    time.sleep(0.05)
    results = in_threads(3, lambda i: shared.score_labels([f"p{i}" * (i + 1)], [" sure", " no"], Deadline.after(10)))
    assert len(inner.calls) == 2 and sorted(inner.calls[1]) == sorted(f"p{i}" * (i + 1) for i in range(3))
    for i, [scores] in enumerate(results):
        assert scores == {" sure": -2.0 * (i + 1), " no": -2.0 * (i + 1)}


def test_a_failed_inner_call_fails_every_caller_in_its_round() -> None:
    inner = BatchBackend()
    inner.fail = BackendError("llama_decode failed with code -1")
    shared = SharedBackend(inner)
    try:
        results = in_threads(2, lambda i: shared.generate(requests(f"s{i}"), Deadline.after(10)))
    finally:
        shared.close()
    assert all(isinstance(r, BackendError) for r in results)


def test_a_backend_without_per_request_deadlines_is_served_one_call_at_a_time() -> None:
    # No helpful model or judge: both use conftest's lru_cached recursive solver, which
    # three threads would then share; the verifier alone must find the answer.
    scripted = ScriptedBackend(
        Game24Responder(prefer_solvable=False), scores=uniform_scores, clock=SleepingClock(), seconds_per_token=0.001  # type: ignore[arg-type]
    )
    shared = SharedBackend(scripted)
    assert not shared.batches
    import deliberate

    try:
        # Each search ends when it is solved, so the 30 s budget costs nothing here; it
        # is that long so that a machine busy with other work still solves all three.
        results = in_threads(3, lambda i: deliberate.think(SOLVABLE, model=shared, think=30.0, seed=i))
    finally:
        shared.close()
    # The scripted backend is not thread-safe: right answers for all three mean that
    # its calls never overlapped.
    assert not [r for r in results if isinstance(r, Exception)], [getattr(r, "__notes__", r) for r in results]
    assert all(game24_answer_ok(r.answer, SOLVABLE) for r in results), [(r.answer, r.stats) for r in results]
    assert shared.rounds >= 3
