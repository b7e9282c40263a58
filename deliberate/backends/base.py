"""The model backend protocol: batched generation and label scoring.

A backend does two things, both batched and both bounded by the search deadline:

- ``generate``: many prompts at once, ``n`` samples each;
- ``score_labels``: log-probabilities of a few candidate continuations
  (" sure" / " likely" / " impossible") after each prompt, from one forward pass.

Everything a backend returns is plain data, so the search never sees llama.cpp or HTTP.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from deliberate.clock import Deadline
from deliberate.tools import ToolCall, ToolSyntax

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
    # A tool whose calls run inside the text (``deliberate.tools``). Only
    # ``generate_with_tools`` runs them; plain ``generate`` may ignore this.
    tools: ToolSyntax | None = None
    # Also report each call's ``logprob`` (the model's own probability of the tool's
    # tokens), where the backend can. Off by default: LlamaBackend then computes a
    # vocabulary-wide logits row per tool token, each about as dear as a decoded token.
    score_tools: bool = False


@dataclass(frozen=True)
class Sample:
    text: str  # the completion, with any stop string cut off
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    cached_tokens: int = 0  # prompt tokens served from a prefix cache instead of prefilled
    calls: tuple[ToolCall, ...] = ()  # tool calls whose results are part of ``text``


@dataclass(frozen=True)
class Generate:
    """A unit of continuous batching (``generate_rolling``, ``backends.llama.rolling``):
    samples ``first`` to ``first + count - 1`` of ``request``, each seeded as in
    ``generate``, so a request with many samples can join in parts."""

    request: GenerateRequest
    deadline: Any
    key: Any
    first: int = 0
    count: int = 1


@dataclass(frozen=True)
class Score:
    """A unit of continuous batching: label log-probabilities after one prompt, as
    in ``score_labels``."""

    prompt: str
    labels: tuple[str, ...]
    deadline: Any
    key: Any
    special: bool = False
    count = 1  # sequence ids it holds


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

    # Optional: ``generate_with_tools(requests, deadline)``, generation in which each
    # request's ``tools`` calls run inside the text. Without it, ``generate_with_tools``
    # (``deliberate.backends.tool_calls``) runs them through ``continue_after_tools``:
    # plain ``generate`` calls.


class BaseBackend:
    """A backend with every optional part given a default. Subclass it and write
    ``generate``; the rest is optional:

    - ``score_labels``: the slow path here counts which label ``LABEL_SAMPLES`` short
      samples of each prompt begin with (add-one smoothed log-frequencies). A backend
      that can read log-probabilities should override it.
    - ``generate_with_tools``: tool calls through continuation requests
      (``continue_after_tools``).
    - ``format_chat``: refused (no chat template); ``describe``: the class name;
      ``close``: nothing to free.

    ``with backend:`` closes it at the end of the block.
    """

    LABEL_SAMPLES = 8

    @property
    def stats(self) -> BackendStats:
        """Running totals; made on first use, so a subclass need not call ``__init__``."""
        if "_stats" not in self.__dict__:
            self.__dict__["_stats"] = BackendStats()
        return self.__dict__["_stats"]

    @stats.setter
    def stats(self, value: BackendStats) -> None:
        self.__dict__["_stats"] = value

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        raise NotImplementedError(f"{type(self).__name__} must implement generate")

    def score_labels(
        self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False
    ) -> list[dict[str, float]]:
        """Label log-probabilities estimated from samples (the slow path; see the class)."""
        requests = [label_sample_request(prompt, self.LABEL_SAMPLES, special=special) for prompt in prompts]
        results = []
        for samples in self.generate(requests, deadline) if requests else []:
            texts = [s.text for s in samples if s.finish_reason not in ("deadline", "context")]
            results.append(sampled_label_logprobs(texts, labels) if texts else {})
            self.stats.scored_prompts += bool(texts)
        return results

    def generate_with_tools(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        from deliberate.backends.tool_calls import continue_after_tools

        return continue_after_tools(self, requests, deadline)

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        from deliberate.errors import BackendError

        raise BackendError(f"{type(self).__name__} has no chat template; use a completion-style task")

    def describe(self) -> dict[str, Any]:
        return {"backend": type(self).__name__}

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LABEL_MAX_TOKENS = 3  # a label such as " impossible" may take a few tokens to appear


def label_sample_request(prompt: str, n: int, *, special: bool = False) -> GenerateRequest:
    """``n`` short unbiased samples of ``prompt``, whose first words ``sampled_label_logprobs``
    counts: label scoring for a backend that gives no log-probabilities."""
    return GenerateRequest(
        prompt, n=n, max_tokens=LABEL_MAX_TOKENS, temperature=1.0, top_k=0, top_p=1.0,
        seed=zlib.crc32(prompt.encode()),  # stable across runs, unlike hash()
        special=special,
    )


def sampled_label_logprobs(texts: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Smoothed log-frequencies of the labels that ``texts`` start with, as whole words.

    Add-one smoothing keeps a label never drawn finite and below every label drawn.
    """
    patterns = {label: re.compile(re.escape(label.strip()) + r"(?!\w)") for label in labels if label.strip()}
    counts = Counter(
        next((label for label, pattern in patterns.items() if pattern.match(text.strip())), None)
        for text in texts
    )
    return {label: math.log((counts[label] + 1) / (len(texts) + len(labels))) for label in labels}


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
