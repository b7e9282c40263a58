"""Every registered strategy, on the embedded model, under a real two-second budget.

One backend serves the whole module (``think`` leaves a backend object open). Each run
must end within its budget plus max(0.5 s, 5 %), leave a trace whose graph is a tree,
release every sequence id, and give only answers that really make 24.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import deliberate
from deliberate import strategies
from deliberate.graph import ThoughtGraph

from helpers_real import assert_trace_complete, assert_tree, budget_slack, makes_24, open_model

pytestmark = pytest.mark.model

THINK = 2.0
PUZZLES = {  # solvable, with different shapes of solution
    "Use 4 9 10 13 to make 24.": (4, 9, 10, 13),  # (10 - 4) * (13 - 9)
    "Use 2 3 4 6 to make 24.": (2, 3, 4, 6),
    "Use 1 2 3 4 to make 24.": (1, 2, 3, 4),
}


@pytest.fixture(scope="module")
def backend():
    backend = open_model()
    yield backend
    backend.close()


@pytest.mark.parametrize("name", strategies.names())
def test_strategy_keeps_its_budget_and_answers_truly(backend, name: str) -> None:
    index = strategies.names().index(name)
    question, numbers = list(PUZZLES.items())[index % len(PUZZLES)]
    events: list[dict] = []
    started = time.perf_counter()
    result = deliberate.think(question, task="game24", strategy=name, model=backend, think=THINK, seed=index, on_event=events.append)
    wall = time.perf_counter() - started

    assert result.stats.thinking_seconds <= THINK + budget_slack(THINK), result.trace["events"][-4:]
    assert wall <= THINK + budget_slack(THINK) + 0.5  # building the trace is not free, but nearly
    assert result.stats.stop_reason in ("deadline", "solved", "complete")

    assert_trace_complete(result.trace)
    assert result.trace["meta"]["strategy"] == name
    assert events == result.trace["events"]
    assert_tree(result.graph)
    assert_tree(ThoughtGraph.from_data(result.trace["graph"]))
    assert len(result.graph) == result.stats.nodes

    if result.answer is not None:
        assert result.solved, "with the verifier on, only a verified answer is given"
        assert makes_24(result.answer, numbers), result.answer
    assert backend.live_sequences() == 0


def test_the_first_search_on_a_fresh_backend_keeps_its_budget() -> None:
    # Near the deadline prefill is cut into chunks sized from the measured prefill rate;
    # a fresh backend knows it from its warm-up. Long generic prompts, a cold cache.
    fresh = open_model()
    try:
        question = "Tell me a long story about dragons and knights and castles. " * 8
        result = deliberate.think(question, task="generic", strategy="bfs", model=fresh, think=3.0)
    finally:
        fresh.close()
    assert result.stats.thinking_seconds <= 3.0 + budget_slack(3.0), result.trace["events"][-3:]


def test_the_readme_snippet_loads_the_model_once_for_many_questions(capsys) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("loads it once and passes it in:\n\n```python\n", 1)[1].split("```", 1)[0]
    assert "deliberate.load(" in snippet
    scope: dict = {"deliberate": deliberate}
    exec(compile(snippet, "README.md", "exec"), scope)  # the README's code, exactly as written
    answers = capsys.readouterr().out.splitlines()
    assert len(answers) == 2
    for answer, numbers in zip(answers, [(4, 5, 6, 10), (1, 1, 4, 6)]):
        assert answer == "None" or makes_24(answer, numbers), answer
    assert scope["model"].ctx is None  # closed when the with-block ended
