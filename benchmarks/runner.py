"""Run a benchmark grid: every item under every (strategy, thinking time), one JSONL record each.

The results file is the run's only state. Each record is appended and fsynced as soon
as its item is done, so an interrupted run loses at most the item in flight, and a
second run with the same arguments skips what is already there (resume). A server
that goes away mid-run costs waiting time, not records: the item is retried.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import tenacity

from deliberate.benchmarks.datasets import Item, load, score
from deliberate.errors import ContextOverflowError, ServerError, UsageError
from deliberate.jsonl import Appender, resume_jsonl
from deliberate.models import is_server_url, model_label

log = logging.getLogger("deliberate.bench")

RETRY_ATTEMPTS = 8  # waits of 2, 4, 8, 16, 30, 30, 30 s: about two minutes for a server to restart

Record = dict[str, Any]
Cell = tuple[Item, str, float]  # one question under one strategy and thinking time


def run(
    kind: str,
    data: str | Path,
    *,
    strategies: list[str],
    thinks: list[float | str],
    limit: int | None = None,
    start: int = 0,
    seed: int = 0,
    model: Any = None,
    out: str | Path,
    verifier: bool = True,
    concurrency: int = 1,
    on_record: Callable[[Record], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    trace_dir: str | Path | None = None,
    options: Mapping[str, Any] | Iterable[str] | None = None,
    retry_wait: float = 2.0,
    backend_options: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[Record]:
    """Solve items ``start`` to ``start + limit`` of a dataset under every strategy and budget.

    ``model`` is a GGUF path, a server URL, a backend object or None (the embedded
    model); it is opened once for the whole grid, with ``backend_options`` passed to its
    constructor (``{"n_seq_max": 1}``, say). ``settings`` are more ``think`` keywords
    for every item (``evaluator``, ``mode``, ``task_options``, and ``task``, which solves
    every item as that task, or as ``detect`` reads its question for "auto", in place of
    the dataset's own); like the strategy's
    options they are stored in each record and part of its key, so a second
    configuration written to the same ``out`` is not skipped as done. Records already in ``out`` are kept
    and their cells skipped. ``on_start(todo, done)`` is told the work before it starts
    and ``on_record(record)`` each new record. Returns the grid's records, old and new.
    """
    from deliberate import strategies as registry
    from deliberate.backends import open_backend
    from deliberate.duration import parse_duration
    from deliberate.tasks import checked_name, detect, from_options

    if not strategies or not thinks:
        raise UsageError("give at least one strategy and one thinking time")
    if concurrency < 1:
        raise UsageError(f"concurrency must be at least 1, got {concurrency}")
    _check_concurrency(model, concurrency)
    given = _given_options(options)
    for name in strategies:  # an unknown strategy or option fails before the model loads
        registry.make(name, given)
    names = list(dict.fromkeys(strategies))  # a repeated --strategy or --think runs once
    budgets = list(dict.fromkeys(parse_duration(t) for t in thinks))
    items = load(kind, data, start=start, limit=limit)
    solving = (settings or {}).get("task")  # --task: every item as this task, or "auto"
    if solving:
        checked_name(solving)
    tasks = [item.task if not solving else detect(item.question) if solving == "auto" else solving for item in items]
    for task in dict.fromkeys(tasks):  # so does an unknown task or a bad task option
        from_options(task, (settings or {}).get("task_options"))
    out = Path(out)
    finished = {_key(record): record for record in resume_jsonl(out, what="results file")}
    backend = open_backend(model, **dict(backend_options or {}))
    owned = backend is not model
    try:
        solver = _Solver(kind, backend, model_label(model, backend), seed, verifier, given, trace_dir, retry_wait)
        solver.settings = {key: value for key, value in dict(settings or {}).items() if value not in (None, {})}
        cells = [(item, name, budget) for item in items for name in names for budget in budgets]
        todo = [cell for cell in cells if solver.key(cell) not in finished]
        if on_start:
            on_start(len(todo), len(cells) - len(todo))
        with Appender(out, what="results file") as appender:
            def finish(cell: Cell) -> None:
                record = solver.solve(cell)
                with appender.lock:  # one writer at a time, and progress in step with the file
                    appender.write(record)
                    finished[_key(record)] = record
                    if on_record:
                        on_record(record)

            if concurrency == 1:
                for cell in todo:
                    finish(cell)
            else:
                _run_parallel(finish, todo, concurrency, solver)
        return [finished[solver.key(cell)] for cell in cells if solver.key(cell) in finished]
    finally:
        if owned:
            backend.close()


def _run_parallel(finish: Callable[[Cell], None], todo: list[Cell], concurrency: int, solver: _Solver) -> None:
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench")
    try:
        for future in as_completed([pool.submit(finish, cell) for cell in todo]):
            future.result()
    except BaseException:
        # Ctrl-C or a fatal error: end the searches in flight; their cells stay undone.
        solver.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Solver:
    """Solves one cell into a record, retrying when the backend fails for a while."""

    def __init__(
        self, kind: str, backend: Any, model_label: str, seed: int, verifier: bool,
        options: dict[str, str], trace_dir: str | Path | None, retry_wait: float,
    ) -> None:
        from deliberate.clock import MonotonicClock

        self.kind, self.backend, self.model_label = kind, backend, model_label
        self.seed, self.verifier, self.options = seed, verifier, options
        self.trace_dir = Path(trace_dir) if trace_dir is not None else None
        self.clock = getattr(backend, "clock", None) or MonotonicClock()
        self.retry_wait = retry_wait
        self.settings: dict[str, Any] = {}  # more think() keywords, as given
        self.stopping = threading.Event()
        self.live: set[Any] = set()  # deadlines of the searches in flight
        self.lock = threading.Lock()
        if self.trace_dir is not None:
            self.trace_dir.mkdir(parents=True, exist_ok=True)

    def key(self, cell: Cell) -> tuple[Any, ...]:
        item, strategy, think = cell
        return _key({"task": self.kind, "id": item.id, "strategy": strategy, "think": think, "seed": self.seed,
                     "verifier": self.verifier, "options": self.options, "model": self.model_label,
                     "settings": self.settings})

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            for deadline in self.live:
                deadline.cancel()

    def solve(self, cell: Cell) -> Record:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_transient),
            wait=tenacity.wait_exponential(multiplier=self.retry_wait, max=30),
            stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "item %s: %s; retrying (attempt %d of %d)", cell[0].id, state.outcome.exception(),
                state.attempt_number + 1, RETRY_ATTEMPTS,
            ),
            reraise=True,
        )
        return retrying(self._attempt, cell)

    def _sleep(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise KeyboardInterrupt

    def _attempt(self, cell: Cell) -> Record:
        from deliberate.api import think
        from deliberate.clock import Deadline

        item, strategy, budget = cell
        if self.stopping.is_set():
            raise KeyboardInterrupt
        deadline = Deadline(self.clock)  # think() sets the time; we keep the cancel switch
        trace = self._trace_path(cell)
        with self.lock:
            self.live.add(deadline)
        try:
            result = think(
                item.question, strategy=strategy, model=self.backend, think=budget, seed=self.seed,
                verifier=self.verifier, options=self.options, trace=trace, deadline=deadline,
                **{"task": item.task, **self.settings},  # a --task setting replaces the dataset's task
            )
        except ContextOverflowError as exc:  # this question cannot fit; the next one may
            return self._record(cell, None, error=str(exc))
        finally:
            with self.lock:
                self.live.discard(deadline)
        if result.stats.stop_reason == "interrupted":
            raise KeyboardInterrupt  # think() caught Ctrl-C; an interrupted search is no result
        self._check_server()
        return self._record(cell, result, trace=trace)

    def _check_server(self) -> None:
        """Raise ``ServerError`` if the model server is away now.

        A request that fails close to the deadline comes back as a sample cut off by the
        deadline, so an outage can pass for a hard question. One look at the server after
        each item tells them apart: while it is away, the item is redone, not recorded.
        """
        server = sys.modules.get("deliberate.backends.server")
        if server is not None and isinstance(self.backend, server.ServerBackend):
            self.backend._probe()

    def _record(self, cell: Cell, result: Any, *, trace: Path | None = None, error: str | None = None) -> Record:
        item, strategy, budget = cell
        answer = result.answer if result is not None else None
        stats = result.stats if result is not None else None
        # Every answer the search reached, and whether any was right: what the model and
        # tools generated, apart from which one the strategy picked (none, for an error).
        answers = result.graph.answers() if result is not None else {}
        record: Record = {
            "id": item.id, "task": self.kind, "question": item.question, "gold": item.gold,
            "answer": answer, "correct": score(self.kind, answer, item), "solved": bool(result and result.solved),
            "seconds": stats.thinking_seconds if stats else 0.0, "tokens": stats.tokens if stats else 0,
            "nodes": stats.nodes if stats else 0, "stop_reason": stats.stop_reason if stats else "error",
            "model": self.model_label, "seed": self.seed, "strategy": strategy, "think": budget,
            "verifier": self.verifier, "options": self.options,
            "answers": answers, "reached": any(score(self.kind, found, item) for found in answers),
        }
        if self.settings:
            record["settings"] = self.settings
        if trace is not None:
            record["trace"] = str(trace)
        if error is not None:
            record["error"] = error
        return record

    def _trace_path(self, cell: Cell) -> Path | None:
        if self.trace_dir is None:
            return None
        item, strategy, budget = cell
        name = f"{self.kind}_{item.id}_{strategy}_{budget:g}s_seed{self.seed}{'' if self.verifier else '_noverifier'}"
        return self.trace_dir / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".json")  # ids such as "test/algebra/1.json"


def _transient(exc: BaseException) -> bool:
    """Whether waiting may cure the error: a model server that is down, slow or
    overloaded. A local backend's errors ("no free sequence ids"), a full context and a
    server's 4xx refusals come back the same on every try, so they are not retried."""
    if not isinstance(exc, ServerError):
        return False
    status = getattr(exc, "status", None)
    return status is None or status >= 500 or status == 429


def _key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two records the same cell; a record matching a planned cell is not redone."""
    return (
        str(record.get("task")), str(record.get("id")), record.get("strategy"), float(record.get("think") or 0),
        record.get("seed"), bool(record.get("verifier", True)),
        json.dumps(record.get("options") or {}, sort_keys=True), record.get("model"),
        json.dumps(record.get("settings") or {}, sort_keys=True),
    )


def _given_options(options: Mapping[str, Any] | Iterable[str] | None) -> dict[str, str]:
    """The user's strategy options as a plain dict, one spelling per key."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        pairs = options.items()
    else:
        pairs = [str(item).partition("=")[::2] for item in options]
        for item, (key, _) in zip(options, pairs):
            if "=" not in str(item) or not key.strip():
                raise UsageError(f"option {item!r} must look like key=value")
    return {str(k).strip().replace("-", "_"): str(v).strip() for k, v in pairs}


def _check_concurrency(model: Any, concurrency: int) -> None:
    if concurrency == 1 or is_server_url(model):
        return
    llama = sys.modules.get("deliberate.backends.llama")  # never imported: it cannot be a LlamaBackend
    in_process = model is None or isinstance(model, (str, os.PathLike)) or (
        llama is not None and isinstance(model, llama.LlamaBackend)
    )
    if in_process:
        raise UsageError(
            "concurrency above 1 needs a model server (--model http://HOST:PORT/v1): "
            "the in-process llama.cpp backend runs one search at a time"
        )

