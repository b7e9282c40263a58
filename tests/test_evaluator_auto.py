"""``--evaluator auto``: the judge is asked only where its profile says it helps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import Game24Responder, WatchedClock, game24_scorer, think_guarded

from deliberate.backends.scripted import ScriptedBackend
from deliberate.models import model_hash
from deliberate.profiles import save_profile


def row(good: int, bad: int, auc: float, low: float, high: float) -> dict:
    return {"good": good, "bad": bad, "auc": auc, "low": low, "high": high}


def backend_with_file(tmp_path: Path) -> ScriptedBackend:
    backend = ScriptedBackend(Game24Responder(error_rate=0.0), scores=game24_scorer, clock=WatchedClock())
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF not really a model")
    backend.model = SimpleNamespace(path=model)  # what the trace keys a profile by
    return backend


def judged_depths(result) -> set[int]:
    graph = result.graph
    return {graph.depth(n) for n in graph if any(v["source"] == "value" for v in graph[n]["values"])}


def test_without_a_profile_auto_judges_everywhere_and_says_why(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DELIBERATE_PROFILES", str(tmp_path / "profiles.json"))
    result = think_guarded("4 9 10 13", backend_with_file(tmp_path), task="game24", strategy="bfs", think=20, seed=1,
                           task_options={"openings": "pair"})
    meta = result.trace["meta"]
    assert meta["config"]["evaluator"] == "auto"
    assert meta["evaluator"]["profile"] is None and "no judge profile" in meta["evaluator"]["why"]
    assert judged_depths(result) >= {1}
    assert all(d["judge"] for d in meta["evaluator"]["depths"].values())


def test_a_profile_at_chance_switches_the_judge_off_where_it_was_measured(tmp_path: Path, monkeypatch) -> None:
    profiles = tmp_path / "profiles.json"
    monkeypatch.setenv("DELIBERATE_PROFILES", str(profiles))
    backend = backend_with_file(tmp_path)
    entry = {
        "measured": "2026-12-01T00:00:00+00:00",
        "overall": row(200, 200, 0.53, 0.47, 0.59),  # chance: not worth asking
        "depths": {"2": row(60, 60, 0.80, 0.72, 0.87)},  # but at depth 2 it helps
    }
    save_profile(model_hash(backend.model.path), "game24", {"value": entry}, profiles)
    result = think_guarded("4 9 10 13", backend, task="game24", strategy="bfs", think=20, seed=1,
                           task_options={"openings": "pair"})
    meta = result.trace["meta"]
    assert meta["evaluator"]["profile"] == str(profiles)
    depths = meta["evaluator"]["depths"]
    assert depths["1"]["judge"] is False and "includes 0.5" in depths["1"]["why"]
    assert depths["2"]["judge"] is True and "above 0.5" in depths["2"]["why"]
    assert 1 not in judged_depths(result)
    # The other settings still judge wherever they are told to.
    plain = think_guarded("4 9 10 13", backend_with_file(tmp_path), task="game24", strategy="bfs", think=20, seed=1,
                          task_options={"openings": "pair"}, evaluator="value")
    assert 1 in judged_depths(plain) and "evaluator" not in plain.trace["meta"]


def test_an_unknown_evaluator_is_refused_before_any_model_loads() -> None:
    from deliberate import think
    from deliberate.errors import UsageError

    with pytest.raises(UsageError, match="'auto', 'value', 'vote' or 'none'"):
        think("4 9 10 13", evaluator="oracle", model="/nonexistent.gguf")
