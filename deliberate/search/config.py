"""The search's settings, counters and constants (see ``deliberate.search``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Event = dict[str, Any]
OPEN = ("open", "expanded")
FINAL = ("terminal", "solved", "failed")
FINISH_ON_INTERRUPT = 0.25  # seconds after Ctrl-C until which greedy finishing may run (the solve must end within 1 s)
# With no time limit, this many expansions in a row that add no node end the search
# ("stalled"): asking again has stopped finding anything new, and no clock will stop it.
STALL_LIMIT = 64


class StopSearch(Exception):
    """Raised by a search operation when the search must end; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SearchConfig:
    mode: Literal["propose", "sample"] | None = None  # None: the task's own preference
    # none: the model never judges; auto: value where the judge profile says the judge
    # separates good states from bad at that depth (without a profile: value everywhere)
    evaluator: Literal["value", "vote", "none", "auto"] = "value"
    verifier: bool = True  # let the task check arithmetic and final answers exactly
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    reserve: float = 0.1  # share of the budget kept for finishing greedily
    stop_when_solved: bool = True
    chat: bool = False  # render prompts with the model's chat template
    max_nodes: int | None = None
    answer_by: Literal["value", "vote"] = "value"  # how terminal answers are chosen
    # A chain's vote: 1 ("chains"), or the model's own probability of the tool results on
    # its path ("tool-likelihood"; see ``Finishing.vote_weight``).
    vote_weight: Literal["chains", "tool-likelihood"] = "chains"
    heat: float = 0.1  # temperature added per earlier ask of the same opening, so re-asks vary more
    max_temperature: float = 1.2
    tools: bool = True  # let the task's tools (the calculator) compute parts of a step
    # After this many expansions of a state in a row that found no new move, the
    # search adds missing moves itself where a tool can complete them ("enumerated").
    enumerate_after: int = 1


@dataclass
class SearchStats:
    tokens: int = 0
    prompt_tokens: int = 0
    expansions: int = 0
    evaluations: int = 0
    merged: int = 0
    rejected: int = 0  # samples that produced no valid step
    enumerated: int = 0  # children whose move the search listed rather than the model
    tool_calls: int = 0
