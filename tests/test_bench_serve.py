"""``deliberate bench serve``: the rounds and their median (no model), and the real CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deliberate.benchmarks import serve_bench

from helpers_real import read_json, run_cli


def mode_result(mode: str, nodes_per_second: float, *, shares=(0.25, 0.25, 0.25, 0.25), live: int = 0, errors=(),
                thinking=(30.0, 30.0, 30.0, 30.0)) -> dict[str, Any]:  # fmt: skip
    return {
        "mode": mode, "wall_seconds": 30.0, "nodes": [1, 1, 1, 1], "nodes_per_second": nodes_per_second,
        "tokens_per_second": 100.0, "shares": list(shares), "stops": ["deadline"] * 4, "errors": list(errors),
        "live_sequences_after": live, "thinking_seconds": list(thinking),
    }  # fmt: skip


def a_round(shared: float, lock: float, **shared_fields: Any) -> dict[str, Any]:
    return {"first": "shared", "shared": mode_result("shared", shared, **shared_fields), "lock": mode_result("lock", lock),
            "speedup": round(shared / lock, 2)}  # fmt: skip


def test_the_targets_are_judged_on_the_median_round() -> None:
    rounds = [a_round(7.0, 7.9), a_round(7.7, 5.8), a_round(7.5, 6.0)]  # 0.89x, 1.33x, 1.25x
    result = serve_bench.summarize(rounds, think=30.0, puzzles=serve_bench.PUZZLES)
    assert result["speedups"] == [0.89, 1.25, 1.33]
    assert result["speedup"] == 1.25 and result["targets"]["speedup_at_least_1.2"]
    assert result["shared"] is rounds[2]["shared"] and result["lock"] is rounds[2]["lock"]  # the median round
    even = serve_bench.summarize(rounds[:2], think=30.0, puzzles=serve_bench.PUZZLES)
    assert even["speedup"] == 1.11 and not even["targets"]["speedup_at_least_1.2"]


def test_every_round_must_share_fairly_fail_nothing_and_free_every_sequence() -> None:
    good = a_round(8.0, 6.0)
    assert all(serve_bench.summarize([good, good], think=30.0, puzzles=serve_bench.PUZZLES)["targets"].values())
    unfair = serve_bench.summarize([good, a_round(8.0, 6.0, shares=(0.7, 0.1, 0.1, 0.1))], think=30.0, puzzles=serve_bench.PUZZLES)
    assert not unfair["targets"]["each_share_at_least_0.15"]
    leaky = serve_bench.summarize([a_round(8.0, 6.0, live=2), good], think=30.0, puzzles=serve_bench.PUZZLES)
    assert not leaky["targets"]["sequences_freed"]
    short = serve_bench.summarize([a_round(8.0, 6.0, errors=["BackendError: no free sequence ids"])], think=30.0, puzzles=serve_bench.PUZZLES)
    assert not short["targets"]["no_sequence_id_failures"]


def test_the_latest_search_of_any_round_is_reported_past_its_budget() -> None:
    on_time = a_round(8.0, 6.0)
    late = a_round(8.0, 6.0, thinking=(30.0, 30.02, 31.25, 29.9))
    assert serve_bench.summarize([on_time], think=30.0, puzzles=serve_bench.PUZZLES)["most_seconds_past_budget"] == 0.0
    result = serve_bench.summarize([on_time, late], think=30.0, puzzles=serve_bench.PUZZLES)
    assert result["most_seconds_past_budget"] == 1.25
    assert "1.250 s past its budget" in serve_bench.report(result)


def test_rounds_alternate_which_mode_goes_first_and_use_fresh_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(mode: str, model_path: str, *, think: float, n_threads: Any, puzzles: Any, seed: int = 0) -> dict[str, Any]:
        calls.append((mode, seed))
        return mode_result(mode, 8.0 if mode == "shared" else 6.0)

    monkeypatch.setattr(serve_bench, "run_mode", fake_run)
    result = serve_bench.measure("model.gguf", think=1.0, repeat=3)
    assert calls == [("shared", 0), ("lock", 0), ("lock", 4), ("shared", 4), ("shared", 8), ("lock", 8)]
    assert [r["first"] for r in result["rounds"]] == ["shared", "lock", "shared"]
    assert result["speedups"] == [1.33, 1.33, 1.33]
    assert "3 rounds, shared / lock per round: 1.33x 1.33x 1.33x" in serve_bench.report(result)


def test_a_server_url_is_refused_before_anything_loads() -> None:
    run = run_cli("bench", "serve", "--model", "http://127.0.0.1:9/v1")
    assert run.code == 2 and "give a GGUF path" in run.stderr


@pytest.mark.model
def test_bench_serve_through_the_cli(tmp_path) -> None:
    out = tmp_path / "serve.json"
    run = run_cli("bench", "serve", "--think", "5s", "--threads", "2", "--json", "--out", str(out), timeout=300)
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result == read_json(out)
    [only] = result["rounds"]
    for mode in ("shared", "lock"):
        figures = only[mode]
        assert figures["errors"] == [] and figures["live_sequences_after"] == 0
        # On a cold, busy machine one search may spend its few seconds on its first
        # prefill and make no node; the four together always make some.
        assert len(figures["nodes"]) == 4 and sum(figures["nodes"]) > 0 and figures["nodes_per_second"] > 0
        assert set(figures["stops"]) <= {"deadline", "solved", "complete"}
        assert sum(figures["shares"]) == pytest.approx(1.0, abs=0.01) or sum(figures["shares"]) == 0
    assert result["speedup"] == only["speedup"] > 0
    assert result["targets"]["sequences_freed"] and result["targets"]["no_sequence_id_failures"]
