"""The thought graph: a tree rooted at the question, with merged states and one value each."""

from __future__ import annotations

import json

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_tree
from deliberate.graph import ROOT, STATUSES, ThoughtGraph, settle_value


def new_graph() -> ThoughtGraph:
    return ThoughtGraph("Use 4 9 10 13 to make 24.", {"left": ["4", "9", "10", "13"]}, "4 9 10 13", seed=7)


def child(graph: ThoughtGraph, parent: int, key: str, thought: str | None = None) -> tuple[int, bool]:
    return graph.add_child(parent, thought or f"-> {key}", {"left": key.split()}, key, seed=len(graph), created=0.5)


def test_root_is_the_question():
    graph = new_graph()
    assert len(graph) == 1
    assert graph.question == "Use 4 9 10 13 to make 24."
    assert graph.parent(ROOT) is None and graph.depth(ROOT) == 0
    assert graph.status(ROOT) == "open" and graph.value(ROOT) is None
    assert graph[ROOT]["seed"] == 7 and graph[ROOT]["thought"] == ""
    assert graph.node_for_key("4 9 10 13") == ROOT


def test_add_child_links_parent_depth_and_path():
    graph = new_graph()
    a, merged_a = child(graph, ROOT, "9 13 40")
    b, merged_b = child(graph, a, "40 117")
    c, _ = child(graph, ROOT, "10 13 36")
    assert (merged_a, merged_b) == (False, False)
    assert (a, b, c) == (1, 2, 3)  # ids are dense, in creation order
    assert graph.children(ROOT) == [a, c]
    assert graph.children(a) == [b]
    assert graph.parent(b) == a and graph.depth(b) == 2
    assert graph.path(b) == [ROOT, a, b]
    assert list(graph.ancestors_and_self(b)) == [b, a, ROOT]
    assert graph[b]["thought"] == "-> 40 117" and graph[b]["state"] == {"left": ["40", "117"]}
    assert sorted(graph) == [0, 1, 2, 3]
    assert_tree(graph)


def test_tokens_recorded_on_new_child():
    graph = new_graph()
    node, _ = graph.add_child(ROOT, "t", {}, "k", seed=1, created=0.25, tokens=12)
    assert graph[node]["tokens"] == 12 and graph[node]["created"] == 0.25 and graph[node]["seed"] == 1


def test_identical_state_merges_into_one_node_that_shares_its_value():
    graph = new_graph()
    a, _ = child(graph, ROOT, "9 10 17", "4 + 13 = 17")
    b, _ = child(graph, ROOT, "4 10 22", "9 + 13 = 22")
    graph.add_value(a, 0.75, "value")
    # "13 + 4" from the root and a longer route both reach the state "9 10 17".
    again, merged = child(graph, ROOT, "9 10 17", "13 + 4 = 17")
    deeper, _ = child(graph, b, "10 13 4", "...")
    same, merged_deeper = child(graph, deeper, "9 10 17", "another way")
    assert merged and merged_deeper
    assert again == same == a
    assert len(graph) == 4  # no node was added for either alias
    assert graph[a]["aliases"] == [[ROOT, "13 + 4 = 17"], [deeper, "another way"]]
    assert graph.value(again) == 0.75
    assert graph.parent(a) == ROOT  # the first route stays the tree edge
    assert_tree(graph)


def test_merge_into_the_root_state_does_not_make_a_cycle():
    graph = new_graph()
    node, merged = child(graph, ROOT, "4 9 10 13")
    assert merged and node == ROOT
    assert_tree(graph)


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_can_be_set(status):
    graph = new_graph()
    node, _ = child(graph, ROOT, "a")
    graph.set_status(node, status)
    assert graph.status(node) == status
    assert graph.with_status(status) == ([ROOT] if status == "open" else []) + [node]


def test_unknown_status_and_value_source_are_refused():
    graph = new_graph()
    with pytest.raises(ValueError, match="status"):
        graph.set_status(ROOT, "sleeping")
    with pytest.raises(ValueError, match="source"):
        graph.add_value(ROOT, 1.0, "gut feeling")
    assert graph.status(ROOT) == "open" and graph[ROOT]["values"] == []


def test_with_status_filters_several_statuses():
    graph = new_graph()
    ids = [child(graph, ROOT, f"k{i}")[0] for i in range(4)]
    graph.set_status(ids[0], "pruned")
    graph.set_status(ids[1], "solved")
    graph.set_status(ids[2], "failed")
    assert graph.with_status("solved", "failed") == [ids[1], ids[2]]
    assert graph.with_status("open") == [ROOT, ids[3]]


def test_value_averages_model_judgements_and_a_verifier_overrides():
    graph = new_graph()
    node, _ = child(graph, ROOT, "a")
    graph.add_value(node, 0.2, "value", {"sure": 0.1}, t=1.23456)
    graph.add_value(node, 0.6, "vote")
    assert graph.value(node) == pytest.approx(0.4)
    graph.add_value(node, 0.0, "verifier")
    assert graph.value(node) == 0.0
    graph.add_value(node, 1.0, "value")
    assert graph.value(node) == 0.0  # the verifier's word is final
    assert graph[node]["values"][0] == {"value": 0.2, "source": "value", "detail": {"sure": 0.1}, "t": 1.2346}


def test_settle_value():
    assert settle_value([]) is None
    assert settle_value([{"value": 1.0, "source": "rollout"}, {"value": 0.0, "source": "value"}]) == 0.5
    assert settle_value([{"value": 0.0, "source": "verifier"}, {"value": 1.0, "source": "verifier"}]) == 1.0


def sample_graph() -> ThoughtGraph:
    graph = new_graph()
    a, _ = child(graph, ROOT, "9 13 40")
    b, _ = child(graph, a, "40 117")
    c, _ = child(graph, b, "157")
    child(graph, ROOT, "9 13 40", "merged")
    graph.add_value(a, 0.5, "value", {"sure": 0.5})
    graph.set_status(c, "failed")
    graph[c]["answer"] = "((4 * 10) + (9 * 13)) = 157"
    graph.set_status(ROOT, "expanded")
    return graph


def node_link_equal(one: ThoughtGraph, two: ThoughtGraph) -> None:
    assert dict(one.g.nodes(data=True)) == dict(two.g.nodes(data=True))
    assert sorted(one.g.edges) == sorted(two.g.edges)
    assert one.g.graph == two.g.graph


def test_node_link_round_trip_gives_an_equal_graph():
    graph = sample_graph()
    data = json.loads(json.dumps(graph.to_data()))  # as a trace stores it
    restored = ThoughtGraph.from_data(data)
    node_link_equal(graph, restored)
    assert restored.question == graph.question
    assert nx.utils.graphs_equal(graph.g, restored.g)
    # The key index is rebuilt, so merging keeps working after a restore.
    node, merged = child(restored, ROOT, "40 117")
    assert merged and node == 2
    fresh, merged = child(restored, 2, "new state")
    assert not merged and fresh == len(graph)


# -- random building sequences ---------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400),  # which existing node is the parent
        st.integers(min_value=0, max_value=30),  # the state reached: few keys, so many merges
        st.sampled_from([None, *STATUSES]),
        st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_random_add_and_merge_keep_a_tree_rooted_at_the_question(ops):
    graph = new_graph()
    judged: dict[str, list[float]] = {}
    for pick, state, status, value in ops:
        parent = pick % len(graph)
        key = f"state {state}"
        before = len(graph)
        node, merged = child(graph, parent, key)
        assert merged == (before == len(graph))
        assert graph[node]["key"] == key and graph.node_for_key(key) == node
        if value is not None:
            graph.add_value(node, value, "value")
            judged.setdefault(key, []).append(value)
        if status is not None:
            graph.set_status(node, status)
    assert_tree(graph)
    # One node per state, so every judgement of a state, by whatever route, is on one node.
    keys = [attrs["key"] for _, attrs in graph.g.nodes(data=True)]
    assert len(keys) == len(set(keys))
    for key, values in judged.items():
        assert graph.value(graph.node_for_key(key)) == pytest.approx(sum(values) / len(values))
    restored = ThoughtGraph.from_data(json.loads(json.dumps(graph.to_data())))
    node_link_equal(graph, restored)


# -- declared node fields -----------------------------------------------------------------


def test_every_node_has_every_declared_field_and_only_those(game24_backend):
    from typing import get_type_hints

    from conftest import SOLVABLE, think_guarded
    from deliberate.graph import NodeData

    declared = set(get_type_hints(NodeData))
    for strategy in ("bfs", "mcts", "dfs", "beam"):
        result = think_guarded(SOLVABLE, game24_backend(), task="game24", strategy=strategy, think=10, seed=3)
        for node in result.graph:
            assert set(result.graph[node]) == declared, (strategy, node)


def test_graph_methods_are_the_only_writers(game24_backend):
    graph = new_graph()
    a, _ = child(graph, ROOT, "9 13 40")
    b, _ = child(graph, a, "40 117")
    graph.record_try(a, 8)
    assert graph.record_ask(a, "9 *") == 0 and graph.record_ask(a, "9 *") == 1
    graph.record_move(a, "9 * 13")
    graph.record_move(a, "9 * 13")  # once only
    graph.record_expansion(a, found_new=False)
    graph.record_expansion(a, found_new=False)
    assert (graph[a]["tries"], graph[a]["asks"], graph[a]["moves_done"]) == (8, {"9 *": 2}, ["9 * 13"])
    assert (graph[a]["expansions"], graph[a]["stale"]) == (2, 2)
    graph.record_expansion(a, found_new=True)
    assert graph[a]["stale"] == 0
    graph.backup(b, 1.0)
    graph.backup(b, 0.0, visits=-1)  # a virtual loss taken back
    graph.backup(b, 0.5)
    assert [(graph[n]["visits"], graph[n]["value_sum"]) for n in (ROOT, a, b)] == [(1, 1.5)] * 3
    graph.set_pruned(b, "low value")
    assert graph[b]["pruned"] == {"reason": "low value", "dead": False}
    graph.set_pruned(b, None)
    assert graph[b]["pruned"] is None


def test_strategies_and_the_search_never_write_node_dicts():
    """Nodes change through graph methods only: no ``graph[n]["field"] = ...`` (or
    ``+=``, ``.append``) in a strategy or the search."""
    import re
    from pathlib import Path

    import deliberate.search
    import deliberate.strategies

    sources = sorted(Path(deliberate.search.__file__).parent.glob("*.py"))
    sources += sorted(Path(deliberate.strategies.__path__[0]).glob("*.py"))
    write = re.compile(r"(?:graph\[[^\]]+\]|attrs)\[\"\w+\"\]\s*(?:[-+*/]?=(?!=)|\.(?:append|extend|pop|update|setdefault)\()")
    offenders = [f"{p.name}: {line.strip()}" for p in sources for line in p.read_text().splitlines() if write.search(line)]
    assert offenders == []


def test_a_format_1_trace_loads_with_every_field_at_its_start_value():
    """docs/viewer-trace.json was written in format 1, before origin, calls and stale."""
    from pathlib import Path
    from typing import get_type_hints

    from deliberate.graph import NodeData
    from deliberate.trace import load_graph, read_trace

    path = Path(__file__).resolve().parent.parent / "docs" / "viewer-trace.json"
    trace = read_trace(path)
    assert trace["format"] == "deliberate-trace/1"
    raw = trace["graph"]["nodes"][1]
    assert "origin" not in raw and "calls" not in raw and "stale" not in raw
    graph = load_graph(trace)
    assert all(set(graph[n]) == set(get_type_hints(NodeData)) for n in graph)
    assert graph[1]["origin"] == "model" and graph[ROOT]["origin"] is None
    assert graph[1]["calls"] == [] and graph[1]["stale"] == 0
    assert graph[1]["tries"] == raw["tries"] and graph[1]["moves_done"] == raw["moves_done"]


def test_answers_count_every_chain_that_reached_them_and_leave_out_rejected_ones():
    graph = new_graph()
    finals = {}
    for key, answer, status in [("a", "12", "terminal"), ("b", "7", "terminal"), ("c", "7", "solved"),
                                ("d", "99", "failed"), ("e", None, "terminal"), ("f", "12", "open")]:
        node, _ = child(graph, ROOT, key)
        graph.set_answer(node, answer)
        graph.set_status(node, status)
        finals[key] = node
    assert graph.answers() == {"12": 1, "7": 2}  # "99" was rejected; "f" is no final state
    for parent in (finals["b"], finals["c"]):  # two later chains write their way to "a"
        again, merged = child(graph, parent, "a")
        assert merged and again == finals["a"]
    assert graph.chains(finals["a"]) == 3 and graph.chains(finals["b"]) == 1
    assert list(graph.answers().items()) == [("12", 3), ("7", 2)]  # most chains first


def test_answers_that_tie_keep_the_order_they_were_first_reached_in():
    graph = new_graph()
    for key, answer in [("a", "5"), ("b", "40"), ("c", "5"), ("d", "40"), ("e", "3")]:
        node, _ = child(graph, ROOT, key)
        graph.set_answer(node, answer)
        graph.set_status(node, "terminal")
    assert list(graph.answers().items()) == [("5", 2), ("40", 2), ("3", 1)]
