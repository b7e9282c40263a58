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

The steps live in ``judge_states`` (1), ``ground_truth`` (2), ``judge_scores`` (3) and
``judge_report`` (the rows, the results file and the table); this module runs them.

The report is the ROC AUC of each evaluator (``deliberate.benchmarks.auc``), overall and by depth: the chance that a
random good state scores above a random bad one, ties counting half (Mann-Whitney).
Each AUC has a 95 % percentile-bootstrap interval, resampling within each class, from a
seeded generator, so a rerun gives the same interval. A row with fewer than
``MIN_CLASS`` states of either class has no AUC ("AUC n/a"). Beside each, the
same-question AUC counts only pairs of states of one question at one depth, the
comparison a search makes, with an interval that resamples questions; in a profile
``--save`` writes, that one decides whether ``--evaluator auto`` asks the judge.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deliberate.benchmarks.ground_truth import LABELERS, ROLLOUTS, Progress, label_by_rollouts
from deliberate.benchmarks.judge_report import rounded, rows
from deliberate.benchmarks.judge_scores import BATCH, score_values, score_votes
from deliberate.benchmarks.judge_states import collect
from deliberate.clock import Deadline, MonotonicClock
from deliberate.errors import UsageError
from deliberate.tasks import make_task

EVALUATORS = ("value", "vote")
# Dataset kinds whose states have exact ground truth here, and the names of their classes.
SUPPORTED = {"game24": ("solvable", "unsolvable"), "gsm8k": ("reaches the gold answer", "does not")}


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
    from deliberate.models import model_file, model_hash, model_label

    path = model_file(model, backend)
    return model_label(model, backend), None if path is None else model_hash(path)


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
    items = load(kind, data, start=start, limit=limit)  # an empty selection is refused there
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
            {"key": r.key, "depth": r.depth, "item": r.item, "good": r.good, "value": rounded(r.value),
             "vote": rounded(r.vote)}
            for r in reached
        ],
    }


def _no_file(label: str) -> str:
    return (
        f"--save needs a local GGUF model: judge profiles are keyed by the model file's sha256, "
        f"and {label} has no file here"
    )
