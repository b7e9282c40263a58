"""Shared fakes for the fast test suite: a fake clock, scripted backends, and scripted
"models" that play Game of 24 and answer generic questions.

Fixtures
    fake_clock      a ``WatchedClock`` at t=0: a ``FakeClock`` that the scripted backend
                    advances per token, and that raises ``Stalled`` when the search
                    reads it 5,000 times in a row without time passing (a search that
                    makes no model call can never reach its deadline on a fake clock)
    scripted        a factory: ``scripted(respond, scores=...)`` -> ``ScriptedBackend``
                    on ``fake_clock`` (use it when a test needs its own responder)
    game24_backend  a factory: ``game24_backend(error_rate=0.2, helpful=True)`` -> a
                    ``ScriptedBackend`` that plays Game of 24 on ``fake_clock``
    generic_backend a factory: ``generic_backend(answer="42", steps=2)`` -> a
                    ``ScriptedBackend`` that answers generic questions on ``fake_clock``

Plain helpers (``from conftest import ...``; hypothesis tests use these directly,
because function-scoped fixtures are not reset between examples)
    WatchedClock, Stalled           the clock above and its failure
    wall_clock_limit, think_guarded a real-time guard, and ``think`` run under it
    Game24Responder, game24_scorer  a Game of 24 player and a judge that knows the game
    GenericResponder, generic_scorer  a "Step: ... / Answer: ..." reasoner and its judge
    can_make_24, game24_answer_ok   brute-force oracle; calculator check of an answer
    assert_tree, comparable_graph   graph checks shared by several suites
    SOLVABLE, UNSOLVABLE            two game24 questions
    shared_dataset                  a path in ../shared/datasets, or a skip saying it is absent

A responder gets ``(prompt, request, seed)`` and returns text, like a model would; every
choice it makes comes from the per-sample seed, so a run is reproducible.
"""

from __future__ import annotations

import random
import re
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from deliberate.backends.base import GenerateRequest
from deliberate.backends.scripted import ScriptedBackend, uniform_scores
from deliberate.benchmarks.datasets import game24_correct
from deliberate.calculator import format_number
from deliberate.clock import FakeClock
from deliberate.graph import ROOT, ThoughtGraph

# -- a fake clock that notices a search going round in circles ---------------------------


class Stalled(AssertionError):
    """The search kept reading the clock without the backend ever moving it."""


class WatchedClock(FakeClock):
    """A ``FakeClock`` that fails loudly instead of hanging a test.

    On a fake clock only the backend moves time, so a strategy that loops without
    calling the model would spin forever. ``patience`` reads in a row without time
    passing raise ``Stalled``; real searches read it a few hundred times at most
    between two model calls.
    """

    def __init__(self, start: float = 0.0, *, patience: int = 5_000) -> None:
        super().__init__(start)
        self.patience = patience
        self._idle_reads = 0

    def now(self) -> float:
        self._idle_reads += 1
        if self._idle_reads > self.patience:
            raise Stalled(f"the clock was read {self.patience} times at t={self.t} without moving")
        return self.t

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._idle_reads = 0
        super().advance(seconds)


@contextmanager
def wall_clock_limit(seconds: float = 10.0) -> Iterator[None]:
    """Raise ``Stalled`` if the block runs longer than ``seconds`` of real time.

    The fake clock cannot catch a loop that never reads it; this can. Main thread
    only (it uses SIGALRM), which is where pytest runs tests.
    """

    def alarm(signum: int, frame: Any) -> None:
        raise Stalled(f"still running after {seconds} s of real time")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def think_guarded(question: str | None, backend: ScriptedBackend, *, wall: float = 10.0, **kwargs: Any):
    """``deliberate.think`` on a scripted backend, failing with ``Stalled`` instead of hanging."""
    import deliberate

    with wall_clock_limit(wall):
        return deliberate.think(question, model=backend, **kwargs)


SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset(*parts: str) -> Path:
    """A path in ../shared/datasets; a user's clone has none, so the test skips there (CI has it)."""
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/datasets not found: {path} is absent")
    return path


SOLVABLE = "Use 4 9 10 13 to make 24."  # (10 - 4) * (13 - 9)
UNSOLVABLE = "Use 1 1 1 1 to make 24."

# -- Game of 24 arithmetic, by brute force ------------------------------------------------


def _combine(a: Fraction, b: Fraction) -> list[Fraction]:
    results = [a + b, a - b, b - a, a * b]
    if b != 0:
        results.append(a / b)
    if a != 0:
        results.append(b / a)
    return results


@lru_cache(maxsize=None)
def _reaches_24(numbers: tuple[Fraction, ...]) -> bool:
    if len(numbers) == 1:
        return numbers[0] == 24
    for i in range(len(numbers)):
        for j in range(i + 1, len(numbers)):
            rest = [n for k, n in enumerate(numbers) if k not in (i, j)]
            for value in _combine(numbers[i], numbers[j]):
                if _reaches_24(tuple(sorted([*rest, value]))):
                    return True
    return False


def can_make_24(numbers: Sequence[Fraction | int | str]) -> bool:
    """Whether the numbers can still make 24 with + - * / (each used once)."""
    return _reaches_24(tuple(sorted(Fraction(n) for n in numbers)))


def numbers_in(text: str) -> list[Fraction]:
    """The numbers written in a game24 state line such as "4 8/3 10" (fractions kept)."""
    return [Fraction(n) for n in re.findall(r"\d+(?:/\d+)?", text)]


def game24_answer_ok(answer: str | None, question: str) -> bool:
    """Check an answer "expr = 24" with the benchmark scorer: it equals 24 and uses
    exactly the question's four numbers. Independent of the task's own verifier."""
    numbers = re.findall(r"\d+", question)[:4]
    return bool(answer) and game24_correct(answer, " ".join(numbers))  # type: ignore[arg-type]


# -- a scripted Game of 24 player -----------------------------------------------------------

_OPS = ("+", "-", "*", "/")


def _query_numbers(prompt: str, label: str) -> list[Fraction]:
    """The numbers on the last ``label`` line of a prompt (the query, not the exemplars)."""
    start = prompt.rfind(label)
    line = prompt[start + len(label) :].split("\n", 1)[0]
    return numbers_in(line)


def _apply(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    if op == "/":
        return a / b if b else None
    return {"+": a + b, "-": a - b, "*": a * b}[op]


class Game24Responder:
    """Plays Game of 24 the way the game24 task prompts a model.

    - A sampled step ends with an opening ("a op b =", "a op", "a" or nothing); the
      responder completes it. With probability ``error_rate`` (chosen by the seed) the
      arithmetic is wrong, so the verifier has something to reject.
    - A proposal prompt (mode "propose") gets several lines "a op b = c (left: ...)".
    - ``prefer_solvable`` makes a step that keeps 24 reachable more likely, like a
      model that has learned the game.

    ``calls`` counts the samples answered.
    """

    def __init__(self, *, error_rate: float = 0.2, prefer_solvable: bool = True) -> None:
        self.error_rate = error_rate
        self.prefer_solvable = prefer_solvable
        self.calls = 0

    def __call__(self, prompt: str, request: GenerateRequest, seed: int) -> str:
        self.calls += 1
        rng = random.Random(seed)
        left = _query_numbers(prompt, "Input:")
        opening = prompt[prompt.rfind("Possible next steps:\n") + len("Possible next steps:\n") :]
        if not opening.strip():
            lines = [self._full_step(left, rng) for _ in range(rng.randint(2, 6))]
            return "\n".join(line for line in lines if line) + "\n\nInput: 1 2 3 4\n"
        return self._complete(left, opening, rng)

    def _result_text(self, value: Fraction, rng: random.Random) -> str:
        if rng.random() < self.error_rate:
            value += rng.choice((1, 2, -1))
        return format_number(value)

    def _moves(self, left: list[Fraction]) -> list[tuple[Fraction, str, Fraction, Fraction]]:
        moves = []
        for i, a in enumerate(left):
            for j, b in enumerate(left):
                if i == j:
                    continue
                for op in _OPS:
                    value = _apply(a, op, b)
                    if value is None or value < 0:
                        continue
                    moves.append((a, op, b, value))
        return moves

    def _pick(self, moves: list[tuple[Fraction, str, Fraction, Fraction]], left: list[Fraction], rng: random.Random):
        if not moves:
            return None
        if self.prefer_solvable and rng.random() < 0.7:
            good = []
            for a, op, b, value in moves:
                rest = list(left)
                rest.remove(a)
                rest.remove(b)
                if can_make_24([*rest, value]):
                    good.append((a, op, b, value))
            if good:
                return rng.choice(good)
        return rng.choice(moves)

    def _left_after(self, left: list[Fraction], a: Fraction, b: Fraction, value: Fraction) -> str:
        rest = list(left)
        rest.remove(a)
        rest.remove(b)
        return " ".join(format_number(n) for n in sorted([*rest, value]))

    def _full_step(self, left: list[Fraction], rng: random.Random) -> str:
        move = self._pick(self._moves(left), left, rng)
        if move is None:
            return ""
        a, op, b, value = move
        return (
            f"{format_number(a)} {op} {format_number(b)} = {self._result_text(value, rng)}"
            f" (left: {self._left_after(left, a, b, value)})"
        )

    def _complete(self, left: list[Fraction], opening: str, rng: random.Random) -> str:
        parts = opening.split()
        if parts and parts[-1] == "=":  # "a op b =": just the result
            a, op, b = Fraction(parts[0]), parts[1], Fraction(parts[2])
            value = _apply(a, op, b)
            if value is None:
                return " undefined"
            return f" {self._result_text(value, rng)} (left: ...)"
        moves = self._moves(left)
        if len(parts) >= 1:
            moves = [m for m in moves if format_number(m[0]) == parts[0]]
        if len(parts) == 2:
            moves = [m for m in moves if m[1] == parts[1]]
        move = self._pick(moves, left, rng)
        if move is None:
            return " is all I can say"
        a, op, b, value = move
        tail = f"{format_number(b)} = {self._result_text(value, rng)} (left: {self._left_after(left, a, b, value)})"
        return f" {tail}" if len(parts) == 2 else f" {op} {tail}"


def game24_scorer(prompt: str, labels: Sequence[str]) -> dict[str, float]:
    """Label log-probs of a judge that knows the game: "sure" when 24 is still
    reachable from the numbers left, "impossible" otherwise. Votes go to a candidate
    step whose numbers left can still make 24."""
    if "Candidate steps:" in prompt:
        candidates = re.findall(r"^([A-Z]): .*\(left: ([^)]*)\)$", prompt, re.MULTILINE)
        good = {letter for letter, left in candidates if can_make_24(numbers_in(left))}
        return {label: (-0.1 if label.strip() in good else -3.0) for label in labels}
    if can_make_24(_query_numbers(prompt, "Numbers:")):
        table = {" sure": -0.1, " likely": -2.5, " impossible": -5.0}
    else:
        table = {" sure": -5.0, " likely": -3.0, " impossible": -0.1}
    return {label: table.get(label, -9.0) for label in labels}


# -- a scripted generic reasoner ------------------------------------------------------------


class GenericResponder:
    """Answers a generic question in ``steps`` reasoning lines and then "Answer: ...".

    Each step's wording depends on the seed (one of ``variety`` phrasings), so sampled
    steps branch. ``answer`` is given with probability ``accuracy``, otherwise
    ``wrong``; the choice comes from the seed as well.
    """

    def __init__(
        self, *, answer: str = "42", wrong: str = "41", steps: int = 2, variety: int = 3, accuracy: float = 0.8
    ) -> None:
        self.answer, self.wrong = answer, wrong
        self.steps, self.variety, self.accuracy = steps, variety, accuracy
        self.calls = 0

    def __call__(self, prompt: str, request: GenerateRequest, seed: int) -> str:
        self.calls += 1
        rng = random.Random(seed)
        query = prompt[prompt.rfind("Question:") :]
        done = query.count("\nStep: ")
        if done >= self.steps:
            return f"Answer: {self.answer if rng.random() < self.accuracy else self.wrong}\n"
        return f"Step: idea {done + 1} in wording {rng.randrange(self.variety)}.\nStep: more"


def generic_scorer(prompt: str, labels: Sequence[str]) -> dict[str, float]:
    """Prefers states whose steps all use wording 0 (a toy notion of "good reasoning")."""
    steps = prompt[prompt.rfind("Steps:") :]
    good = all(wording == "0" for wording in re.findall(r"wording (\d+)", steps))
    table = {" sure": -0.2 if good else -4.0, " likely": -1.5, " impossible": -4.0 if good else -0.2}
    return {label: table.get(label, -9.0) for label in labels}


# -- graph checks used by several suites ------------------------------------------------------


def assert_tree(graph: ThoughtGraph) -> None:
    """The thought graph is a tree rooted at node 0 whose ``parent`` attributes match the edges."""
    g = graph.g
    assert ROOT in g
    if len(g) > 1:
        assert nx.is_arborescence(g)
    assert g.in_degree(ROOT) == 0
    for node in g:
        parents = list(g.predecessors(node))
        if node == ROOT:
            assert graph.parent(node) is None
        else:
            assert parents == [graph.parent(node)]
            assert graph.depth(node) == graph.depth(parents[0]) + 1
        assert graph.path(node)[0] == ROOT


def comparable_graph(data: dict[str, Any]) -> dict[str, Any]:
    """Node-link data without timestamps, for comparing two runs."""
    nodes = []
    for node in data["nodes"]:
        attrs = {k: v for k, v in node.items() if k != "created"}
        attrs["values"] = [{k: v for k, v in value.items() if k != "t"} for value in node["values"]]
        nodes.append(attrs)
    return {"nodes": nodes, "edges": data["edges"]}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def fake_clock() -> WatchedClock:
    """A clock at t=0 that moves only when the scripted backend decodes or scores."""
    return WatchedClock()


@pytest.fixture
def scripted(fake_clock: FakeClock) -> Callable[..., ScriptedBackend]:
    """Factory for a ``ScriptedBackend`` on ``fake_clock``: ``scripted(respond, scores=...)``."""

    def make(respond: Callable | None = None, *, scores: Callable = uniform_scores, **kwargs: Any) -> ScriptedBackend:
        return ScriptedBackend(respond, scores=scores, clock=fake_clock, **kwargs)

    return make


@pytest.fixture
def game24_backend(scripted: Callable[..., ScriptedBackend]) -> Callable[..., ScriptedBackend]:
    """Factory for a backend that plays Game of 24: ``game24_backend(error_rate=0.2, helpful=True)``.

    ``helpful=False`` judges with uniform label scores instead of ``game24_scorer``.
    The responder is reachable as ``backend.respond``.
    """

    def make(*, error_rate: float = 0.2, prefer_solvable: bool = True, helpful: bool = True, **kwargs: Any):
        responder = Game24Responder(error_rate=error_rate, prefer_solvable=prefer_solvable)
        return scripted(responder, scores=game24_scorer if helpful else uniform_scores, **kwargs)

    return make


@pytest.fixture
def generic_backend(scripted: Callable[..., ScriptedBackend]) -> Callable[..., ScriptedBackend]:
    """Factory for a backend that reasons in "Step:" lines and ends with "Answer: ..."."""

    def make(**kwargs: Any) -> ScriptedBackend:
        backend_kwargs = {k: kwargs.pop(k) for k in ("seconds_per_token", "seconds_per_score") if k in kwargs}
        return scripted(GenericResponder(**kwargs), scores=generic_scorer, **backend_kwargs)

    return make
