"""Promises a user relies on first: signals in the finish, the node cap, resume, one value scale."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SOLVABLE, UNSOLVABLE, Game24Responder, GenericResponder, WatchedClock, game24_scorer, generic_scorer, think_guarded
from deliberate import strategies
from deliberate.backends.scripted import ScriptedBackend
from deliberate.clock import Deadline
from deliberate.errors import ContextOverflowError
from deliberate.render import show
from deliberate.search import FINISH_ON_INTERRUPT, vote_value
from deliberate.tasks.base import label_probs

# -- a signal during the greedy finish ------------------------------------------------------


def rambler(prompt: str, request, seed: int) -> str:
    """A generic reasoner that never answers, so the search must finish greedily."""
    return f"Step: still thinking ({seed % 97}) about it.\n"


class CancelAt(ScriptedBackend):
    """Cancels ``deadline`` (as Ctrl-C would) the first time the clock passes ``at``."""

    def __init__(self, at: float, deadline: Deadline, **kwargs) -> None:
        super().__init__(rambler, **kwargs)
        self.at, self.deadline, self.cancelled_at = at, deadline, None

    def generate(self, requests, deadline):
        if self.cancelled_at is None and self.clock.now() >= self.at:
            self.cancelled_at = self.clock.now()
            self.deadline.cancel()
        return super().generate(requests, deadline)


def test_a_signal_during_the_greedy_finish_ends_it_within_the_grace():
    clock = WatchedClock()
    caller = Deadline(clock)
    # 20 s budget, half kept for the finish: the finish starts at 10 s; Ctrl-C at 12 s.
    backend = CancelAt(12.0, caller, clock=clock, seconds_per_token=0.05)
    result = think_guarded("Why is the sky blue?", backend, task="generic", strategy="bfs", think=20, reserve=0.5, deadline=caller)
    assert backend.cancelled_at is not None and backend.cancelled_at >= 10.0
    types = [e["type"] for e in result.trace["events"]]
    assert "finish" in types and types[-1] == "answer"
    finish_t = next(e["t"] for e in result.trace["events"] if e["type"] == "finish")
    assert finish_t <= backend.cancelled_at  # the signal came while finishing
    assert result.stats.stop_reason == "interrupted"
    # Before the fix the finish ignored the signal and ran on to 20 s.
    assert result.stats.thinking_seconds <= backend.cancelled_at + FINISH_ON_INTERRUPT + 0.05 + 1e-6


# -- a full KV cache while judging -----------------------------------------------------------


class FullWhileScoring(ScriptedBackend):
    def score_labels(self, prompts, labels, deadline, *, special=False):
        raise ContextOverflowError("the KV cache (8192 tokens) is full")


def test_a_full_cache_while_judging_keeps_the_answer_and_the_trace(tmp_path):
    backend = FullWhileScoring(Game24Responder(error_rate=0.2), clock=WatchedClock())
    result = think_guarded(SOLVABLE, backend, task="game24", strategy="bfs", think=20, trace=tmp_path / "t.json")
    assert result.answer is not None and result.stats.stop_reason == "solved"
    assert json.loads((tmp_path / "t.json").read_text())["meta"]["answer"] == result.answer
    assert any(e["type"] == "evaluate" and "error" in e for e in result.trace["events"])


# -- --max-nodes is a hard cap -----------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(strategies.names()),
    max_nodes=st.integers(1, 40),
    think=st.sampled_from([None, 0.5, 3.0]),
    generic=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_the_graph_never_holds_more_than_max_nodes(strategy, max_nodes, think, generic, seed):
    clock = WatchedClock()
    if generic:
        backend = ScriptedBackend(GenericResponder(steps=4), scores=generic_scorer, clock=clock)
        q, task = "What is six times seven?", "generic"
    else:
        backend = ScriptedBackend(Game24Responder(error_rate=0.3), scores=game24_scorer, clock=clock)
        q, task = UNSOLVABLE, "game24"
    result = think_guarded(q, backend, task=task, strategy=strategy, think=think, max_nodes=max_nodes, seed=seed)
    assert len(result.graph) <= max_nodes
    assert result.stats.nodes <= max_nodes


def test_a_node_budget_with_no_time_limit_ends_when_asking_stops_finding_anything():
    same = ScriptedBackend(lambda prompt, request, seed: "Step: the same thought.\n", clock=WatchedClock())
    result = think_guarded("Why?", same, task="generic", strategy="bfs", think=None, max_nodes=50)
    assert result.stats.stop_reason == "stalled" and len(result.graph) < 50


# -- resume restores every setting ---------------------------------------------------------------


def test_resume_restores_the_config_and_records_what_a_flag_changed(tmp_path):
    first = tmp_path / "r1.json"

    def backend():
        return ScriptedBackend(Game24Responder(error_rate=0.5), scores=game24_scorer, clock=WatchedClock())

    think_guarded(
        UNSOLVABLE, backend(), task="game24", strategy="bfs", think=1, verifier=False, evaluator="vote",
        mode="sample", task_options={"openings": "operand"}, max_nodes=500, trace=first,
    )
    again = think_guarded(None, backend(), think=1, resume=first, trace=tmp_path / "r2.json")
    config = again.trace["meta"]["config"]
    assert (config["verifier"], config["evaluator"], config["mode"], config["max_nodes"]) == (False, "vote", "sample", 500)
    assert again.trace["meta"]["task_options"] == {"openings": "operand"}
    assert again.trace["meta"]["resumed"]["overrides"] == {}
    changed = think_guarded(None, backend(), think=1, resume=first, verifier=True, max_nodes=800)
    assert changed.trace["meta"]["config"]["verifier"] is True
    assert changed.trace["meta"]["resumed"]["overrides"] == {
        "verifier": {"was": False, "now": True}, "max_nodes": {"was": 500, "now": 800},
    }


# -- one value scale ------------------------------------------------------------------------------


def test_vote_values_sit_on_the_label_scale():
    assert vote_value(1 / 20, 20) == pytest.approx(0.5)  # an average sibling is middling
    assert vote_value(0.5, 2) == pytest.approx(0.5)
    assert vote_value(0.0, 5) == 0.0
    assert 0.9 < vote_value(1.0, 20) < 1.0
    # A lone sibling judged "likely" (0.5) no longer outranks the best of twenty voted ones.
    assert vote_value(0.3, 20) > 0.5


def test_extra_keys_from_a_backend_do_not_dilute_the_labels():
    labels = {" sure": 1.0, " likely": 0.5, " impossible": 0.0}
    scores = {" sure": -1.0, " likely": -1.0, " impossible": -1.0, " certain": 5.0, "sure": 9.0}
    probs = label_probs(scores, labels)
    assert set(probs) == set(labels)
    assert all(p == pytest.approx(1 / 3) for p in probs.values())
    assert label_probs({}, labels) is None
    partial = label_probs({" sure": -0.1}, labels)
    assert partial[" sure"] > 0.99 and math.isclose(sum(partial.values()), 1.0)


def test_voted_and_valued_nodes_share_one_scale_in_a_search():
    backend = ScriptedBackend(Game24Responder(error_rate=0.2), scores=game24_scorer, clock=WatchedClock())
    result = think_guarded(SOLVABLE, backend, task="game24", strategy="bfs", think=10, evaluator="vote")
    voted = [v for n in result.graph for v in result.graph[n]["values"] if v["source"] == "vote"]
    assert voted and all(0.0 <= v["value"] <= 1.0 for v in voted)
    assert all(set(v["detail"]) == {"share", "of"} for v in voted)


# -- trace show prints the answer path first -------------------------------------------------------


def test_trace_show_prints_the_answer_path_first(tmp_path, capsys):
    backend = ScriptedBackend(Game24Responder(error_rate=0.0), scores=game24_scorer, clock=WatchedClock())
    result = think_guarded(SOLVABLE, backend, task="game24", strategy="bfs", think=20, trace=tmp_path / "t.json")
    show(tmp_path / "t.json")
    lines = capsys.readouterr().out.splitlines()
    path = result.graph.path(result.trace["meta"]["answer_node"])[1:]
    thoughts = [result.graph[n]["thought"] for n in path]
    # The first line under the title at each depth is the answer path's thought.
    firsts = [next(line for line in lines[1:] if result.graph[n]["thought"] in line) for n in path]
    for depth, (thought, line) in enumerate(zip(thoughts, firsts)):
        assert lines.index(line) == 1 + depth, (thought, lines[: 2 + depth])
