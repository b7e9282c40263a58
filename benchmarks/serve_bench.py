"""``deliberate bench serve``: what do concurrent searches gain from sharing decode steps?

Four ``bfs`` Game of 24 searches run at once on one model, twice:

- ``shared``: through ``SharedBackend``, as ``deliberate serve`` runs them: the calls
  pending at a moment are served by one inner call, so one ``llama_decode`` step
  advances branches of every search;
- ``lock``: behind one lock, one model call at a time, as a server without batching
  would run them.

The puzzles have no solution and four different numbers, so no search can end early
(solved, or every move tried): each thinks for the whole budget, and the figures
compare equal wall time. Each mode gets a freshly loaded model, so neither inherits
the other's prefix cache. Reported: nodes per second over all searches, and each
search's share of the nodes made while all of them ran.

One round of both modes is a noisy figure: on a 2-core machine the same command gave
0.88x and 1.31x an hour apart, since which states a search reaches depends on the
order its calls are served in. ``repeat`` runs several rounds, alternating which mode
goes first and with fresh seeds per round (the same seeds for both modes of a
round), and the targets are judged on the median round.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from deliberate.backends.base import GenerateRequest, Sample
from deliberate.clock import Deadline

PUZZLES = ("1 6 7 8", "3 4 6 7", "2 5 7 12", "4 6 8 11")  # none makes 24


class LockedBackend:
    """The baseline: any number of threads, one model call at a time."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stats = inner.stats
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        with self._lock:
            return self.inner.generate(requests, deadline)

    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False) -> list[dict[str, float]]:
        with self._lock:
            return self.inner.score_labels(prompts, labels, deadline, special=special)

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return self.inner.format_chat(messages)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def live_sequences(self) -> int:
        return self.inner.live_sequences()

    def close(self) -> None:
        self.inner.close()


def run_mode(mode: str, model_path: str, *, think: float, n_threads: int | None, puzzles: Sequence[str],
             seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Run one search per puzzle at once in ``mode`` ("shared" or "lock"); search i has
    seed ``seed + i``."""
    import deliberate
    from deliberate.backends.llama import LlamaBackend
    from deliberate.backends.shared import SharedBackend

    inner = LlamaBackend(model_path, **({"n_threads": n_threads} if n_threads else {}))
    backend: Any = SharedBackend(inner) if mode == "shared" else LockedBackend(inner)
    searches: list[dict[str, Any]] = [{"puzzle": p, "made": []} for p in puzzles]

    def one(i: int) -> None:
        record = searches[i]

        def seen(event: dict[str, Any]) -> None:
            if event["type"] == "expand":
                record["made"].append((time.monotonic(), sum(len(group) for group in event["children"])))

        record["start"] = time.monotonic()
        try:
            result = deliberate.think(f"Use {record['puzzle']} to make 24.", model=backend, think=think,
                                      strategy="bfs", seed=seed + i, on_event=seen)  # fmt: skip
            record.update(nodes=result.stats.nodes, stop=result.stats.stop_reason, tokens=result.stats.tokens,
                          thinking=result.stats.thinking_seconds)  # fmt: skip
        except Exception as error:  # reported, not hidden: a failure is a result here
            record.update(nodes=0, stop="error", error=f"{type(error).__name__}: {error}")
        record["end"] = time.monotonic()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(puzzles))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        live_after = backend.live_sequences()
    finally:
        backend.close()
    return _summarize(mode, searches, live_after)


def _summarize(mode: str, searches: list[dict[str, Any]], live_after: int) -> dict[str, Any]:
    begin, finish = min(s["start"] for s in searches), max(s["end"] for s in searches)
    # The window in which every search was running: the shares are counted there.
    both_from, both_to = max(s["start"] for s in searches), min(s["end"] for s in searches)
    made = [sum(n for t, n in s["made"]) for s in searches]
    during = [sum(n for t, n in s["made"] if both_from <= t <= both_to) for s in searches]
    total_during = sum(during) or 1
    return {
        "mode": mode,
        "wall_seconds": round(finish - begin, 2),
        "nodes": made,
        "nodes_per_second": round(sum(made) / max(finish - begin, 1e-9), 2),
        "tokens_per_second": round(sum(s.get("tokens", 0) for s in searches) / max(finish - begin, 1e-9), 1),
        "shares": [round(d / total_during, 3) for d in during],
        "stops": [s["stop"] for s in searches],
        "thinking_seconds": [s.get("thinking", 0.0) for s in searches],
        "errors": [s["error"] for s in searches if "error" in s],
        "live_sequences_after": live_after,
    }


def measure(model_path: str, *, think: float = 30.0, n_threads: int | None = None,
            puzzles: Sequence[str] = PUZZLES, repeat: int = 1) -> dict[str, Any]:  # fmt: skip
    """Both modes on the same puzzles, ``repeat`` rounds, and how they compare."""
    rounds = []
    for k in range(repeat):
        order = ("shared", "lock") if k % 2 == 0 else ("lock", "shared")
        ran = {mode: run_mode(mode, model_path, think=think, n_threads=n_threads, puzzles=puzzles,
                              seed=k * len(puzzles)) for mode in order}  # fmt: skip
        speedup = ran["shared"]["nodes_per_second"] / max(ran["lock"]["nodes_per_second"], 1e-9)
        rounds.append({"first": order[0], "shared": ran["shared"], "lock": ran["lock"], "speedup": round(speedup, 2)})
    return summarize(rounds, think=think, puzzles=puzzles)


def summarize(rounds: Sequence[dict[str, Any]], *, think: float, puzzles: Sequence[str]) -> dict[str, Any]:
    """The rounds, the median round's figures, and the targets."""
    speedups = sorted(r["speedup"] for r in rounds)
    median = statistics.median(speedups)
    middle = min(rounds, key=lambda r: abs(r["speedup"] - median))  # the first of equals
    modes = [r[mode] for r in rounds for mode in ("shared", "lock")]
    failures = [e for m in modes for e in m["errors"]]
    return {
        "think": think,
        "puzzles": list(puzzles),
        "rounds": list(rounds),
        "shared": middle["shared"],  # the round nearest the median speedup
        "lock": middle["lock"],
        "speedup": round(median, 2),
        "speedups": speedups,
        # How far the latest search of any round ran past its budget: each stops at its
        # own deadline, however many others share its decode steps.
        "most_seconds_past_budget": round(max(0.0, max(t for m in modes for t in m["thinking_seconds"]) - think), 3),
        "targets": {
            "speedup_at_least_1.2": median >= 1.2,
            "each_share_at_least_0.15": min(min(r["shared"]["shares"]) for r in rounds) >= 0.15,
            "no_sequence_id_failures": not any("no free sequence ids" in e for e in failures),
            "sequences_freed": all(m["live_sequences_after"] == 0 for m in modes),
        },
    }


def report(result: dict[str, Any]) -> str:
    """A few lines for a terminal."""
    lines = [f"{len(result['puzzles'])} concurrent bfs game24 searches, {result['think']:g} s each "
             f"(puzzles {', '.join(result['puzzles'])})"]  # fmt: skip
    for mode in ("shared", "lock"):
        r = result[mode]
        shares = " ".join(f"{s:.0%}" for s in r["shares"])
        lines.append(f"  {mode:6} {r['nodes_per_second']:7.1f} nodes/s  {r['tokens_per_second']:6.0f} tok/s  nodes {r['nodes']}  shares while all ran {shares}  "
                     f"stops {r['stops']}  errors {len(r['errors'])}")  # fmt: skip
        lines.extend(f"         error: {e}" for e in r["errors"])
    if len(result["rounds"]) > 1:
        lines.insert(1, f"  {len(result['rounds'])} rounds, shared / lock per round: "
                        + " ".join(f"{s:.2f}x" for s in result["speedups"]) + "; the median round:")  # fmt: skip
    lines.append(f"  the latest search of any round thought {result['most_seconds_past_budget']:.3f} s past its budget")
    lines.append(f"  shared / lock: {result['speedup']:.2f}x   targets: "
                 + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in result["targets"].items()))
    return "\n".join(lines)
