"""Traces: written atomically, read back exactly, rendered, exported, and resumed."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import networkx as nx
import pytest

from conftest import SOLVABLE, Game24Responder, WatchedClock, game24_scorer, think_guarded
from deliberate import render
from deliberate.backends.scripted import ScriptedBackend
from deliberate.errors import TraceError, UsageError
from deliberate.trace import FORMAT, answer_path, check_writable, load_graph, read_trace, write_json_atomic, write_trace

IDENTITY = ("thought", "state", "key", "depth", "parent", "seed", "created", "tokens", "answer", "rollout")


@pytest.fixture
def solved_trace(tmp_path: Path, game24_backend) -> tuple[Path, object]:
    path = tmp_path / "run.json"
    result = think_guarded(SOLVABLE, game24_backend(), task="game24", strategy="bfs", think=20, seed=1, trace=path)
    assert result.solved
    return path, result


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- writing and reading ----------------------------------------------------------------------------


def test_written_trace_reads_back_equal(solved_trace):
    path, result = solved_trace
    trace = read_trace(path)
    assert trace == result.trace
    assert trace["format"] == FORMAT
    assert trace["meta"]["answer"] == result.answer
    assert leftovers(path.parent) == []


def test_load_graph_gives_an_equal_graph(solved_trace):
    path, result = solved_trace
    graph = load_graph(read_trace(path))
    assert dict(graph.g.nodes(data=True)) == dict(result.graph.g.nodes(data=True))
    assert sorted(graph.g.edges) == sorted(result.graph.g.edges)
    assert graph.question == SOLVABLE
    assert answer_path(read_trace(path), graph) == result.graph.path(result.trace["meta"]["answer_node"])


def test_a_failed_write_leaves_the_old_trace_and_no_temporary_file(tmp_path):
    path = tmp_path / "trace.json"
    write_json_atomic(path, {"version": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"version": 2, "oops": object()})  # fails halfway through json.dump
    assert json.loads(path.read_text()) == {"version": 1}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_write_interrupted_before_the_rename_changes_nothing(tmp_path, monkeypatch, failure):
    path = tmp_path / "trace.json"
    write_json_atomic(path, {"version": 1})

    def failing_fsync(fd: int) -> None:
        raise failure

    monkeypatch.setattr(os, "fsync", failing_fsync)
    expected = TraceError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as caught:
        write_json_atomic(path, {"version": 2})
    if expected is TraceError:
        assert "No space left on device" in str(caught.value) and str(path) in str(caught.value)
    assert json.loads(path.read_text()) == {"version": 1}
    assert leftovers(tmp_path) == []


def test_writing_into_a_missing_folder_is_a_trace_error(tmp_path):
    with pytest.raises(TraceError, match="cannot write trace"):
        write_trace(tmp_path / "missing" / "t.json", {"format": FORMAT})


def test_check_writable_fails_before_thinking(tmp_path):
    assert check_writable(tmp_path / "t.json") == tmp_path / "t.json"
    with pytest.raises(UsageError, match="does not exist"):
        check_writable(tmp_path / "missing" / "t.json")
    with pytest.raises(UsageError, match="is a directory"):
        check_writable(tmp_path)


def test_think_with_an_unwritable_trace_path_never_calls_the_model(tmp_path, game24_backend):
    backend = game24_backend()
    with pytest.raises(UsageError):
        think_guarded(SOLVABLE, backend, task="game24", strategy="bfs", think=5, trace=tmp_path / "no" / "t.json")
    assert backend.history == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ('{"format": "something-else/1"}', "not a deliberate trace"),
        ("[1, 2]", "not a deliberate trace"),
        (json.dumps({"format": FORMAT, "meta": {}, "events": []}), "'graph'"),
    ],
)
def test_unreadable_traces_are_trace_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TraceError, match=message):
        read_trace(path)


def test_a_broken_graph_is_a_trace_error():
    with pytest.raises(TraceError, match="graph"):
        load_graph({"graph": {"nodes": [{"no id": 1}], "edges": []}})


# -- showing and exporting ----------------------------------------------------------------------------


def test_trace_show_draws_the_answer_path(solved_trace, capsys):
    path, result = solved_trace
    render.show(path)
    out = capsys.readouterr().out
    graph = result.graph
    for node in graph.path(result.trace["meta"]["answer_node"])[1:]:
        assert graph[node]["thought"] in out
        assert f"#{node} " in out
    assert f"answer: {result.answer}" in out
    assert SOLVABLE in out and "stop: solved" in out


def test_trace_show_max_depth_hides_deeper_nodes(solved_trace, capsys):
    path, result = solved_trace
    render.show(path, max_depth=1)
    out = capsys.readouterr().out
    graph = result.graph
    for node in graph:
        shown = f"#{node} " in out
        assert shown == (1 <= graph.depth(node) <= 1), node


def test_graphml_export_parses_with_networkx(solved_trace, tmp_path):
    path, result = solved_trace
    out = tmp_path / "graph.graphml"
    render.show(path, format="graphml", out=out)
    graph = nx.read_graphml(out)
    assert graph.is_directed()
    assert sorted(int(n) for n in graph.nodes) == sorted(result.graph)
    assert sorted((int(a), int(b)) for a, b in graph.edges) == sorted(result.graph.g.edges)
    for node, attrs in graph.nodes(data=True):
        original = result.graph[int(node)]
        assert attrs["thought"] == original["thought"]
        assert attrs["status"] == original["status"]
        assert json.loads(attrs["state"]) == original["state"]  # structured values become JSON text
    assert graph.graph["question"] == SOLVABLE


def test_json_export_is_the_trace(solved_trace, tmp_path):
    path, result = solved_trace
    out = tmp_path / "copy.json"
    render.show(path, format="json", out=out)
    assert json.loads(out.read_text()) == result.trace


def test_unknown_export_format_is_a_usage_error(solved_trace):
    path, _ = solved_trace
    with pytest.raises(UsageError, match="graphml"):
        render.show(path, format="png")


# -- resuming ---------------------------------------------------------------------------------------


def fresh_backend() -> ScriptedBackend:
    return ScriptedBackend(Game24Responder(), scores=game24_scorer, clock=WatchedClock())


def test_resume_keeps_every_old_node_and_does_not_ask_for_it_again(tmp_path):
    path = tmp_path / "first.json"
    first_backend = fresh_backend()
    first = think_guarded(SOLVABLE, first_backend, task="game24", strategy="bfs", think=None, max_nodes=20, seed=1, trace=path)
    assert first.stats.stop_reason == "max-nodes" and first.answer is None
    old = load_graph(read_trace(path))

    second_backend = fresh_backend()
    second = think_guarded(None, second_backend, think=None, max_nodes=80, resume=path, trace=tmp_path / "second.json")
    meta = second.trace["meta"]
    assert (meta["question"], meta["task"], meta["strategy"], meta["seed"]) == (SOLVABLE, "game24", "bfs", 1)
    assert len(second.graph) > len(old)
    for node in old:
        for field in IDENTITY:
            assert second.graph[node][field] == old[node][field], (node, field)
        assert second.graph[node]["values"][: len(old[node]["values"])] == old[node]["values"]
    assert set(old.g.edges) <= set(second.graph.g.edges)
    # Nothing already in the graph was asked for again: not the root's steps, not any judgement.
    root_prompt = f"Input: {' '.join(old[0]['state']['left'])}\nPossible next steps:\n"
    assert not any(root_prompt in prompt for kind, prompt in second_backend.history if kind == "generate")
    old_scores = {prompt for kind, prompt in first_backend.history if kind == "score"}
    assert not old_scores & {prompt for kind, prompt in second_backend.history if kind == "score"}
    # The event log continues the old one, and thinking time adds up.
    assert second.trace["events"][: len(first.trace["events"])] == first.trace["events"]
    assert second.stats.thinking_seconds >= first.stats.thinking_seconds
    assert all(e["t"] >= first.stats.thinking_seconds for e in second.trace["events"][len(first.trace["events"]) :])


def test_resuming_a_finished_chain_asks_the_model_nothing(tmp_path, generic_backend):
    path = tmp_path / "chain.json"
    first = think_guarded("What is six times seven?", generic_backend(steps=3, accuracy=1.0), task="generic", strategy="cot", think=5, seed=2, trace=path)
    assert first.answer == "42"
    backend = generic_backend(steps=3, accuracy=1.0)
    again = think_guarded(None, backend, think=5, resume=path)
    assert again.answer == first.answer
    assert [kind for kind, _ in backend.history] == []


def test_resume_accepts_a_trace_dict_and_more_time(game24_backend):
    first = think_guarded(SOLVABLE, game24_backend(), task="game24", strategy="mcts", think=0.05, seed=3)
    assert first.stats.stop_reason == "deadline"
    again = think_guarded(None, game24_backend(), think=30, resume=first.trace)
    assert set(first.graph) <= set(again.graph)
    assert again.stats.thinking_seconds <= first.stats.thinking_seconds + 30 + 1e-4
    assert again.solved
