"""One suite over every registered strategy, on scripted models and a fake clock.

Every strategy must stay inside its budget, leave a valid trace whose graph is a tree,
and give only answers the calculator confirms. The tree searches must also solve a
solvable puzzle when the judge is helpful, and each strategy's options must change
what it does in a way the trace shows.
"""

from __future__ import annotations

import dataclasses

import pytest

from conftest import (
    SOLVABLE,
    UNSOLVABLE,
    GenericResponder,
    assert_tree,
    game24_answer_ok,
    think_guarded,
)
from deliberate import strategies
from deliberate.graph import ThoughtGraph
from deliberate.trace import FORMAT, load_graph

EPSILON = 1e-9
STOP_REASONS = {"complete", "solved", "deadline", "max-nodes", "interrupted"}
TREE_SEARCHES = ["bfs", "dfs", "beam", "mcts"]



def check_trace(result, *, budget: float, strategy: str, task: str) -> ThoughtGraph:
    """Everything every run must satisfy; returns the graph restored from the trace."""
    trace = result.trace
    assert trace["format"] == FORMAT and set(trace) >= {"meta", "events", "graph"}
    meta = trace["meta"]
    assert (meta["strategy"], meta["task"]) == (strategy, task)
    assert meta["options"] == dataclasses.asdict(strategies.make(strategy, meta["options"]).options)
    assert meta["stop_reason"] == result.stats.stop_reason in STOP_REASONS
    assert meta["answer"] == result.answer
    assert result.stats.thinking_seconds <= budget + EPSILON
    events = trace["events"]
    times = [event["t"] for event in events]
    assert times == sorted(times) and times[-1] <= budget + EPSILON
    assert events[-1]["type"] == "answer"
    assert events[-1]["answer"] == result.answer and events[-1]["reason"] == result.stats.stop_reason
    assert events[-1]["node"] == meta["answer_node"]
    nodes = set(result.graph)
    for event in events:
        for key in ("node", "source", "target"):
            if isinstance(event.get(key), int):
                assert event[key] in nodes
        for node in event.get("nodes", []):
            assert node in nodes
    restored = load_graph(trace)
    assert dict(restored.g.nodes(data=True)) == dict(result.graph.g.nodes(data=True))
    assert sorted(restored.g.edges) == sorted(result.graph.g.edges)
    assert_tree(result.graph)
    assert result.stats.nodes == len(result.graph)
    return restored


# -- every strategy, Game of 24 ------------------------------------------------------------------


# A short budget stops every strategy early; a long one lets each run its course.
GAME24_RUNS = [pytest.param(name, 0.05, id=f"{name}-short") for name in strategies.names()] + [
    pytest.param(name, 3.0, id=f"{name}-long", marks=())
    for name in strategies.names()
]


@pytest.mark.parametrize(("name", "budget"), GAME24_RUNS)
def test_game24_run_stays_in_budget_and_leaves_a_valid_trace(name, budget, game24_backend, fake_clock):
    backend = game24_backend()
    result = think_guarded(SOLVABLE, backend, wall=5, task="game24", strategy=name, think=budget, seed=1)
    check_trace(result, budget=budget, strategy=name, task="game24")
    assert fake_clock.now() <= budget + EPSILON
    # With the verifier on, an answer is never a guess: the calculator agrees with it.
    assert result.answer is None or game24_answer_ok(result.answer, SOLVABLE)
    assert result.solved == (result.answer is not None)
    if result.stats.stop_reason == "deadline":
        assert result.stats.thinking_seconds == pytest.approx(budget)


@pytest.mark.parametrize("name", TREE_SEARCHES)
@pytest.mark.parametrize("seed", [1, 2])
def test_tree_searches_solve_a_solvable_puzzle_with_a_helpful_judge(name, seed, game24_backend):
    result = think_guarded(SOLVABLE, game24_backend(), task="game24", strategy=name, think=20, seed=seed)
    assert game24_answer_ok(result.answer, SOLVABLE), result.answer
    assert result.solved and result.stats.stop_reason == "solved"
    path = result.graph.path(result.trace["meta"]["answer_node"])
    assert len(path) == 4  # the question and three steps
    assert result.graph.status(path[-1]) == "solved"


@pytest.mark.parametrize("name", ["bfs", "dfs", "mcts"])
@pytest.mark.parametrize("openings", ["pair", "operation", "operand", "none"])
def test_tree_searches_solve_with_every_opening_style(name, openings, game24_backend):
    result = think_guarded(
        SOLVABLE, game24_backend(), task="game24", strategy=name, think=30, seed=3, task_options={"openings": openings}
    )
    assert game24_answer_ok(result.answer, SOLVABLE), result.answer
    assert result.trace["meta"]["task_options"] == {"openings": openings}


def test_bfs_solves_with_proposals_and_votes(game24_backend):
    result = think_guarded(SOLVABLE, game24_backend(), task="game24", strategy="bfs", think=30, seed=1, mode="propose", evaluator="vote")
    assert game24_answer_ok(result.answer, SOLVABLE)
    events = result.trace["events"]
    assert {e["mode"] for e in events if e["type"] == "expand"} == {"propose"}
    assert any(e["type"] == "evaluate" and e["source"] == "vote" for e in events)


@pytest.mark.parametrize("name", [n for n in strategies.names() if n != "self-consistency"])
def test_an_unsolvable_puzzle_gets_no_answer(name, game24_backend):
    result = think_guarded(UNSOLVABLE, game24_backend(), task="game24", strategy=name, think=5, seed=1)
    check_trace(result, budget=5, strategy=name, task="game24")
    assert result.answer is None and not result.solved
    assert result.graph.with_status("solved") == []
    for node in result.graph.with_status("failed"):
        assert not game24_answer_ok(result.graph[node]["answer"], UNSOLVABLE)


def test_cot_is_one_greedy_chain(game24_backend):
    result = think_guarded(UNSOLVABLE, game24_backend(), task="game24", strategy="cot", think=5, seed=1)
    assert result.stats.stop_reason == "complete"
    # Before any finishing, each step of the chain has exactly one child.
    first = [e for e in result.trace["events"] if e["type"] in ("expand", "finish")]
    chain = []
    for event in first:
        if event["type"] == "finish":
            break
        assert len(event["nodes"]) == 1 and len(event["children"][0]) <= 1
        chain.extend(event["children"][0])
    assert [result.graph.depth(n) for n in chain] == list(range(1, len(chain) + 1))


def test_cot_with_a_model_that_never_gives_a_step_has_no_answer(scripted):
    backend = scripted(lambda prompt, request, seed: " I am not sure what to do here.")
    result = think_guarded(SOLVABLE, backend, task="game24", strategy="cot", think=5, seed=1)
    assert result.answer is None and not result.solved
    assert result.stats.stop_reason == "complete"
    assert len(result.graph) == 1  # nothing valid was ever said
    assert any(kind == "generate" for kind, _ in backend.history)
    assert result.trace["events"][-1] == {"t": result.trace["events"][-1]["t"], "type": "answer", "node": None, "answer": None, "reason": "complete"}


# -- every strategy, a generic question -------------------------------------------------------------


@pytest.mark.parametrize("name", strategies.names())
def test_every_strategy_answers_a_generic_question(name, generic_backend, fake_clock):
    backend = generic_backend(answer="42", wrong="41", steps=2, accuracy=0.9)
    result = think_guarded("What is six times seven?", backend, wall=2, task="generic", strategy=name, think=4, seed=5)
    check_trace(result, budget=4, strategy=name, task="generic")
    assert result.answer in {"42", "41"}
    assert not result.solved  # the generic task cannot verify
    node = result.trace["meta"]["answer_node"]
    assert result.graph.status(node) == "terminal"
    assert result.graph[node]["state"]["steps"][-1] == f"Answer: {result.answer}"
    assert fake_clock.now() <= 4 + EPSILON


def test_self_consistency_takes_the_majority_answer(generic_backend):
    backend = generic_backend(answer="42", wrong="41", steps=1, variety=1000, accuracy=0.8)
    result = think_guarded("What is six times seven?", backend, task="generic", strategy="self-consistency", think=3, seed=2)
    answers = [result.graph[n]["answer"] for n in result.graph.with_status("terminal")]
    assert answers.count("42") > answers.count("41") > 0
    assert result.answer == "42"
    assert result.trace["meta"]["config"]["answer_by"] == "vote"
    assert result.trace["meta"]["config"]["vote_weight"] == "chains"


def test_self_consistency_can_weigh_chains_by_their_tool_results(generic_backend):
    # The scripted backend reports no log-probabilities, so every chain weighs 1 and the
    # majority still wins; the setting reaches the search and the trace.
    backend = generic_backend(answer="42", wrong="41", steps=1, variety=1000, accuracy=0.8)
    result = think_guarded("What is six times seven?", backend, task="generic", strategy="self-consistency",
                           think=3, seed=2, options={"weigh_tools": "true"})
    assert result.trace["meta"]["config"]["vote_weight"] == "tool-likelihood"
    assert result.answer == "42"


# -- options change behaviour ---------------------------------------------------------------------


def expand_events(result) -> list[dict]:
    """The strategy's own expansions: those before ``finish`` spends the reserve."""
    events = []
    for event in result.trace["events"]:
        if event["type"] == "finish":
            break
        if event["type"] == "expand":
            events.append(event)
    return events


def most_nodes_per_expand(result) -> int:
    return max(len(e["nodes"]) for e in expand_events(result))


def most_children_per_node(result) -> int:
    return max(len(group) for e in expand_events(result) for group in e["children"])


def run(game24_backend, strategy: str, options: dict | list[str], *, question: str = SOLVABLE, think: float = 5, **kwargs):
    return think_guarded(question, game24_backend(), task="game24", strategy=strategy, think=think, seed=4, options=options, **kwargs)


@pytest.mark.parametrize("breadth", [1, 3])
def test_bfs_breadth_bounds_the_states_expanded_together(breadth, game24_backend):
    result = run(game24_backend, "bfs", [f"breadth={breadth}"])  # as --opt passes it
    assert result.trace["meta"]["options"]["breadth"] == breadth
    assert most_nodes_per_expand(result) == breadth


@pytest.mark.parametrize(("name", "key"), [("bfs", "k"), ("dfs", "k"), ("mcts", "k"), ("beam", "k")])
def test_k_bounds_the_thoughts_per_state(name, key, game24_backend):
    few = run(game24_backend, name, {key: 2})
    many = run(game24_backend, name, {key: 12})
    assert most_children_per_node(few) <= 2
    assert most_children_per_node(many) > 2


@pytest.mark.parametrize("width", [1, 3])
def test_beam_width_bounds_the_beam(width, game24_backend):
    result = run(game24_backend, "beam", {"width": width, "k": 6})
    assert most_nodes_per_expand(result) == width


def test_dfs_threshold_prunes_weak_children(game24_backend):
    # Enumerated moves (pair openings) include weak ones, whatever the model would pick.
    strict = run(game24_backend, "dfs", {"threshold": 0.9}, task_options={"openings": "pair"})
    lenient = run(game24_backend, "dfs", {"threshold": 0.0}, task_options={"openings": "pair"})
    pruned = [e for e in strict.trace["events"] if e["type"] == "prune"]
    assert pruned and all(strict.graph.value(e["node"]) < 0.9 for e in pruned)
    assert [e for e in lenient.trace["events"] if e["type"] == "prune"] == []
    assert game24_answer_ok(strict.answer, SOLVABLE) and game24_answer_ok(lenient.answer, SOLVABLE)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_best_of_n_samples_n_chains(n, game24_backend):
    result = think_guarded(SOLVABLE, game24_backend(error_rate=0), task="game24", strategy="best-of-n", think=5, seed=4, options={"n": n})
    assert result.graph[0]["tries"] == n  # n first steps asked for, in one call
    assert 1 <= len(result.graph.children(0)) <= n
    assert len(expand_events(result)[0]["children"][0]) == len(result.graph.children(0))


def test_best_of_n_continues_every_chain(game24_backend):
    result = think_guarded(SOLVABLE, game24_backend(error_rate=0), task="game24", strategy="best-of-n", think=5, seed=4, options={"n": 8})
    continued = [c for c in result.graph.children(0) if result.graph.children(c)]
    assert len(continued) > 1


@pytest.mark.parametrize("chains", [1, 3, 8])
def test_self_consistency_max_chains_ends_the_run(chains, generic_backend):
    result = think_guarded("What is six times seven?", generic_backend(), task="generic", strategy="self-consistency", think=5, seed=4, options={"max_chains": chains})
    assert result.stats.stop_reason == "complete"
    assert result.graph[0]["tries"] == chains


def test_self_consistency_without_max_chains_uses_the_whole_budget(generic_backend):
    result = think_guarded("What is six times seven?", generic_backend(), task="generic", strategy="self-consistency", think=2, seed=4)
    assert result.stats.stop_reason == "deadline"
    assert result.stats.thinking_seconds == pytest.approx(2)


def test_cot_max_steps_stops_the_chain_early(generic_backend):
    full = think_guarded("What is six times seven?", generic_backend(steps=2), task="generic", strategy="cot", think=5, seed=4)
    short = think_guarded("What is six times seven?", generic_backend(steps=2), task="generic", strategy="cot", think=5, seed=4, options={"max_steps": 1})
    assert "finish" not in [e["type"] for e in full.trace["events"]]
    finish = [e for e in short.trace["events"] if e["type"] == "finish"]
    assert len(finish) == 1 and short.graph.depth(finish[0]["node"]) == 1
    assert full.answer == short.answer == "42"  # finishing greedily completes the chain


def test_strategy_temperatures_reach_the_model(generic_backend):
    seen: list[float] = []
    backend = generic_backend()
    respond = backend.respond

    def recording(prompt, request, seed):
        seen.append(request.temperature)
        return respond(prompt, request, seed)

    backend.respond = recording
    result = think_guarded("Why?", backend, task="generic", strategy="best-of-n", think=5, seed=4, options={"temperature": 0.3})
    assert result.answer is not None  # so no greedy finishing at temperature 0 was needed
    assert seen and set(seen) == {0.3}
    seen.clear()
    think_guarded("Why?", backend, task="generic", strategy="cot", think=5, seed=4)
    assert seen and set(seen) == {0.0}


def test_generic_responder_is_deterministic_per_seed():
    """The scripted model itself: same seed, same text; the suite's determinism rests on it."""
    responder = GenericResponder()
    prompt = "Question: q\nStep: x\n"
    assert responder(prompt, None, 11) == responder(prompt, None, 11)  # type: ignore[arg-type]
    assert len({responder(prompt, None, s) for s in range(20)}) > 1  # type: ignore[arg-type]
