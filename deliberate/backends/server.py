"""A backend for OpenAI-compatible servers: llama-server, llama_cpp.server, vLLM, SGLang.

Requests go to ``POST /completions`` from a thread pool, so that many search branches
are in flight at once and the server can batch them (llama_cpp.server queues them).
This module maps the search's requests onto the OpenAI completions protocol; the
HTTP layer under it (retries within the deadline, httpx errors turned into
deliberate's, finding the ``/v1`` base) is ``deliberate.backends.http``.

Servers differ; the differences are found at run time and recorded in ``stats.extra``:

- ``n_fallback``: the server ignores or refuses ``n > 1`` (llama_cpp.server returns one
  choice), so each sample is asked for on its own with seed ``derive_seed(seed, i)``.
- ``label_scoring``: "logprobs" reads the top log-probs of one greedy token; "sampled"
  counts labels in a few short samples, for servers that give no log-probs.

The deadline bounds every request: its timeout is at most the time left, a request cut
off by the deadline becomes a sample with ``finish_reason="deadline"``, and retries stop
when the next back-off would end past the deadline. Servers parse control tokens in any
prompt, so ``special=False`` cannot be honoured over HTTP.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import httpx

from deliberate.backends.base import BackendStats, BaseBackend, GenerateRequest, Sample, cut_at_stop, derive_seed, label_sample_request, sampled_label_logprobs
from deliberate.backends.http import HttpLayer, _Cutoff, _StatusError
from deliberate.clock import Deadline
from deliberate.errors import BackendError, ContextOverflowError, ServerError

TOP_LOGPROBS = 20  # vLLM's default cap on logprobs; others allow at least as many
POLL_SECONDS = 0.05  # how often a waiting batch looks at the deadline (Ctrl-C cancels it)

T = TypeVar("T")
R = TypeVar("R")
def _first_position(choice: dict[str, Any]) -> dict[str, float] | None:
    """The top log-probs at the first generated token; None when the server gave none.

    An empty dict means the completion ended at once (llama_cpp.server then lists nothing).
    """
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    entries: list[tuple[str, Any]]
    if isinstance(logprobs.get("content"), list):  # llama-server: a list of chat-style entries
        if not logprobs["content"]:
            return {}
        top = logprobs["content"][0].get("top_logprobs") or []
        entries = [(entry.get("token", ""), entry.get("logprob")) for entry in top]
    elif isinstance(logprobs.get("top_logprobs"), list):  # the legacy OpenAI shape: vLLM, llama_cpp.server
        top = logprobs["top_logprobs"]
        entries = list((top[0] or {}).items()) if top else []
    else:
        return None
    # SentencePiece and byte-level BPE vocabularies may show a leading space as "▁" or "Ġ".
    first: dict[str, float] = {}
    for token, logprob in entries:
        if isinstance(logprob, (int, float)) and math.isfinite(logprob):
            token = token.replace("\u2581", " ").replace("\u0120", " ")
            first[token] = max(first.get(token, -math.inf), float(logprob))
    return first


def label_logprobs(top: dict[str, float], labels: Sequence[str]) -> dict[str, float]:
    """Each label's log-prob among a position's top tokens (``top`` must not be empty).

    A label matches its token exactly, or else by stripped text, since some servers drop
    the leading space of a first piece. A label absent from the top-N is rarer than every
    listed token; half the smallest listed probability is a guess that stays finite and
    keeps it below all of them.
    """
    floor = min(top.values()) - math.log(2)
    scores: dict[str, float] = {}
    for label in labels:
        loose = [lp for token, lp in top.items() if token.strip() and token.strip() == label.strip()]
        scores[label] = top[label] if label in top else max(loose, default=floor)
    return scores


class ServerBackend(HttpLayer, BaseBackend):
    """Generation and label scoring over an OpenAI-compatible ``/v1`` HTTP API."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        label_samples: int = 8,
        concurrency: int = 8,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Check that ``base_url`` (``http://HOST:PORT/v1``) answers; use its first model by default.

        ``transport`` and ``sleep`` are for tests: an ``httpx.MockTransport`` as the server
        and a fake clock's ``advance`` as the back-off sleep.
        """
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.label_samples = label_samples
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(transport=transport, headers=headers, limits=limits, timeout=timeout)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliberate-http")
        self._lock = threading.Lock()
        self.stats = BackendStats()
        self.stats.extra.update(n_fallback=False, label_scoring="logprobs", sampled_prompts=0)
        try:
            listed = self._probe()
        except BaseException:
            self.close()
            raise
        self.model = model or listed

    # -- the protocol ------------------------------------------------------------
    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        started = time.perf_counter()
        results: list[list[Sample]] = [[] for _ in requests]

        def run(units: list[tuple[int, int, int]]) -> None:
            """Each unit is (request index, first sample index, samples in one HTTP request)."""
            replies = self._map(
                lambda u: self._complete(requests[u[0]], u[2], u[1], deadline),
                units,
                deadline,
                late=lambda u: [Sample("", 0, 0, "deadline")] * u[2],
            )
            for (ri, _, _), samples in zip(units, replies):
                results[ri].extend(samples)

        if self.stats.extra["n_fallback"]:
            run([(ri, i, 1) for ri, r in enumerate(requests) for i in range(r.n)])
        else:
            run([(ri, 0, r.n) for ri, r in enumerate(requests) if r.n > 0])
            # The server ignored n > 1: ask for the missing samples one at a time.
            run([(ri, i, 1) for ri, r in enumerate(requests) for i in range(len(results[ri]), r.n)])
        # Requests overlap, so the wall time of the batch, not the sum of requests, is decode time.
        self.stats.decode_seconds += time.perf_counter() - started
        return results

    def score_labels(
        self, prompts: Sequence[str], labels: Sequence[str], deadline: Deadline, *, special: bool = False
    ) -> list[dict[str, float]]:
        results = self._map(lambda p: self._score(p, labels, deadline), prompts, deadline, late=lambda p: {})
        self.stats.scored_prompts += sum(1 for scores in results if scores)
        return results

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        # llama-server's /apply-template sits at the server root, beside /v1.
        root = self.base_url.removesuffix("/v1")
        body = {"messages": list(messages), "add_generation_prompt": True}
        try:
            reply = self._post(f"{root}/apply-template", body, Deadline.after(self.timeout), retries=1)
            return str(reply["prompt"])
        except (_StatusError, KeyError, TypeError) as exc:
            raise BackendError(
                "this server cannot render chat templates; use a completion-style task or a local GGUF"
            ) from exc
        except _Cutoff as exc:
            raise ServerError(f"the model server at {root} did not render the chat template in time") from exc

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "server",
            "url": self.base_url,
            "model": self.model,
            "label_scoring": self.stats.extra["label_scoring"],
            "n_fallback": self.stats.extra["n_fallback"],
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # -- requests ----------------------------------------------------------------
    def _complete(self, request: GenerateRequest, count: int, index: int, deadline: Deadline) -> list[Sample]:
        """Up to ``count`` samples from one request; fewer if the server ignores ``n``."""
        body = {
            "model": self.model,
            "prompt": request.prompt,
            "n": count,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": max(request.top_k, 0),
            # Sample i of a request uses derive_seed(seed, i); with n > 1 the server
            # derives the rest from the first seed.
            "seed": derive_seed(request.seed, index),
            # Match the local sampler: llama.cpp servers default to min_p 0.05 and
            # llama_cpp.server to repeat_penalty 1.1. Other servers ignore unknown fields.
            "min_p": 0.0,
            "repeat_penalty": 1.0,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        try:
            reply = self._post(f"{self.base_url}/completions", body, deadline)
        except _Cutoff:
            return [Sample("", 0, 0, "deadline")] * count
        except ContextOverflowError:
            return [Sample("", 0, 0, "context")] * count
        except _StatusError as exc:
            if count > 1 and 400 <= exc.status < 500:  # e.g. "only one completion choice is allowed"
                self.stats.extra["n_fallback"] = True
                return []
            raise
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))[:count]
        if len(choices) < count:
            if count == 1:
                raise ServerError(f"the model server at {self.base_url} returned no completion")
            self.stats.extra["n_fallback"] = True
        prompt_tokens, completion_tokens, cached = self._account(reply)
        # Usage is one total per request; share it out evenly among its choices.
        k = len(choices)
        samples = []
        for i, choice in enumerate(choices):
            text, _ = cut_at_stop(choice.get("text") or "", request.stop)
            tokens = completion_tokens // k + (1 if i < completion_tokens % k else 0)
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
            samples.append(Sample(text, prompt_tokens, tokens, finish, cached))
        return samples

    def _score(self, prompt: str, labels: Sequence[str], deadline: Deadline) -> dict[str, float]:
        if deadline.expired():
            return {}
        if self.stats.extra["label_scoring"] == "logprobs":
            body = {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0}
            body["logprobs"] = TOP_LOGPROBS  # top-N log-probs of the first (greedy) token
            try:
                reply = self._post(f"{self.base_url}/completions", body, deadline)
            except (_Cutoff, ContextOverflowError):
                return {}
            except _StatusError:
                reply = {}  # the server refuses logprobs: sample instead from now on
            choices = reply.get("choices") or [{}]
            top = _first_position(choices[0])
            if top is None:
                self.stats.extra["label_scoring"] = "sampled"
            elif top:
                self._account(reply)
                return label_logprobs(top, labels)
            # An empty position (the model ended at once) has nothing to read: sample this prompt.
        with self._lock:
            self.stats.extra["sampled_prompts"] += 1
        request = label_sample_request(prompt, self.label_samples)
        # Sequential on purpose: this already runs on a pool thread.
        samples = [] if self.stats.extra["n_fallback"] else self._complete(request, request.n, 0, deadline)
        for i in range(len(samples), request.n):
            samples += self._complete(request, 1, i, deadline)
        texts = [s.text for s in samples if s.finish_reason not in ("deadline", "context")]
        return sampled_label_logprobs(texts, labels) if texts else {}
    def _map(
        self, fn: Callable[[T], R], items: Sequence[T], deadline: Deadline, late: Callable[[T], R]
    ) -> list[R]:
        """``fn`` over ``items`` on the pool, in order; the first error cancels what has not started.

        Once the deadline passes, or Ctrl-C cancels it, an unfinished item gets ``late(item)``
        at once: a request's own timeout was set when it started, so it cannot see a cancel.
        """
        futures = [self._pool.submit(fn, item) for item in items]
        try:
            pending = set(futures)
            while pending and not deadline.expired():
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()  # raise the first error now, not after the rest finish
            return [future.result() if future.done() else late(item) for future, item in zip(futures, items)]
        finally:
            for future in futures:
                future.cancel()

    def _account(self, reply: dict[str, Any]) -> tuple[int, int, int]:
        """Add a reply's prompt, completion and cached token counts to the stats, and return them."""
        usage = reply.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")  # vLLM, SGLang
        cached = cached or (reply.get("timings") or {}).get("cache_n")  # llama-server
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        with self._lock:
            self.stats.prompt_tokens += prompt
            self.stats.completion_tokens += completion
            self.stats.cached_tokens += int(cached or 0)
        return prompt, completion, int(cached or 0)
