"""The task protocol: what a state is, how to prompt for steps, how to read them back.

A task is the "world model" of the search: it turns the question into a root state,
says how a step changes the state, when a state is final and what its answer is. It
also writes the prompts. It never calls the model itself; the search does that.

States are JSON-ready dicts, so the trace can hold them. Every state has ``steps``,
the thoughts that led to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

State = dict[str, Any]
ChatFormatter = Callable[[Sequence[dict[str, str]]], str]

# The default value labels: a state is judged "sure", "likely" or "impossible", and the
# expected value under the model's label probabilities becomes the state's value.
VALUE_LABELS: dict[str, float] = {" sure": 1.0, " likely": 0.5, " impossible": 0.0}


@dataclass(frozen=True)
class Prompt:
    """A prompt before it is rendered for a base model (few-shot text) or a chat model."""

    instruction: str
    examples: str  # few-shot exemplars, in the same format as ``query``
    query: str  # the part about this question and state
    prefix: str = ""  # where the model's reply begins

    def render(self, chat: ChatFormatter | None = None) -> str:
        if chat is None:
            return f"{self.instruction}\n\n{self.examples}{self.query}{self.prefix}"
        user = f"{self.instruction}\n\n{self.examples}{self.query}".rstrip()
        return chat([{"role": "user", "content": user}]) + self.prefix


@dataclass(frozen=True)
class Step:
    thought: str  # the step as the trace shows it
    state: State  # the state it leads to
    move: str | None = None  # which of the task's ``moves`` this step made, if it knows
    # Tool calls that wrote part of the step: {"tool", "input", "output"} each. The
    # model wrote the input; the tool computed the output (the model never executes).
    calls: tuple[dict[str, str], ...] = ()


class Task(Protocol):
    name: str
    mode: Literal["propose", "sample"]  # how this task likes its thoughts generated
    labels: dict[str, float]  # value labels and the value each stands for
    step_stop: tuple[str, ...]  # where a single sampled step ends
    step_tokens: int  # max tokens for one sampled step
    propose_tokens: int  # max tokens for a list of proposals
    max_depth: int  # a state this deep is treated as final

    def root(self, question: str) -> State:
        """The initial state; raises QuestionError if the question cannot be read."""
        ...

    def key(self, state: State) -> str:
        """A normalized form of the state: equal keys are merged into one node."""
        ...

    def propose_prompt(self, question: str, state: State) -> Prompt | None:
        """A prompt whose completion lists several next steps, or None to sample instead."""
        ...

    def parse_proposals(self, question: str, state: State, text: str, *, verify: bool) -> list[Step]: ...

    def step_prompt(self, question: str, state: State) -> Prompt: ...

    def openings(self, state: State) -> list[str]:
        """Ways to begin a sampled step; samples are spread over them for variety."""
        ...

    def parse_step(self, question: str, state: State, text: str, *, verify: bool) -> Step | None: ...

    def value_prompt(self, question: str, state: State) -> Prompt:
        """A prompt that ends where one of ``labels`` should follow."""
        ...

    def vote_prompt(self, question: str, state: State, candidates: Sequence[str]) -> Prompt:
        """A prompt that ends where the number of the best candidate should follow."""
        ...

    def is_terminal(self, state: State) -> bool: ...

    def answer(self, question: str, state: State) -> str | None: ...

    def verify(self, question: str, state: State) -> bool | None:
        """True or False when the task can check the state exactly, else None."""
        ...

    # Optional: ``tool_names`` and ``tools`` (bool): the tools the task can use and
    # whether they are on (``--no-tools`` turns them off, for ablations).
    #
    # Optional: ``moves(state, verify=...) -> list[str] | None``. Every legal move from
    # ``state`` when the task can list them, else None. A task that lists them lets the
    # search prove a state dead (every move has its child); without a list a state is
    # never dead, and a search with time left keeps asking. Steps name their move in
    # ``Step.move``. ``pending_openings`` below maps openings to the moves still open.
    # When ``parse_step`` completes a bare move by itself (a tool computes the rest),
    # the search can add a move no sample proposed; it marks that child "enumerated".


class BaseTask:
    """A task with every optional part given a default. Subclass it and write the
    five required methods: ``root``, ``step_prompt``, ``parse_step``, ``is_terminal``
    and ``answer``. States must be JSON-ready dicts with a ``steps`` list.

    The defaults: steps are sampled one line at a time (no proposal prompt), with one
    empty opening; a state's key is its steps, lower-cased; nothing is verified; the
    judge's value and vote prompts are the generic task's, with the question and every
    step quoted inside a fence that no text can close. Override any of them.
    """

    name = "task"
    mode: Literal["propose", "sample"] = "sample"
    labels: dict[str, float] = VALUE_LABELS
    step_stop: tuple[str, ...] = ("\n",)
    step_tokens = 64
    propose_tokens = 0
    max_depth = 10

    # -- required ----------------------------------------------------------------
    def root(self, question: str) -> State:
        raise NotImplementedError

    def step_prompt(self, question: str, state: State) -> Prompt:
        raise NotImplementedError

    def parse_step(self, question: str, state: State, text: str, *, verify: bool) -> Step | None:
        raise NotImplementedError

    def is_terminal(self, state: State) -> bool:
        raise NotImplementedError

    def answer(self, question: str, state: State) -> str | None:
        raise NotImplementedError

    # -- optional ----------------------------------------------------------------
    def key(self, state: State) -> str:
        return "\n".join(" ".join(str(step).lower().split()) for step in state["steps"])

    def propose_prompt(self, question: str, state: State) -> Prompt | None:
        return None

    def parse_proposals(self, question: str, state: State, text: str, *, verify: bool) -> list[Step]:
        steps = (self.parse_step(question, state, line, verify=verify) for line in text.splitlines())
        return [step for step in steps if step is not None]

    def openings(self, state: State) -> list[str]:
        return [""]

    def verify(self, question: str, state: State) -> bool | None:
        return None

    def value_prompt(self, question: str, state: State) -> Prompt:
        from deliberate.tasks.generic import GenericTask

        return GenericTask.value_prompt(self, question, state)  # type: ignore[arg-type]

    def vote_prompt(self, question: str, state: State, candidates: Sequence[str]) -> Prompt:
        from deliberate.tasks.generic import GenericTask

        return GenericTask.vote_prompt(self, question, state, candidates)  # type: ignore[arg-type]


def pending_openings(openings: Sequence[str], moves: Sequence[str], done: Sequence[str]) -> list[str]:
    """The openings under which some move is not yet done.

    An opening covers the moves it is a word-prefix of: "8 *" covers "8 * 3", the
    empty opening covers every move, and "8 * 3 =" covers "8 * 3".
    """
    left = [m for m in moves if m not in set(done)]
    return [opening for opening in openings if any(covers(opening, m) for m in left)]


def covers(opening: str, move: str) -> bool:
    """Whether ``move`` can follow ``opening``: the opening is a word-prefix of it."""
    head = opening.removesuffix("=").strip()
    return not head or move == head or move.startswith(head + " ")


def vote_labels(count: int) -> list[str]:
    """Labels for choosing among ``count`` candidates: " A", " B", ..."""
    return [f" {chr(ord('A') + i)}" for i in range(count)]


def label_probs(logprobs: Mapping[str, float], labels: Mapping[str, float]) -> dict[str, float] | None:
    """The judge's probabilities over the task's labels alone, or None if unscored.

    Keys a backend returns beyond the labels are ignored, so they cannot dilute the
    softmax; a label the backend left out (a server's top-k) counts as very unlikely.
    """
    if not logprobs or not any(label in logprobs for label in labels):
        return None
    floor = min(logprobs.values()) - 10.0
    scores = {label: logprobs.get(label, floor) for label in labels}
    top = max(scores.values())
    weights = {label: math.exp(score - top) for label, score in scores.items()}
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


def label_value(probs: Mapping[str, float], labels: Mapping[str, float]) -> float:
    """A state's value: the expected value of ``labels`` under the judge's ``probs``
    (from ``label_probs``), so it stays within the labels' range whatever the judge read."""
    return sum(probs[label] * value for label, value in labels.items())
