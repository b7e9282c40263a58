"""Step 3 of ``deliberate bench judge``: the judge's score of each collected state,
computed as the search computes it (``Search._value`` and ``Search._vote``), batched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deliberate.benchmarks.ground_truth import Progress
from deliberate.benchmarks.judge_states import Reached, Siblings
from deliberate.clock import Deadline
from deliberate.tasks import Task
from deliberate.tasks.base import label_probs, label_value, vote_labels

BATCH = 16  # prompts per score_labels call
VOTE_SIZE = 20  # the most siblings in one vote, as the search votes


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
