"""Invariants of every search, stated as properties over random runs.

Hypothesis draws the strategy, the task and question, the scripted model's habits
(how often its arithmetic is wrong, whether the judge helps), the budget, the speed of
the fake model and the seed. For every run:

(a) the graph is a tree rooted at the question;
(b) a pruned node is never expanded, and gains no children after it is pruned;
(c) the budget holds: thinking time, every event and every model call end by the deadline;
(d) a state has one node and one judgement, however many thoughts reach it;
and (e) with a node budget instead of a clock, the same seed gives the same tree.

Below the properties, a few direct tests of ``Search`` operations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import (
    SOLVABLE,
    Game24Responder,
    GenericResponder,
    WatchedClock,
    assert_tree,
    comparable_graph,
    game24_answer_ok,
    game24_scorer,
    generic_scorer,
    think_guarded,
)
from deliberate import strategies
from deliberate.backends.base import GenerateRequest, Sample
from deliberate.backends.scripted import ScriptedBackend, uniform_scores
from deliberate.clock import Deadline
from deliberate.graph import ROOT
from deliberate.search import Search, SearchConfig, StopSearch
from deliberate.tasks import make_task

EPSILON = 1e-9
ROUNDING = 5e-5  # the trace rounds times to 4 decimals
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=120)


class RecordingBackend(ScriptedBackend):
    """A scripted backend that records when each call ended against its deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, float, float]] = []  # (kind, clock after, deadline.at)
        self.requests: list[GenerateRequest] = []

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        self.requests.extend(requests)
        results = super().generate(requests, deadline)
        self.calls.append(("generate", self.clock.t, deadline.at))
        return results

    def score_labels(self, prompts, labels, deadline, *, special=False):
        results = super().score_labels(prompts, labels, deadline, special=special)
        self.calls.append(("score", self.clock.t, deadline.at))
        return results


# -- drawing a run ----------------------------------------------------------------------------------

PUZZLES = [SOLVABLE, "Use 1 1 1 1 to make 24.", "Use 3 3 8 8 to make 24.", "Use 2 3 5 12 to make 24.", "Use 1 2 3 4 to make 24."]


@st.composite
def runs(draw: st.DrawFn, *, timed: bool = True) -> dict[str, Any]:
    task = draw(st.sampled_from(["game24", "generic"]))
    names = strategies.names()
    strategy = draw(st.sampled_from(names))
    options: dict[str, Any] = {}
    if strategy == "self-consistency" and draw(st.booleans()):
        options["max_chains"] = draw(st.integers(min_value=1, max_value=24))
    if strategy in ("bfs", "dfs", "beam", "mcts") and draw(st.booleans()):
        options["k"] = draw(st.integers(min_value=1, max_value=10))
    if strategy == "bfs" and draw(st.booleans()):
        options["prune_below"] = draw(st.sampled_from([0.1, 0.5, 0.9]))
    run: dict[str, Any] = {
        "task": task,
        "strategy": strategy,
        "options": options,
        "seed": draw(st.integers(min_value=0, max_value=2**31 - 1)),
        "helpful": draw(st.booleans()),
        "seconds_per_token": draw(st.sampled_from([0.001, 0.01, 0.01, 0.05, 0.4])),
        "evaluator": draw(st.sampled_from(["value", "vote"])),
    }
    if task == "game24":
        run["question"] = draw(st.sampled_from(PUZZLES))
        run["error_rate"] = draw(st.sampled_from([0.0, 0.2, 0.6]))
        run["task_options"] = {"openings": draw(st.sampled_from(["pair", "operation", "operand", "none"]))}
        run["mode"] = draw(st.sampled_from([None, None, "propose"]))
    else:
        run["question"] = "What is six times seven?"
        run["steps"] = draw(st.integers(min_value=0, max_value=4))
        run["variety"] = draw(st.integers(min_value=1, max_value=5))
    if timed:
        run["think"] = draw(st.one_of(st.floats(min_value=0.005, max_value=0.5), st.floats(min_value=0.5, max_value=4.0)))
        run["max_nodes"] = draw(st.one_of(st.none(), st.none(), st.integers(min_value=1, max_value=200)))
    else:
        run["think"] = None
        run["max_nodes"] = draw(st.integers(min_value=1, max_value=120))
    return run


def execute(run: dict[str, Any]) -> tuple[Any, RecordingBackend]:
    if run["task"] == "game24":
        respond: Any = Game24Responder(error_rate=run["error_rate"])
        scores = game24_scorer if run["helpful"] else uniform_scores
    else:
        respond = GenericResponder(steps=run["steps"], variety=run["variety"])
        scores = generic_scorer if run["helpful"] else uniform_scores
    backend = RecordingBackend(respond, scores=scores, clock=WatchedClock(), seconds_per_token=run["seconds_per_token"])
    result = think_guarded(
        run["question"],
        backend,
        task=run["task"],
        strategy=run["strategy"],
        think=run["think"],
        max_nodes=run["max_nodes"],
        seed=run["seed"],
        options=run["options"],
        evaluator=run["evaluator"],
        mode=run.get("mode"),
        task_options=run.get("task_options"),
    )
    return result, backend


# -- the invariants ----------------------------------------------------------------------------------


def check_tree(result: Any) -> None:
    assert_tree(result.graph)
    assert result.graph[ROOT]["thought"] == "" and result.graph.question == result.trace["meta"]["question"]


def check_pruned_never_expanded(result: Any) -> None:
    """A pruned node is never expanded while it stays pruned. A strategy may take a
    prune back (a "revive" event, when nothing else is left to try); only then may the
    node grow again, and the trace says so."""
    events = result.trace["events"]
    made_at: dict[int, int] = {}  # node -> index of the event that created it
    pruned_at: dict[int, int] = {}  # node -> index of the prune in force now
    revived: set[int] = set()
    for i, event in enumerate(events):
        if event["type"] == "expand":
            assert not set(event["nodes"]) & set(pruned_at), f"expanded a pruned node: {event}"
            for group in event["children"]:
                for node in group:
                    made_at.setdefault(node, i)
        elif event["type"] == "prune":
            assert event["node"] not in pruned_at  # pruned once until revived
            pruned_at[event["node"]] = i
        elif event["type"] == "revive":
            assert pruned_at.pop(event["node"], None) is not None, f"revived a node that was not pruned: {event}"
            assert not event.get("dead")
            revived.add(event["node"])
    graph = result.graph
    for node, when in pruned_at.items():
        assert graph.status(node) == "pruned"
        if node not in revived:
            for child in graph.children(node):
                assert made_at[child] < when
    assert set(graph.with_status("pruned")) == set(pruned_at)
    for node in graph.with_status("pruned"):
        if graph[node]["pruned"]["dead"]:
            assert node not in revived  # a proven dead end is never taken back


def check_budget(result: Any, backend: RecordingBackend, think: float | None) -> None:
    limit = math.inf if think is None else think + EPSILON
    assert backend.clock.t <= limit
    assert result.stats.thinking_seconds <= limit + ROUNDING
    assert all(event["t"] <= limit + ROUNDING for event in result.trace["events"])
    for kind, ended, deadline in backend.calls:
        assert ended <= deadline + EPSILON, f"{kind} call ran past its deadline"
        assert ended <= limit
    if result.stats.stop_reason == "deadline":
        assert think is not None


def check_one_node_one_value_per_state(result: Any, backend: RecordingBackend) -> None:
    graph = result.graph
    keys = [graph[n]["key"] for n in graph]
    assert len(keys) == len(set(keys)), "a state has two nodes"
    for node in graph:
        sources = [v["source"] for v in graph[node]["values"]]
        assert sources.count("value") + sources.count("vote") <= 1, f"node {node} judged twice: {sources}"
        assert sources.count("verifier") <= 1
    value_prompts = [prompt for kind, prompt in backend.history if kind == "score" and prompt.endswith("Judgement:")]
    assert len(value_prompts) == len(set(value_prompts)), "a state was sent to the judge twice"


def check_answer(result: Any, run: dict[str, Any]) -> None:
    if run["task"] == "game24":
        assert result.answer is None or game24_answer_ok(result.answer, run["question"])
    if result.answer is not None:
        node = result.trace["meta"]["answer_node"]
        assert result.graph[node]["answer"] == result.answer
        assert result.graph.status(node) in ("solved", "terminal")


@PROPERTY
@given(runs())
def test_every_search_keeps_its_invariants(run):
    result, backend = execute(run)
    check_tree(result)
    check_pruned_never_expanded(result)
    check_budget(result, backend, run["think"])
    check_one_node_one_value_per_state(result, backend)
    check_answer(result, run)
    if run["max_nodes"] is not None and result.stats.stop_reason == "max-nodes":
        assert len(result.graph) >= run["max_nodes"]


def without_times(result: Any) -> dict[str, Any]:
    events = [{k: v for k, v in event.items() if k != "t"} for event in result.trace["events"]]
    return {"graph": comparable_graph(result.trace["graph"]), "events": events, "answer": result.answer}


@settings(PROPERTY, max_examples=40)
@given(runs(timed=False))
def test_same_seed_and_node_budget_give_the_same_tree(run):
    first, _ = execute(run)
    second, _ = execute(run)
    assert without_times(first) == without_times(second)
    assert first.stats.stop_reason == second.stats.stop_reason


def test_different_seeds_give_different_trees():
    """The seed is what varies the samples: a handful of seeds cannot all agree."""
    trees = []
    for seed in range(4):
        backend = ScriptedBackend(Game24Responder(), scores=game24_scorer, clock=WatchedClock())
        result = think_guarded(SOLVABLE, backend, task="game24", strategy="mcts", think=None, max_nodes=40, seed=seed)
        trees.append(repr(without_times(result)["graph"]))
    assert len(set(trees)) > 1


# -- Search operations, one at a time -------------------------------------------------------------------


def make_search(respond: Any = None, *, budget: float | None = 10.0, task: str = "game24", question: str = SOLVABLE, **config: Any):
    clock = WatchedClock()
    backend = RecordingBackend(respond or Game24Responder(error_rate=0), scores=game24_scorer, clock=clock)
    deadline = Deadline.after(budget, clock)
    return Search(question, make_task(task), backend, deadline, budget=budget, config=SearchConfig(**config), seed=3), backend


def test_a_pruned_node_is_never_expanded_and_costs_no_model_call():
    search, backend = make_search()
    [children] = search.expand([ROOT], 4)
    victim = children[0]
    search.prune(victim, "test")
    calls = len(backend.history)
    assert search.expand([victim], 4) == [[]]
    assert len(backend.history) == calls
    assert search.graph.children(victim) == []
    search.prune(victim, "again")  # pruning twice records one prune
    assert [e["node"] for e in search.events if e["type"] == "prune"] == [victim]


def test_evaluation_is_cached_per_state():
    search, backend = make_search()
    [children] = search.expand([ROOT], 3)
    first = search.evaluate(children)
    scored = [p for kind, p in backend.history if kind == "score"]
    assert search.evaluate(children + children) == first + first
    assert [p for kind, p in backend.history if kind == "score"] == scored
    assert len(scored) == len(children)


def test_check_raises_with_the_reason():
    search, _ = make_search(max_nodes=3)
    search.expand([ROOT], 4)
    with pytest.raises(StopSearch) as stop:
        search.check()
    assert stop.value.reason == "max-nodes"

    search, _ = make_search()
    search.deadline.cancel()
    with pytest.raises(StopSearch) as stop:
        search.expand([ROOT], 1)
    assert stop.value.reason == "interrupted"

    search, backend = make_search(budget=1.0)
    backend.clock.advance(0.95)  # inside the 10 % reserve kept for finishing
    with pytest.raises(StopSearch) as stop:
        search.evaluate([ROOT])
    assert stop.value.reason == "deadline"


def test_exploration_leaves_the_reserve_for_finishing():
    # A chain that never ends: no answer before the reserve, so finish() must use it.
    backend = RecordingBackend(GenericResponder(steps=10**6), scores=generic_scorer, clock=WatchedClock())
    result = think_guarded("Why?", backend, task="generic", strategy="bfs", think=10, seed=1)
    events = result.trace["events"]
    finish = [i for i, e in enumerate(events) if e["type"] == "finish"]
    assert len(finish) == 1
    assert all(e["t"] <= 9.0 + EPSILON for e in events[: finish[0]])  # 10 % of 10 s kept back
    assert events[finish[0]]["t"] == pytest.approx(9.0, abs=0.05)
    assert result.stats.thinking_seconds <= 10.0
    assert result.stats.stop_reason == "deadline"


def test_a_node_listed_twice_gets_each_listing_its_own_children():
    search, _ = make_search()
    first, second = search.expand([ROOT, ROOT], 2)
    assert first and second and not set(first) & set(second)


def test_repeated_rollout_waves_use_fresh_seeds():
    search, backend = make_search(GenericResponder(steps=3, variety=1000), task="generic", question="Why?")
    first = [c for listing in search.expand([ROOT] * 4, 1, mode="sample", rollout=True) for c in listing]
    second = [c for listing in search.expand([ROOT] * 4, 1, mode="sample", rollout=True) for c in listing]
    seeds = [request.seed for request in backend.requests]
    assert len(seeds) == 8 and len(set(seeds)) == 8
    assert len(set(second) - set(first)) == 4  # four fresh samples, four new thoughts


def test_vote_counts_every_chain_that_reached_an_answer():
    search, _ = make_search(task="generic", question="What is six times seven?", answer_by="vote")
    graph = search.graph
    common, _ = graph.add_child(ROOT, "Answer: 42", {"steps": ["Answer: 42"], "answer": "42"}, "answer: 42", seed=1, created=0.0)
    for _ in range(5):  # five more chains wrote exactly the same thing
        graph.add_child(ROOT, "Answer: 42", {"steps": ["Answer: 42"], "answer": "42"}, "answer: 42", seed=1, created=0.0)
    for i in range(2):
        node, _ = graph.add_child(ROOT, f"guess {i}", {"steps": [f"guess {i}"], "answer": "41"}, f"guess {i}", seed=2, created=0.0)
        graph[node]["answer"] = "41"
        graph.set_status(node, "terminal")
    graph[common]["answer"] = "42"
    graph.set_status(common, "terminal")
    assert search.answer() == "42"  # six chains against two


def _chain(graph, answer: str, logprobs: list[float | None], seed: int) -> int:
    """A two-step chain whose first step made tool calls with these log-probabilities."""
    calls = [{"tool": "calculator", "input": "1+1", "output": "2", "ok": True, "prefill": 2, "logprob": lp} for lp in logprobs]
    step, _ = graph.add_child(ROOT, f"step {seed}", {"steps": [f"step {seed}"], "answer": None}, f"step {seed}",
                              seed=seed, created=float(seed), calls=calls)
    end, _ = graph.add_child(step, f"Answer: {answer}", {"steps": [f"step {seed}", f"Answer: {answer}"], "answer": answer},
                             f"end {seed}", seed=seed, created=float(seed))
    graph.set_answer(end, answer)
    graph.set_status(end, "terminal")
    return end


@pytest.mark.parametrize("weight", ["chains", "tool-likelihood"])
def test_a_tool_likelihood_vote_weighs_each_chain_by_the_models_probability_of_its_tool_results(weight):
    import math

    search, _ = make_search(task="generic", question="What is six times seven?", answer_by="vote", vote_weight=weight)
    graph = search.graph
    # Three chains answer 41 through results the model found unlikely (p = 0.05 each);
    # two answer 42 through results it would have written itself (p = 0.9, and one
    # call with no log-probability, which counts 1).
    unlikely = [_chain(graph, "41", [math.log(0.05)], seed) for seed in (1, 2, 3)]
    likely = [_chain(graph, "42", [math.log(0.9), None], 4), _chain(graph, "42", [math.log(0.9)], 5)]
    assert search.vote_weight(unlikely[0]) == (pytest.approx(0.05) if weight == "tool-likelihood" else 1.0)
    assert search.vote_weight(likely[0]) == (pytest.approx(0.9) if weight == "tool-likelihood" else 1.0)
    assert search.answer() == ("42" if weight == "tool-likelihood" else "41")  # 1.8 against 0.15, or 2 against 3


@pytest.mark.parametrize("weight", ["chains", "tool-likelihood"])
def test_tool_tokens_are_scored_only_when_a_vote_will_weigh_them(weight):
    # Scoring costs a logits row per tool token in LlamaBackend: asked for only when used.
    search, backend = make_search(task="math", question="Mia buys 3 pens at $4 each. How much does she spend?",
                                  answer_by="vote", vote_weight=weight)
    requests: list[GenerateRequest] = []
    run = backend.generate_with_tools
    backend.generate_with_tools = lambda batch, deadline: (requests.extend(batch), run(batch, deadline))[1]
    search.expand([ROOT], 4, mode="sample")
    assert requests and all(r.tools is not None and r.score_tools == (weight == "tool-likelihood") for r in requests)


def test_among_equal_values_the_answer_more_chains_reached_wins():
    # Without a judge every state is worth the same; the answer is then the one most
    # chains reached, not merely the first.
    search, _ = make_search(task="generic", question="What is six times seven?")
    graph = search.graph
    made = []
    for i, answer in enumerate(["41", "42", "42", "40", "42"]):
        node, _ = graph.add_child(ROOT, f"step {i}", {"steps": [f"step {i}"], "answer": answer}, f"step {i}", seed=i, created=float(i))
        graph.set_answer(node, answer)
        graph.set_status(node, "terminal")
        graph.add_value(node, 0.5, "value", None, float(i))
        made.append(node)
    assert search.answer() == "42"
    graph.add_value(made[3], 0.9, "value", None, 9.0)  # a judged value still comes first
    assert search.answer() == "40"


# -- the scripted backend the properties rest on ---------------------------------------------------------


def test_scripted_decoding_stops_at_the_deadline_and_uses_it_up():
    clock = WatchedClock()
    backend = ScriptedBackend(lambda prompt, request, seed: "one two three four five", clock=clock)
    deadline = Deadline(clock, at=0.035)
    [[sample]] = backend.generate([GenerateRequest("p", max_tokens=10)], deadline)
    # Three whole tokens fit; the fourth would end after the deadline, so it never starts.
    assert (sample.text, sample.completion_tokens, sample.finish_reason) == ("one two three", 3, "deadline")
    assert clock.t == deadline.at  # the cut-off model still used the time, exactly
    assert deadline.expired()
    assert backend.score_labels(["p"], [" sure"], deadline) == [{}]


def test_scripted_scoring_when_time_is_short_runs_out_the_clock():
    clock = WatchedClock()
    backend = ScriptedBackend(clock=clock, seconds_per_score=0.5)
    deadline = Deadline(clock, at=0.3)
    assert backend.score_labels(["p", "q"], [" sure", " no"], deadline) == [{}, {}]
    assert clock.t == 0.3 and backend.history == []
    free = Deadline(clock)
    assert backend.score_labels(["p"], [" sure", " no"], free) == [{" sure": -1.0986, " no": -1.0986}]
    assert clock.t == 0.8
