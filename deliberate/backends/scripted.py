"""A deterministic backend for tests: answers come from a script, time from a fake clock.

Each decode step (one token for every live sample, as in a real batched decode) moves
the fake clock forward by ``seconds_per_token``, so budget tests are exact and instant.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from deliberate.backends.base import BackendStats, BaseBackend, GenerateRequest, Sample, cut_at_stop, derive_seed
from deliberate.clock import Deadline, FakeClock

# A response function sees the prompt, the request and the sample's own seed.
Responder = Callable[[str, GenerateRequest, int], str]
Scorer = Callable[[str, Sequence[str]], dict[str, float]]

_TOKEN = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    """Whitespace-attached words: a cheap, reversible stand-in for a real tokenizer."""
    return _TOKEN.findall(text)


def uniform_scores(prompt: str, labels: Sequence[str]) -> dict[str, float]:
    return {label: -1.0986 for label in labels}


class ScriptedBackend(BaseBackend):
    """Queued texts are served first (``enqueue``); then ``respond`` is asked.

    ``history`` records every call as ``("generate" | "score", prompt)``.
    """

    def __init__(
        self,
        respond: Responder | None = None,
        *,
        scores: Scorer = uniform_scores,
        clock: FakeClock | None = None,
        seconds_per_token: float = 0.01,
        seconds_per_score: float = 0.01,
    ) -> None:
        self.respond = respond or (lambda prompt, request, seed: "")
        self.scores = scores
        self.clock = clock or FakeClock()
        self.seconds_per_token = seconds_per_token
        self.seconds_per_score = seconds_per_score
        self.queue: deque[str] = deque()
        self.history: list[tuple[str, str]] = []
        self.stats = BackendStats()
        self.closed = False

    def enqueue(self, *texts: str) -> None:
        self.queue.extend(texts)

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        planned: list[tuple[GenerateRequest, list[str]]] = []
        for request in requests:
            self.history.append(("generate", request.prompt))
            for i in range(request.n):
                seed = derive_seed(request.seed, i)
                text = self.queue.popleft() if self.queue else self.respond(request.prompt, request, seed)
                text, _ = cut_at_stop(text, request.stop)
                planned.append((request, tokenize(text)[: request.max_tokens]))
        # One step per token of the longest sample; every sample advances together.
        produced = [0] * len(planned)
        step = 0
        longest = max((len(tokens) for _, tokens in planned), default=0)
        # A step starts only if it can finish before the deadline, so the budget holds exactly.
        while step < longest and deadline.remaining() >= self.seconds_per_token:
            self.clock.advance(self.seconds_per_token)
            step += 1
            for j, (_, tokens) in enumerate(planned):
                produced[j] = min(step, len(tokens))
        if step < longest:
            # Cut off: a real model decodes until the deadline, so time runs out exactly.
            # Without this a fake clock could stop a hair short of the deadline forever.
            self._run_out(deadline)
        results: list[list[Sample]] = []
        j = 0
        for request in requests:
            samples = []
            for _ in range(request.n):
                _, tokens = planned[j]
                if produced[j] < len(tokens):
                    reason = "deadline"
                elif len(tokens) >= request.max_tokens:
                    reason = "length"
                else:
                    reason = "stop"
                prompt_tokens = len(tokenize(request.prompt))
                samples.append(
                    Sample("".join(tokens[: produced[j]]), prompt_tokens, produced[j], reason)
                )
                self.stats.prompt_tokens += prompt_tokens
                self.stats.completion_tokens += produced[j]
                j += 1
            results.append(samples)
        self.stats.decode_seconds += step * self.seconds_per_token
        return results

    def score_labels(
        self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False
    ) -> list[dict[str, float]]:
        if deadline.remaining() < self.seconds_per_score:
            if prompts:
                self._run_out(deadline)
            return [{} for _ in prompts]
        results = []
        for prompt in prompts:
            self.history.append(("score", prompt))
            results.append(dict(self.scores(prompt, labels)))
            self.stats.scored_prompts += 1
        if prompts:
            self.clock.advance(self.seconds_per_score)
        return results

    def _run_out(self, deadline: Deadline) -> None:
        self.clock.advance(deadline.remaining())  # lands on the deadline exactly

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>\n" for m in messages)
        return body + "<assistant>"

    def describe(self) -> dict[str, Any]:
        return {"backend": "scripted", "model": "scripted", "seconds_per_token": self.seconds_per_token}

    def close(self) -> None:
        self.closed = True
