"""``deliberate bench judge``: does the model's judge tell good states from bad ones?

    deliberate bench judge game24 --data ../shared/datasets/game24 --limit 40 --states 200

Three steps:

1. **Collect** states that real searches reach: ``deliberate.think`` runs on the
   dataset's items (``--strategy``, ``--think`` each) with ``evaluator="none"``, so
   collecting never asks the judge. Every node of each graph that is neither the root
   nor terminal is a state, once per task key (the first time it is reached), with its
   depth, until ``--states`` states are collected; no further item is run after that.
2. **Label** each state with ground truth that no search sees
   (``deliberate.benchmarks.ground_truth``). Game of 24: a state
   is good when the numbers it has left can still make 24, decided exactly by a
   brute-force solver over Fractions (``solvable``, here and nowhere else). GSM8K: a
   state is good when one of ``rollouts`` sampled continuations from it (temperature
   0.7, the calculator on as the task has it) reaches the gold answer, by the
   dataset's own rule (``label_by_rollouts``): an estimate, not a proof, so a "bad"
   state is one where the model found no way on in that many tries.
3. **Judge** each state as the search does. ``value``: the task's value prompt,
   ``score_labels`` over its labels, ``label_probs`` and ``label_value`` (batched, 16
   prompts a call). ``vote``: the state's siblings in its graph (the non-terminal
   children of its parent, in node order, at most 20 to a vote as the search votes)
   get the task's vote prompt; a state's vote value is ``vote_value`` of its label's
   share. A state with no sibling to vote against has no vote value (the search would
   value it instead) and is left out of the vote rows.

The report is the ROC AUC of each evaluator (``deliberate.benchmarks.auc``), overall and by depth: the chance that a
random good state scores above a random bad one, ties counting half (Mann-Whitney).
Each AUC has a 95 % percentile-bootstrap interval, resampling within each class, from a
seeded generator, so a rerun gives the same interval. A row with fewer than
``MIN_CLASS`` states of either class has no AUC ("AUC n/a").
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deliberate.benchmarks.auc import MIN_CLASS, Row, format_auc, summarize
from deliberate.benchmarks.ground_truth import LABELERS, ROLLOUTS, Progress, label_by_rollouts
from deliberate.clock import Deadline, MonotonicClock
from deliberate.errors import ContextOverflowError, DatasetError, UsageError
from deliberate.graph import ROOT
from deliberate.tasks import Task, make_task
from deliberate.tasks.base import label_probs, label_value, vote_labels

EVALUATORS = ("value", "vote")
BATCH = 16  # prompts per score_labels call
VOTE_SIZE = 20  # the most siblings in one vote, as the search votes
# Dataset kinds whose states have exact ground truth here, and the names of their classes.
SUPPORTED = {"game24": ("solvable", "unsolvable"), "gsm8k": ("reaches the gold answer", "does not")}


# -- collecting states ---------------------------------------------------------------------------


@dataclass
class Reached:
    """One state a search reached, with its ground truth and the judge's scores."""

    key: str
    depth: int
    item: str  # the dataset item whose search reached it
    question: str
    state: dict[str, Any]
    group: int | None  # index of its sibling set, for voting
    good: bool | None = None
    value: float | None = None
    vote: float | None = None


@dataclass
class Siblings:
    """The non-terminal children of one parent in one graph: the candidates of a vote."""

    question: str
    parent: dict[str, Any]  # the parent's state
    keys: list[str]
    thoughts: list[str]
    members: set[str] = field(default_factory=set)  # keys of collected states first reached here


def collect(
    items: Sequence[Any],
    backend: Any,
    task: Task,
    *,
    strategy: str,
    think: float,
    seed: int,
    states: int,
    on_progress: Progress | None = None,
) -> tuple[list[Reached], list[Siblings], int]:
    """States reached by searches on ``items`` (see the module docstring); also the sibling
    sets and how many items were run."""
    from deliberate.api import think as run_search

    found: dict[str, Reached] = {}
    groups: list[Siblings] = []
    ran = 0
    for item in items:
        if len(found) >= states:
            break
        try:
            result = run_search(
                item.question, task=item.task, strategy=strategy, model=backend, think=think, seed=seed,
                evaluator="none",
            )
        except ContextOverflowError:
            continue  # this question does not fit; the next one may
        if result.stats.stop_reason == "interrupted":
            raise KeyboardInterrupt  # think() caught Ctrl-C
        ran += 1
        graph = result.graph
        group_of: dict[int, int] = {}
        for node in sorted(graph):
            attrs = graph[node]
            if node == ROOT or attrs["key"] in found or task.is_terminal(attrs["state"]):
                continue
            if len(found) >= states:
                break
            parent = graph.parent(node)
            assert parent is not None
            if parent not in group_of:
                siblings = [c for c in graph.children(parent) if not task.is_terminal(graph[c]["state"])]
                group_of[parent] = len(groups)
                groups.append(Siblings(
                    item.question, graph[parent]["state"], [graph[c]["key"] for c in siblings],
                    [graph[c]["thought"] for c in siblings],
                ))
            groups[group_of[parent]].members.add(attrs["key"])
            found[attrs["key"]] = Reached(
                attrs["key"], graph.depth(node), item.id, item.question, attrs["state"], group_of[parent]
            )
        if on_progress:
            on_progress("collect", min(len(found), states), states)
    return list(found.values()), groups, ran


# -- judging ---------------------------------------------------------------------------------------


def score_values(
    backend: Any, task: Task, reached: Sequence[Reached], deadline: Deadline, *,
    batch: int = BATCH, on_progress: Progress | None = None,
) -> list[float | None]:
    """Each state's value as ``Search._value`` computes it; None where it went unscored."""
    labels = task.labels
    values: list[float | None] = []
    for start in range(0, len(reached), batch):
        chunk = reached[start : start + batch]
        prompts = [task.value_prompt(r.question, r.state).render() for r in chunk]
        for logprobs in backend.score_labels(prompts, list(labels), deadline):
            probs = label_probs(logprobs, labels)
            values.append(None if probs is None else label_value(probs, labels))
        if on_progress:
            on_progress("value", len(values), len(reached))
    return values


def score_votes(
    backend: Any, task: Task, groups: Sequence[Siblings], deadline: Deadline, *,
    batch: int = BATCH, on_progress: Progress | None = None,
) -> dict[str, float]:
    """Vote values by key for the collected members of each sibling set, as
    ``Search._vote`` computes them (sets split into votes of at most ``VOTE_SIZE``)."""
    from deliberate.search import vote_value

    votes: list[tuple[Siblings, int, int]] = []  # (set, start, end) of each vote worth asking
    for group in groups:
        for start in range(0, len(group.keys), VOTE_SIZE):
            end = min(start + VOTE_SIZE, len(group.keys))
            if end - start >= 2 and group.members & set(group.keys[start:end]):
                votes.append((group, start, end))
    by_size: dict[int, list[tuple[Siblings, int, int]]] = {}
    for vote in votes:  # one score_labels call takes one label set: batch votes of a size
        by_size.setdefault(vote[2] - vote[1], []).append(vote)
    found: dict[str, float] = {}
    done = 0
    for size, same in sorted(by_size.items()):
        labels = vote_labels(size)
        for start in range(0, len(same), batch):
            chunk = same[start : start + batch]
            prompts = [
                task.vote_prompt(g.question, g.parent, g.thoughts[lo:hi]).render() for g, lo, hi in chunk
            ]
            for (group, lo, hi), logprobs in zip(chunk, backend.score_labels(prompts, labels, deadline)):
                probs = label_probs(logprobs, {label: 1.0 for label in labels})
                if probs is None:
                    continue
                for key, label in zip(group.keys[lo:hi], labels):
                    if key in group.members:
                        found[key] = vote_value(probs[label], size)
            done += len(chunk)
            if on_progress:
                on_progress("vote", done, len(votes))
    return found


def rows(reached: Sequence[Reached], evaluator: str, *, seed: int, resamples: int) -> dict[str, Any]:
    """The AUC rows of one evaluator: overall and per depth (keys are depths as text)."""
    scored = [r for r in reached if getattr(r, evaluator) is not None]

    def row(subset: Sequence[Reached], name: str) -> Row:
        good = [getattr(r, evaluator) for r in subset if r.good]
        bad = [getattr(r, evaluator) for r in subset if not r.good]
        return summarize(good, bad, seed=f"{seed}:{evaluator}:{name}", resamples=resamples)

    depths = sorted({r.depth for r in reached})
    return {
        "scored": len(scored),
        "overall": row(scored, "overall"),
        "depths": {str(d): row([r for r in scored if r.depth == d], f"depth {d}") for d in depths},
    }


# -- the whole measurement ----------------------------------------------------------------------


def parse_evaluators(text: str) -> list[str]:
    """``--evaluator``: value, vote or both."""
    if text == "both":
        return list(EVALUATORS)
    if text in EVALUATORS:
        return [text]
    raise UsageError(f"--evaluator must be value, vote or both, got {text!r}")


def check_supported(kind: str) -> None:
    if kind not in SUPPORTED:
        raise UsageError(
            f"bench judge supports {' and '.join(SUPPORTED)} (got {kind!r}): it needs ground truth for every "
            "state, exact for game24 and by rollouts to the gold answer for gsm8k"
        )


def model_identity(model: Any, backend: Any) -> tuple[str, str | None]:
    """The model's label (file name, URL or the backend's own name) and its file's sha256."""
    from deliberate.models import is_server_url, model_hash

    if is_server_url(model):
        return str(model), None
    path = getattr(getattr(backend, "model", None), "path", None)
    if isinstance(path, Path):
        return path.name, model_hash(path)
    return str(backend.describe().get("model", "unknown")), None


def measure(
    kind: str,
    data: str | Path,
    *,
    model: Any = None,
    limit: int | None = None,
    start: int = 0,
    think: float | str = "5s",
    strategy: str = "bfs",
    evaluators: Sequence[str] = EVALUATORS,
    states: int = 200,
    seed: int = 0,
    resamples: int = 1000,
    batch: int = BATCH,
    rollouts: int = ROLLOUTS,
    need_sha256: bool = False,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Collect, label and judge up to ``states`` states; the summary (see the module docstring).

    ``model`` is a GGUF path, a server URL, a backend object or None (the embedded
    model); one backend serves every item and is closed at the end if opened here.
    ``need_sha256`` (for ``--save``) refuses, before any search, a model with no file.
    """
    from deliberate import strategies
    from deliberate.backends import open_backend
    from deliberate.benchmarks.datasets import TASKS, load
    from deliberate.duration import parse_duration
    from deliberate.models import is_server_url

    check_supported(kind)
    for name in evaluators:
        if name not in EVALUATORS:
            raise UsageError(f"evaluator must be value or vote, got {name!r}")
    if states < 1:
        raise UsageError(f"--states must be at least 1, got {states}")
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    if rollouts < 1:
        raise UsageError(f"--rollouts must be at least 1, got {rollouts}")
    strategies.make(strategy)  # an unknown strategy fails before the model loads
    budget = parse_duration(think)
    items = load(kind, data, start=start, limit=limit)
    if not items:
        raise DatasetError(f"no {kind} items in {data} from --start {start} with --limit {limit}")
    if need_sha256 and is_server_url(model):
        raise UsageError(_no_file(str(model)))
    task = make_task(TASKS[kind])
    backend = open_backend(model)
    owned = backend is not model
    try:
        label, sha256 = model_identity(model, backend)
        if need_sha256 and sha256 is None:
            raise UsageError(_no_file(label))
        began = time.perf_counter()
        reached, groups, ran = collect(
            items, backend, task, strategy=strategy, think=budget, seed=seed, states=states, on_progress=on_progress
        )
        collected = time.perf_counter()
        if kind in LABELERS:
            for r in reached:
                r.good = LABELERS[kind](r.state)
        else:
            by_id = {item.id: item for item in items}
            label_by_rollouts(backend, task, kind, reached, by_id, rollouts=rollouts, seed=seed, batch=batch,
                              on_progress=on_progress)  # fmt: skip
        deadline = Deadline(getattr(backend, "clock", None) or MonotonicClock())  # no time limit
        if "value" in evaluators:
            for r, value in zip(reached, score_values(backend, task, reached, deadline, batch=batch, on_progress=on_progress)):
                r.value = value
        if "vote" in evaluators:
            votes = score_votes(backend, task, groups, deadline, batch=batch, on_progress=on_progress)
            for r in reached:
                r.vote = votes.get(r.key)
        judged = time.perf_counter()
    finally:
        if owned:
            backend.close()
    return {
        "format": "deliberate-bench-judge/1",
        "task": task.name,
        "dataset": kind,
        "data": str(data),
        "classes": list(SUPPORTED[kind]),
        "model": label,
        "model_sha256": sha256,
        "strategy": strategy,
        "think": budget,
        "seed": seed,
        "start": start,
        "limit": limit,
        "items": ran,
        "states_wanted": states,
        "states": len(reached),
        "resamples": resamples,
        "labels": "exact" if kind in LABELERS else f"{rollouts} rollouts to the gold answer",
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": {"collect": round(collected - began, 3), "judge": round(judged - collected, 3)},
        "evaluators": {name: rows(reached, name, seed=seed, resamples=resamples) for name in evaluators},
        "reached": [
            {"key": r.key, "depth": r.depth, "item": r.item, "good": r.good, "value": _rounded(r.value),
             "vote": _rounded(r.vote)}
            for r in reached
        ],
    }


def _no_file(label: str) -> str:
    return (
        f"--save needs a local GGUF model: judge profiles are keyed by the model file's sha256, "
        f"and {label} has no file here"
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def profile_entries(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What ``profiles.save_profile`` keeps of a result, per evaluator."""
    return {
        name: {
            "evaluator": name,
            "measured": result["measured"],
            "overall": measured["overall"],
            "depths": measured["depths"],
            "states": measured["scored"],
            "model": result["model"],
            "strategy": result["strategy"],
            "think": result["think"],
            "dataset": result["dataset"],
        }
        for name, measured in result["evaluators"].items()
    }


# -- output ----------------------------------------------------------------------------------------


def prepare_out(out: str | Path) -> Path:
    """The results path, its folder made; fails before any search if it cannot be written."""
    target = Path(out).expanduser()
    if target.is_dir():
        raise UsageError(f"cannot write {target}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def write_result(out: str | Path, result: Mapping[str, Any]) -> Path:
    from deliberate.trace import write_text_atomic

    return write_text_atomic(out, json.dumps(result, indent=1, ensure_ascii=False) + "\n", what="judge results ")


def render(result: Mapping[str, Any]) -> Any:
    """The AUC rows as a rich table."""
    from rich.table import Table

    good, bad = result.get("classes") or ("good", "bad")
    table = Table(
        title=f"judge separation: {result['task']}, {result['states']} states from {result['items']} searches "
        f"({result['strategy']}, {result['think']:g}s, model {result['model']})",
        caption=f"AUC: the chance that a random {good} state is valued above a random {bad} one (ties count "
        f"half; 0.5 is chance), with a 95% bootstrap interval; n/a below {MIN_CLASS} states of either class",
    )
    for column in ("evaluator", "depth", good, bad, "separation"):
        table.add_column(column, justify="left" if column in ("evaluator", "separation") else "right", no_wrap=True)
    for name, measured in result["evaluators"].items():
        table.add_row(name, "all", *_cells(measured["overall"]))
        for depth, row in measured["depths"].items():
            table.add_row("", depth, *_cells(row))
    return table


def _cells(row: Mapping[str, Any]) -> list[str]:
    return [str(row["good"]), str(row["bad"]), format_auc(row)]
