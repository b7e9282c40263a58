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
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from deliberate.clock import Deadline
from deliberate.tools import MAX_INPUT_TOKENS, ToolCall, ToolSyntax

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
    # below runs them through ``continue_after_tools``: plain ``generate`` calls.


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
        return continue_after_tools(self, requests, deadline)

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        from deliberate.errors import BackendError

        raise BackendError(f"{type(self).__name__} has no chat template; use a completion-style task")

    def describe(self) -> dict[str, Any]:
        return {"backend": type(self).__name__}

    def close(self) -> None:
        pass


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


def generate_with_tools(backend: Backend, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
    """``generate``, with each request's tool calls run inside its text.

    The one way the search asks for tool use: a backend's own ``generate_with_tools``
    when it has one (``LlamaBackend`` runs calls inside its decode loop), else
    ``continue_after_tools``. Requests without tools are plain ``generate`` requests.
    """
    if not any(r.tools is not None for r in requests):
        return backend.generate(requests, deadline)
    own = getattr(backend, "generate_with_tools", None)
    if own is not None:
        return own(requests, deadline)
    return continue_after_tools(backend, requests, deadline)


@dataclass
class _Thread:
    """One sample of a request being written by ``continue_after_tools``, call by call."""

    request: GenerateRequest
    index: int
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    generated: int = 0
    prompt_tokens: int = 0
    cached: int = 0
    finish: FinishReason | None = None
    inside: bool = False  # the text ends inside a call's input: next, ask up to its end marker
    rounds: int = 0
    costs: int = 0  # prefill of the continuation requests since the last call began


def continue_after_tools(backend: Backend, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
    """Tool calls on any backend, through plain ``generate`` calls (the slow path).

    Each sample is written in rounds, and every round is one batched ``generate`` call:

    1. Up to the request's own stop strings. If the text holds a call's start marker,
       it is kept up to that marker (the rest was the model writing the call and its
       result itself, and is dropped).
    2. From the start marker, up to the end marker only, and at most
       ``MAX_INPUT_TOKENS``: a backend does not say which stop string it met, so
       this round has no other. Text with one of the request's stops in it ends the
       sample there. Otherwise the tool runs on the input, its result and the close
       marker join the text, and round 1 continues from there.

    A call's ``prefill`` is what the two continuation requests cost in prompt tokens
    not served from the backend's cache. Completion tokens count everything the model
    generated, dropped text included.
    """
    first = backend.generate([replace(r, tools=None) if r.tools else r for r in requests], deadline)
    threads: list[list[_Thread]] = []
    for request, samples in zip(requests, first):
        row = []
        for index, sample in enumerate(samples):
            thread = _Thread(request, index, prompt_tokens=sample.prompt_tokens, cached=sample.cached_tokens)
            if request.tools is None:
                thread.text, thread.generated, thread.finish = sample.text, sample.completion_tokens, sample.finish_reason
            else:
                _advance(thread, sample, request.tools)
            row.append(thread)
        threads.append(row)
    while True:
        for thread in (t for row in threads for t in row if t.finish is None):
            if thread.generated >= thread.request.max_tokens:
                thread.finish = "length"
        live = [t for row in threads for t in row if t.finish is None]
        if not live:
            break
        asks = [_continuation(t) for t in live]
        for thread, samples in zip(live, backend.generate(asks, deadline)):
            sample = samples[0]
            thread.costs += max(0, sample.prompt_tokens - sample.cached_tokens)
            _advance(thread, sample, thread.request.tools)  # type: ignore[arg-type]
    return [
        [Sample(t.text, t.prompt_tokens, t.generated, t.finish or "deadline", t.cached, tuple(t.calls)) for t in row]
        for row in threads
    ]


def _continuation(thread: _Thread) -> GenerateRequest:
    request = thread.request
    tools = request.tools
    assert tools is not None
    thread.rounds += 1
    left = request.max_tokens - thread.generated
    return replace(
        request,
        prompt=request.prompt + thread.text,
        n=1,
        max_tokens=min(left, MAX_INPUT_TOKENS) if thread.inside else left,
        stop=(tools.end,) if thread.inside else request.stop,
        seed=derive_seed(derive_seed(request.seed, thread.index), thread.rounds),
        tools=None,
    )


def _advance(thread: _Thread, sample: Sample, tools: ToolSyntax) -> None:
    """Take one round's sample into the thread: the text so far, and what comes next."""
    request = thread.request
    thread.generated += sample.completion_tokens
    if thread.inside:
        text, stopped = cut_at_stop(sample.text, request.stop)
        begin = tools.open_call(thread.text)
        thread.text += text
        if stopped:
            thread.finish = "stop"  # the step ended inside the call: no call
        elif sample.finish_reason == "stop" and begin is not None:  # at the end marker
            call = replace(tools.call(thread.text[begin:]), prefill=thread.costs)
            thread.text += tools.end + tools.written(call)
            thread.calls.append(call)
            thread.inside = False
            thread.costs = 0
        elif sample.finish_reason == "length" and thread.generated < request.max_tokens:
            thread.inside = False  # an input that long is no call: the model writes on
        else:
            thread.finish = sample.finish_reason
        return
    if thread.calls and thread.costs:  # the continuation after the last call has been paid
        thread.calls[-1] = replace(thread.calls[-1], prefill=thread.calls[-1].prefill + thread.costs)
        thread.costs = 0
    at = sample.text.find(tools.start)
    if at >= 0 and len(thread.calls) < tools.max_calls and sample.finish_reason != "deadline":
        thread.text += sample.text[: at + len(tools.start)]
        thread.inside = True
        return
    thread.text += sample.text
    thread.finish = sample.finish_reason
