"""On the embedded model: a signal in the finish, a second Ctrl-C mid-call, and a
node budget that gives the same tree in two fresh processes."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import deliberate
from deliberate.backends.base import GenerateRequest
from deliberate.clock import Deadline
from deliberate.search import FINISH_ON_INTERRUPT

from helpers_real import THREADS, assert_trace_complete, cli_command, cli_env, open_model

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def backend():
    backend = open_model(n_ctx=4096, n_seq_max=16)
    yield backend
    backend.close()


def test_a_cancel_during_the_greedy_finish_ends_the_solve_within_one_second(backend, tmp_path) -> None:
    # 1 % of 60 s for exploring, the rest for the finish: the cancel comes at the
    # moment the finish begins, exactly as a signal handler would send it.
    caller = Deadline.after(None)
    sent: list[float] = []

    def on_event(event: dict) -> None:
        if event["type"] == "finish" and not sent:
            sent.append(time.monotonic())
            caller.cancel()

    result = deliberate.think(
        "Explain why the sky is blue, in ten careful steps.", task="generic", strategy="bfs", model=backend,
        think=60, reserve=0.99, deadline=caller, on_event=on_event, trace=tmp_path / "t.json",
    )
    returned = time.monotonic()
    assert sent, "the search never reached its finish"
    assert returned - sent[0] <= 1.0, f"returned {returned - sent[0]:.2f} s after the cancel"
    assert result.stats.stop_reason == "interrupted"
    assert result.stats.thinking_seconds < 10  # not the 60 s the finish could have had
    assert_trace_complete(json.loads((tmp_path / "t.json").read_text()))
    assert backend.live_sequences() == 0
    assert FINISH_ON_INTERRUPT < 1.0


class Interrupting:
    """Wraps the prefix cache's ``acquire`` to raise KeyboardInterrupt (a second Ctrl-C)
    once ``after`` ids have been handed out in this call."""

    def __init__(self, cache, after: int) -> None:
        self.cache, self.after, self.given = cache, after, 0
        self.original = cache.acquire

    def __call__(self):
        if self.given >= self.after:
            raise KeyboardInterrupt
        self.given += 1
        return self.original()


@pytest.mark.parametrize("after", [0, 1, 3])
@pytest.mark.parametrize("kind", ["generate", "score"])
def test_a_second_ctrl_c_while_taking_sequence_ids_leaks_none(backend, kind: str, after: int) -> None:
    hook = Interrupting(backend.cache, after)
    backend.cache.acquire = hook
    try:
        with pytest.raises(KeyboardInterrupt):
            if kind == "generate":
                backend.generate([GenerateRequest("Once upon a time", n=6, max_tokens=4, temperature=0.7)], Deadline.after(30))
            else:
                backend.score_labels([f"Numbers: {i} 4\nJudgement:" for i in range(6)], [" sure", " impossible"], Deadline.after(30))
    finally:
        backend.cache.acquire = hook.original
    assert hook.given == after
    assert backend.live_sequences() == 0 and not backend.cache.pinned
    # And the backend still works.
    [samples] = backend.generate([GenerateRequest("Once upon a time", n=2, max_tokens=3)], Deadline.after(30))
    assert len(samples) == 2


def solve_with_node_budget(tmp_path, name: str) -> dict:
    trace = tmp_path / f"{name}.json"
    done = subprocess.run(
        cli_command(
            "solve", "Use 4 9 10 13 to make 24.", "--think", "none", "--max-nodes", "30", "--seed", "7",
            "--exact", "--threads", str(THREADS), "--strategy", "bfs", "--trace", str(trace), "--quiet",
        ),
        capture_output=True, text=True, timeout=300, env=cli_env(), stdin=subprocess.DEVNULL,
    )
    assert done.returncode in (0, 3), done.stderr
    return json.loads(trace.read_text())


def shape(trace: dict) -> list[tuple]:
    """Everything about the tree but the clock: thoughts, states, parents, statuses, values."""
    nodes = []
    for node in trace["graph"]["nodes"]:
        values = [(v["source"], v["value"], json.dumps(v["detail"], sort_keys=True)) for v in node["values"]]
        nodes.append((node["id"], node["parent"], node["thought"], json.dumps(node["state"], sort_keys=True), node["status"], values, node["seed"]))
    return nodes


def test_a_node_budget_gives_the_same_tree_in_two_fresh_processes(tmp_path) -> None:
    """Two fresh processes, each ``--think none --max-nodes 30 --seed 7 --exact --threads N``.

    Exempt from the rule that tests never assert llama.cpp's exact numerics across
    runs: this one pins everything that moves them. The same build and machine, no
    weight repacking and fixed prefill chunks (``--exact``), a fixed thread count, and
    no time limit, so that no deadline changes what is asked or how it is batched.
    """
    first, second = solve_with_node_budget(tmp_path, "a"), solve_with_node_budget(tmp_path, "b")
    assert len(first["graph"]["nodes"]) == first["meta"]["stats"]["nodes"] <= 30
    assert shape(first) == shape(second)
    assert first["meta"]["answer"] == second["meta"]["answer"]
    assert first["meta"]["budget"]["think"] is None and first["meta"]["backend"]["exact_batching"] is True
