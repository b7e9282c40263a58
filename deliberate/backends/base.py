"""The model backend protocol: batched generation and label scoring.

A backend does two things, both batched and both bounded by the search deadline:

- ``generate``: many prompts at once, ``n`` samples each;
- ``score_labels``: log-probabilities of a few candidate continuations
  (" sure" / " likely" / " impossible") after each prompt, from one forward pass.

Everything a backend returns is plain data, so the search never sees llama.cpp or HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from deliberate.clock import Deadline

FinishReason = Literal["stop", "length", "deadline", "context"]


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    n: int = 1  # independent samples of this prompt
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    temperature: float = 0.0  # 0 means greedy
    top_k: int = 40
    top_p: float = 0.95
    seed: int = 0  # sample i uses derive_seed(seed, i)
    # Parse control tokens such as <|im_start|> in the prompt. Only prompts rendered by a
    # chat template need it; for plain text it stays off, so a question cannot forge them.
    special: bool = False


@dataclass(frozen=True)
class Sample:
    text: str  # the completion, with any stop string cut off
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    cached_tokens: int = 0  # prompt tokens served from a prefix cache instead of prefilled


@dataclass
class BackendStats:
    """Running totals a backend keeps so the CLI can report tokens and tok/s."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    decode_seconds: float = 0.0
    scored_prompts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    stats: BackendStats

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        """One list of ``request.n`` samples per request, in order.

        When the deadline passes, samples end early with ``finish_reason="deadline"``.
        """
        ...

    def score_labels(
        self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False
    ) -> list[dict[str, float]]:
        """For each prompt, the log-probability of each label as the next text.

        A label is scored by its first token, so labels must start with different tokens.
        A prompt left unscored because the deadline passed gets an empty dict.
        """
        ...

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """Render chat messages with the model's own chat template, ending with the assistant turn."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the trace records about this backend: model file, hash prefix, parameters."""
        ...

    def close(self) -> None: ...


_MASK64 = (1 << 64) - 1


def derive_seed(seed: int, index: int) -> int:
    """A child seed from a parent seed and a child index (splitmix64, folded to 31 bits).

    Stable across runs and platforms, unlike ``hash()``.
    """
    z = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z & 0x7FFFFFFF


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text up to the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
