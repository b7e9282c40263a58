"""The in-process llama.cpp backend: batched, prefix-shared generation on one context.

One context holds every branch of the search in a unified KV cache. A generate call
turns its requests into branches (one sequence id each) and then runs one
``llama_decode`` per step for all of them together, one token per live branch, each
with its own sampler chain and seed. A new prompt starts from the cached sequence
that shares its longest token prefix (``seq_cp``), so only the new suffix is
prefilled. Every index, size and sequence id is checked in Python before it reaches
llama.cpp, whose own checks abort the process.

The backend is one class in five files: this one (construction and the protocol),
``context`` (sequence ids, the prefix cache, prefill and the guarded llama.cpp
calls), ``decode`` (the decode loop: branches, samplers, stops and tool calls),
``rolling`` (continuous batching for many searches at once) and ``scoring`` (label
log-probabilities from one prefill).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import llama_cpp as lc

from deliberate.backends.base import BackendStats, BaseBackend, GenerateRequest, Sample
from deliberate.backends.llama.context import EXACT_CHUNK, MAX_SEQ, Context
from deliberate.backends.llama.decode import Decoding
from deliberate.backends.llama.rolling import Rolling
from deliberate.backends.llama.scoring import Scoring
from deliberate.backends.llama_model import LoadedModel, physical_cores
from deliberate.backends.prefix_cache import PrefixCache
from deliberate.clock import Deadline
from deliberate.errors import BackendError, ModelError

__all__ = ["LlamaBackend"]


class LlamaBackend(Rolling, Decoding, Scoring, Context, BaseBackend):
    """Batched generation and label scoring on a GGUF model, in this process."""

    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int = 8192,
        n_batch: int = 512,
        n_seq_max: int = 64,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_gpu_layers: int = 0,
        cache_fraction: float = 0.5,
        exact_batching: bool = False,
    ) -> None:
        if not 1 <= n_seq_max <= MAX_SEQ:
            raise ModelError(f"n_seq_max must be between 1 and {MAX_SEQ}, got {n_seq_max}")
        if n_ctx < n_seq_max:
            # llama.cpp clamps n_batch to n_ctx and then aborts on too many outputs.
            raise ModelError(f"n_ctx ({n_ctx}) must be at least n_seq_max ({n_seq_max})")
        if n_batch < n_seq_max:
            raise ModelError(f"n_batch ({n_batch}) must be at least n_seq_max ({n_seq_max})")
        for name, value in (("n_threads", n_threads), ("n_threads_batch", n_threads_batch)):
            if value is not None and value < 1:  # llama.cpp would take it as its own default
                raise ModelError(f"{name} must be at least 1 (or None for the physical cores), got {value}")
        started = time.perf_counter()
        # exact_batching trades ~10 % of tree-search speed for greedy output that is the
        # same whether a sequence decodes alone or batched with others.
        self.model = LoadedModel(model_path, n_gpu_layers=n_gpu_layers, repack=not exact_batching)
        threads = n_threads or physical_cores()
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = threads
        params.n_threads_batch = n_threads_batch or threads
        params.kv_unified = True  # all branches share one cache, so seq_cp shares cells
        params.swa_full = True  # sliding-window layers keep every position, so seq_rm can rewind
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(self.model.ptr, params)
        if not self.ctx:
            self.model.close()
            raise ModelError(f"llama.cpp could not create a context for {model_path} (n_ctx={n_ctx})")
        self.memory = lc.llama_get_memory(self.ctx)
        self.n_ctx = lc.llama_n_ctx(self.ctx)
        self.n_ctx_seq = lc.llama_n_ctx_seq(self.ctx)
        self.n_batch = lc.llama_n_batch(self.ctx)
        self.n_seq_max = lc.llama_n_seq_max(self.ctx)
        self.batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self.cache = PrefixCache(self.n_seq_max)
        self.cache_cells = int(self.n_ctx * cache_fraction)
        self.params = {
            "n_ctx": self.n_ctx,
            "n_batch": self.n_batch,
            "n_seq_max": self.n_seq_max,
            "n_threads": threads,
            "n_threads_batch": params.n_threads_batch,
            "n_gpu_layers": n_gpu_layers,
            "exact_batching": exact_batching,
        }
        self.stats = BackendStats()
        self._chat = self.model.chat_formatter()
        self._step_seconds = 0.0  # the last decode step's duration
        self._feed_offsets: dict[int, int] = {}  # seq -> prompt tokens it shared from the cache
        self._fixed_chunk = EXACT_CHUNK if exact_batching else None
        # Prefill tokens/s, first measured by the warm-up, then refined as we go; it sizes
        # prefill chunks near the deadline.
        self._prefill_rate = self._warm_up()
        self._token_seconds = 1 / self._prefill_rate  # per token of a decode step of MIN_CHUNK or more (decode.py)
        self.load_seconds = time.perf_counter() - started

    def _warm_up(self) -> float:
        # llama.cpp sizes its compute buffers on the first decode; pay that (up to a
        # second on CPU) while loading, not out of the first search's thinking budget.
        tokens = self.model.tokenize("Warm up the context with a full batch of text. " * 40)[: min(self.n_batch, self.n_ctx_seq - 1)]
        for i, token in enumerate(tokens):
            self._put(i, token, i, 0, i == len(tokens) - 1)
        started = time.perf_counter()
        self._decode(len(tokens))
        lc.llama_memory_seq_rm(self.memory, 0, -1, -1)
        return len(tokens) / max(time.perf_counter() - started, 1e-6)  # prefill tokens/s

    # -- the protocol ----------------------------------------------------------
    def generate(
        self, requests: Sequence[GenerateRequest], deadline: Deadline, *, deadlines: Sequence[Deadline] | None = None
    ) -> list[list[Sample]]:
        """One list of ``request.n`` samples per request, in order (see ``Backend``).

        ``deadlines``, one per request, lets the requests of several searches share
        this call (``backends.shared``): each branch then stops at its own request's
        deadline, or at ``deadline``, whichever passes first.
        """
        if deadlines is not None and len(deadlines) != len(requests):
            raise BackendError(f"{len(deadlines)} deadlines for {len(requests)} requests")
        results: list[list[Sample | None]] = [[None] * r.n for r in requests]
        units = [(ri, si) for ri, r in enumerate(requests) for si in range(r.n)]
        prompts: dict[tuple[str, bool], list[int]] = {}
        for request in requests:
            if (request.prompt, request.special) not in prompts:
                tokens = self.model.tokenize(request.prompt, special=request.special)
                if not tokens:
                    raise BackendError("empty prompt: nothing to continue from")
                prompts[(request.prompt, request.special)] = tokens
        # Waves of at most n_seq_max branches: each branch holds one sequence id.
        for start in range(0, len(units), self.n_seq_max):
            wave = units[start : start + self.n_seq_max]
            for branch in self._run_wave(requests, wave, prompts, deadline, deadlines):
                ri, si = branch.key
                prompt_tokens = len(prompts[(requests[ri].prompt, requests[ri].special)])
                results[ri][si] = branch.sample(prompt_tokens)
        return [[s for s in samples if s is not None] for samples in results]  # type: ignore[misc]

    tools_inline = True  # generate runs each request's tool calls in its decode loop

    def generate_with_tools(
        self, requests: Sequence[GenerateRequest], deadline: Deadline, *, deadlines: Sequence[Deadline] | None = None
    ) -> list[list[Sample]]:
        """``generate``, whose branches run their requests' tool calls as they write them.

        At a call's end marker the branch pauses for the tool (``_call_tool``); the
        result and the close marker are decoded into the same sequence in the branch's
        next step, beside the other branches' tokens: no prompt is prefilled again.
        """
        return self.generate(requests, deadline, deadlines=deadlines)

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        if self._chat is None:
            raise BackendError(f"{self.model.path.name} has no chat template; use a completion-style task")
        # Chat prompts are tokenized with special=True so the template's own turn markers
        # become control tokens. Message text is data: a control token's text inside it
        # (a forged "<|im_end|>") is broken with a zero-width space so it stays text.
        controls = self.model.control_pattern
        safe = [{**m, "content": _defuse(m.get("content", ""), controls)} for m in messages]
        return self._chat(messages=safe).prompt

    def describe(self) -> dict[str, Any]:
        return {"backend": "llama.cpp", **self.model.describe(), **self.params}

    def live_sequences(self) -> int:
        """Sequence ids held by running branches; zero between calls."""
        return len(self.cache.pinned)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            lc.llama_batch_free(self.batch)
            lc.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            self.model.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass


def _defuse(text: str, controls: re.Pattern[str] | None) -> str:
    """``text`` with every control token's text in it split after its first character."""
    if controls is None:
        return text
    return controls.sub(lambda m: m[0][0] + "\u200b" + m[0][1:], text)
