"""Step 1 of ``deliberate bench judge``: collect the states real searches reach.

``deliberate.think`` runs on the dataset's items with ``evaluator="none"``, so collecting
never asks the judge. Every node of each graph that is neither the root nor terminal is
a state, once per task key (the first time it is reached), with its depth; its siblings
(the non-terminal children of its parent) are kept as the candidates of a vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deliberate.benchmarks.ground_truth import Progress
from deliberate.errors import ContextOverflowError
from deliberate.graph import ROOT
from deliberate.tasks import Task


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
