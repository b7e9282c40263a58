"""The in-process llama.cpp backend: batched, prefix-shared generation on one context.

One context holds every branch of the search in a unified KV cache. A generate call
turns its requests into branches (one sequence id each) and then runs one
``llama_decode`` per step for all of them together, one token per live branch, each
with its own sampler chain and seed. A new prompt starts from the cached sequence
that shares its longest token prefix (``seq_cp``), so only the new suffix is
prefilled. Every index, size and sequence id is checked in Python before it reaches
llama.cpp, whose own checks abort the process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp as lc
import numpy as np

from deliberate.backends.base import BackendStats, GenerateRequest, Sample, cut_at_stop, derive_seed
from deliberate.backends.llama_model import LoadedModel, physical_cores
from deliberate.backends.prefix_cache import PrefixCache
from deliberate.clock import Deadline
from deliberate.errors import BackendError, ContextOverflowError, ModelError
from deliberate.tools import ToolCall

MAX_SEQ = 256  # llama.cpp's LLAMA_MAX_SEQ
MAX_CALL_SECONDS = 0.2  # the longest one prefill llama_decode may take, so a cancel is seen quickly
# Under exact_batching every prefill chunk has this many tokens (the last one fewer),
# whatever the clock says: chunk sizes change llama.cpp's float results.
EXACT_CHUNK = 128
# No prefill chunk is smaller than this (but for a prompt's last tokens). A decode has
# a fixed cost, so a rate measured on tiny chunks is mostly that cost: on a busy CPU
# the estimate would fall, the chunks shrink to one token and never grow back.
MIN_CHUNK = 32


@dataclass
class _Branch:
    """One sample being generated: its sequence id, sampler and output so far."""

    request: GenerateRequest
    key: tuple[int, int]  # (request index, sample index)
    seq: int
    deadline: Any = None  # a Deadline (or _Sooner): this branch stops when it passes
    sampler: Any = None
    tokens: list[int] = field(default_factory=list)  # tokens whose KV is in the sequence
    # Tokens to decode in the next step: the sampled token, and after a tool call the
    # tool's result tokens too, all decoded in the same llama_decode (logits for the last).
    pending: list[int] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    out: bytearray = field(default_factory=bytearray)
    generated: int = 0
    cached: int = 0
    finish: str | None = None
    text: str = ""


@dataclass
class _Feed:
    """Tokens to prefill into one sequence, and what to do once its last token is decoded."""

    seq: int
    prompt: list[int]
    start: int  # prompt[:start] was shared from the cache; prefill begins there
    on_ready: Callable[[int], None]  # receives the batch index of the last token's logits
    fed: int = 0  # tokens of prompt[start:] decoded so far

    def held(self) -> list[int]:
        """The prompt tokens whose cells the sequence holds now."""
        return self.prompt[: self.start + self.fed]


class LlamaBackend:
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
                results[ri][si] = Sample(
                    branch.text, prompt_tokens, branch.generated, branch.finish or "deadline", branch.cached,
                    tuple(branch.calls),
                )  # type: ignore[arg-type]
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

    def score_labels(
        self,
        prompts: Sequence[str],
        labels: Sequence[str],
        deadline: Deadline,
        *,
        special: bool = False,
        deadlines: Sequence[Deadline] | None = None,
    ) -> list[dict[str, float]]:
        """Label log-probabilities per prompt (see ``Backend``). ``deadlines``, one per
        prompt, works as in ``generate``: a prompt whose deadline has passed before its
        chunk starts stays unscored; prefill runs while any prompt's deadline is live."""
        if deadlines is not None and len(deadlines) != len(prompts):
            raise BackendError(f"{len(deadlines)} deadlines for {len(prompts)} prompts")
        firsts = []
        for label in labels:
            tokens = self.model.tokenize(label, bos=False)
            if not tokens:
                raise BackendError(f"label {label!r} has no tokens")
            firsts.append(tokens[0])
        if len(set(firsts)) != len(firsts):
            raise BackendError(f"labels {list(labels)} must start with different tokens")
        results: list[dict[str, float]] = [{} for _ in prompts]
        for start in range(0, len(prompts), self.n_seq_max):
            chunk = [i for i in range(start, min(start + self.n_seq_max, len(prompts)))]
            tokenized = {i: self.model.tokenize(prompts[i], special=special) for i in chunk}
            if not all(tokenized.values()):
                raise BackendError("empty prompt: nothing to score")
            fitting = [i for i in chunk if len(tokenized[i]) < self.n_ctx_seq]  # the rest stay unscored
            fill_deadline: Any = deadline
            if deadlines is not None:
                fitting = [i for i in fitting if not deadlines[i].expired()]
                fill_deadline = _EarliestLive([_Sooner(deadline, deadlines[i]) for i in fitting])
            ids: list[int] = []
            feeds: list[_Feed] = []
            try:
                self._acquire(len(fitting), ids)
                jobs = [
                    (seq, tokenized[i], self._label_reader(results, i, labels, firsts)) for i, seq in zip(fitting, ids)
                ]
                feeds = self._fill(jobs, fill_deadline)
            finally:
                held = {feed.seq: feed.held() for feed in feeds}
                for seq in ids:
                    self._settle(seq, held.get(seq, []))
                    self.cache.release(seq)
            self.stats.scored_prompts += sum(1 for i in fitting if results[i])
        self._trim_cache()
        return results

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

    # -- generation ------------------------------------------------------------
    def _run_wave(
        self,
        requests: Sequence[GenerateRequest],
        wave: list[tuple[int, int]],
        prompts: dict[tuple[str, bool], list[int]],
        deadline: Deadline,
        deadlines: Sequence[Deadline] | None = None,
    ) -> list[_Branch]:
        ids: list[int] = []
        branches: list[_Branch] = []
        try:
            # Ids are taken inside the try, each recorded as soon as it is held, so a
            # second Ctrl-C at any point still gives every one of them back.
            self._acquire_keeping(len(wave), [prompts[(requests[ri].prompt, requests[ri].special)] for ri, _ in wave], ids)
            branches = [
                _Branch(requests[ri], (ri, si), seq, deadline if deadlines is None else _Sooner(deadline, deadlines[ri]))
                for (ri, si), seq in zip(wave, ids)
            ]
            # With per-request deadlines the wave prefills while any branch may still
            # use it, in chunks sized for the earliest live deadline.
            fill_deadline: Any = deadline if deadlines is None else _EarliestLive([b.deadline for b in branches])
            try:
                self._fill(self._plan_prefill(branches, prompts), fill_deadline)
            except ContextOverflowError:
                # The prompts do not fit in the KV cache together: those not yet
                # prefilled end with "context"; the others still decode.
                for branch in branches:
                    if branch.sampler is None and branch.finish is None:
                        self._end_for_context(branch)
            self._decode_loop(branches)
        finally:
            for branch in branches:
                if branch.sampler is not None:
                    lc.llama_sampler_free(branch.sampler)
                    branch.sampler = None
                self._settle(branch.seq, branch.tokens)
                self.cache.release(branch.seq)
                branch.finish = branch.finish or "deadline"
            if not branches:
                for seq in ids:  # taken, never used
                    self._settle(seq, [])
                    self.cache.release(seq)
        self._trim_cache()
        return branches

    def _plan_prefill(
        self, branches: list[_Branch], prompts: dict[tuple[str, bool], list[int]]
    ) -> list[tuple[int, list[int], Callable[[int], None]]]:
        """One prefill per distinct request in the wave; its other samples copy the result."""
        jobs = []
        groups: dict[int, list[_Branch]] = {}
        for branch in branches:
            groups.setdefault(branch.key[0], []).append(branch)
        for group in groups.values():
            head = group[0]
            if head.deadline.expired():  # its search is over (or cancelled): prefill nothing for it
                for branch in group:
                    branch.finish = "deadline"
                continue
            tokens = prompts[(head.request.prompt, head.request.special)]
            if len(tokens) >= self.n_ctx_seq - 1:
                for branch in group:
                    branch.finish = "context"
                continue
            jobs.append((head.seq, tokens, self._brancher(group, tokens)))
        return jobs

    def _brancher(self, group: list[_Branch], tokens: list[int]) -> Callable[[int], None]:
        def ready(index: int) -> None:
            head = group[0]
            cached = self._feed_offsets.get(head.seq, 0)
            for branch in group:
                branch.cached = cached
                if branch is not head:  # share the prompt's cells, then diverge
                    lc.llama_memory_seq_cp(self.memory, head.seq, branch.seq, -1, -1)
                branch.tokens = list(tokens)
                branch.sampler = self._sampler(branch)
                self._take(branch, lc.llama_sampler_sample(branch.sampler, self.ctx, index))

        return ready

    def _sampler(self, branch: _Branch) -> Any:
        request = branch.request
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if request.temperature <= 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            if request.top_k > 0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(request.top_k))
            if 0 < request.top_p < 1:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(request.top_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(request.temperature))
            seed = derive_seed(request.seed, branch.key[1])
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
        return chain

    def _take(self, branch: _Branch, token: int) -> None:
        """Account for a sampled token and decide whether the branch goes on."""
        if branch.request.max_tokens <= 0:
            branch.finish = "length"  # asked for nothing: the sampled token is not kept
            return
        if not 0 <= token < self.model.n_vocab or self.model.is_end(token):
            branch.finish = "stop"
            branch.text = branch.out.decode("utf-8", errors="ignore")
            return
        piece = self.model.piece(token)
        branch.out += piece
        branch.generated += 1
        text = branch.out.decode("utf-8", errors="ignore")
        branch.text, stopped = cut_at_stop(text, branch.request.stop)
        feed = [token]
        tools = branch.request.tools
        if not stopped and tools is not None and len(branch.calls) < tools.max_calls:
            found = tools.finished_call(text)
            if found is not None:
                feed = self._call_tool(branch, token, len(piece), text, found)
                branch.text, stopped = cut_at_stop(branch.out.decode("utf-8", errors="ignore"), branch.request.stop)
        if stopped:
            branch.finish = "stop"
        elif branch.generated >= branch.request.max_tokens:
            branch.finish = "length"
        elif len(branch.tokens) + len(feed) >= self.n_ctx_seq:
            branch.finish = "context"
        else:
            branch.pending = feed

    def _call_tool(self, branch: _Branch, token: int, size: int, text: str, found: tuple[str, int]) -> list[int]:
        """Run the call ``text`` has just finished; the tokens to decode next.

        The tool's result and close marker join the branch's text and are decoded after
        the sampled token, in the same step. When the sampled token ran past the end
        marker (the model began to write a result of its own), it is replaced by the
        tokens of its text up to the marker.
        """
        tools = branch.request.tools
        assert tools is not None
        input_text, cut = found
        call = tools.call(input_text)
        written = tools.written(call)
        if cut == len(text):
            tail = self.model.tokenize(written, bos=False)
            feed = [token, *tail]
            branch.out += written.encode("utf-8")
        else:
            before = bytes(branch.out[: len(branch.out) - size])
            start = len(before.decode("utf-8", errors="ignore"))
            tail = self.model.tokenize(text[start:cut] + written, bos=False)
            feed = tail
            branch.out = bytearray(before + (text[start:cut] + written).encode("utf-8"))
        branch.calls.append(ToolCall(call.tool, call.input, call.output, call.ok, prefill=len(tail)))
        self.stats.prompt_tokens += len(tail)
        return feed

    def _end_for_context(self, branch: _Branch) -> None:
        """End ``branch`` with reason "context" and free its cells; its text so far stays."""
        branch.finish = "context"
        branch.pending = []
        branch.tokens = []  # nothing worth caching: _settle frees the sequence
        lc.llama_memory_seq_rm(self.memory, branch.seq, -1, -1)

    def _decode_loop(self, branches: list[_Branch]) -> None:
        while True:
            live = [b for b in branches if b.finish is None and b.pending]
            # Do not start a step that would end after a branch's deadline: that branch
            # ends here, and the others decode on without it.
            for branch in live:
                if branch.deadline.remaining() <= self._step_seconds:
                    branch.finish = "deadline"
            live = [b for b in live if b.finish is None]
            if not live:
                return
            # One token per branch, and a tool's result after a call: as many branches as
            # fit in n_batch step now, the rest in the next step.
            stepping: list[tuple[_Branch, int]] = []
            size = 0
            for branch in live:
                if stepping and size + len(branch.pending) > self.n_batch:
                    break
                for j, token in enumerate(branch.pending):
                    last = j == len(branch.pending) - 1
                    self._put(size, token, len(branch.tokens) + j, branch.seq, last)
                    size += 1
                stepping.append((branch, size - 1))
            started = time.perf_counter()
            try:
                self._decode(size)
            except ContextOverflowError:
                # The KV cache is full with nothing left to evict: the longest branch
                # ends here, with a reason, and gives its cells to the others.
                self._end_for_context(max(live, key=lambda b: len(b.tokens)))
                continue
            self._step_seconds = time.perf_counter() - started
            self.stats.decode_seconds += self._step_seconds
            self.stats.completion_tokens += len(stepping)
            for branch, index in stepping:
                branch.tokens.extend(branch.pending)
                branch.pending = []
                self._take(branch, lc.llama_sampler_sample(branch.sampler, self.ctx, index))

    # -- prefill and scoring ---------------------------------------------------
    def _fill(self, jobs: list[tuple[int, list[int], Callable[[int], None]]], deadline: Deadline) -> list[_Feed]:
        """Prefill each (sequence, prompt) job, starting from its longest cached prefix.

        Prompts in the same call share with each other too: a prompt whose best match
        is another prompt of this call waits one round, until that one is in the cache.
        """
        done: list[_Feed] = []
        waiting = list(jobs)
        while waiting and not deadline.expired():
            pending: set[int] = set()
            stage: list[_Feed] = []
            later = []
            for seq, tokens, on_ready in waiting:
                source, length = self.cache.longest_prefix(tokens)
                if source in pending:
                    later.append((seq, tokens, on_ready))
                    continue
                offset = self._copy_prefix(source, length, seq, tokens)
                self.cache.insert(seq, tokens)  # pinned, so never evicted mid-call
                pending.add(seq)
                self._feed_offsets[seq] = offset
                self.stats.prompt_tokens += len(tokens)
                self.stats.cached_tokens += offset
                stage.append(_Feed(seq, tokens, offset, on_ready))
            self._prefill(stage, deadline)
            done.extend(stage)
            waiting = later
        return done

    def _prefill(self, feeds: list[_Feed], deadline: Deadline) -> None:
        """Feed every sequence its prompt suffix, packed into batches of at most n_batch."""
        queue = [(feed, i) for feed in feeds for i in range(feed.start, len(feed.prompt))]
        position = 0
        while position < len(queue):
            if deadline.expired():
                return
            # Near the deadline, smaller chunks keep the overshoot small; and no chunk
            # runs longer than MAX_CALL_SECONDS, so Ctrl-C is never kept waiting.
            room = max(MIN_CHUNK, int(self._prefill_rate * min(0.5 * deadline.remaining(), MAX_CALL_SECONDS)))
            if self._fixed_chunk is not None:
                room = self._fixed_chunk
            size = max(1, min(self.n_batch, len(queue) - position, room))
            chunk = queue[position : position + size]
            ready = []
            for j, (feed, i) in enumerate(chunk):
                last = i == len(feed.prompt) - 1
                self._put(j, feed.prompt[i], i, feed.seq, last)
                if last:
                    ready.append((feed, j))
            started = time.perf_counter()
            self._decode(len(chunk))
            elapsed = time.perf_counter() - started
            if len(chunk) >= MIN_CHUNK:  # see MIN_CHUNK: small chunks measure the fixed cost
                self._prefill_rate = 0.5 * self._prefill_rate + 0.5 * len(chunk) / max(elapsed, 1e-6)
            for feed, _ in chunk:
                feed.fed += 1
            for feed, j in ready:
                feed.on_ready(j)
            position += size

    def _label_reader(
        self, results: list[dict[str, float]], i: int, labels: Sequence[str], firsts: list[int]
    ) -> Callable[[int], None]:
        def ready(index: int) -> None:
            pointer = lc.llama_get_logits_ith(self.ctx, index)
            if not pointer:
                raise BackendError("llama.cpp returned no logits")
            logits = np.ctypeslib.as_array(pointer, shape=(self.model.n_vocab,)).astype(np.float64)
            top = logits.max()
            norm = top + np.log(np.exp(logits - top).sum())
            results[i] = {label: float(logits[t] - norm) for label, t in zip(labels, firsts)}

        return ready

    # -- the guarded llama.cpp calls -------------------------------------------
    def _put(self, index: int, token: int, pos: int, seq: int, logits: bool) -> None:
        if not 0 <= index < self.n_batch:
            raise BackendError(f"batch index {index} outside n_batch {self.n_batch}")
        if not 0 <= seq < self.n_seq_max:
            raise BackendError(f"sequence id {seq} outside n_seq_max {self.n_seq_max}")
        if not 0 <= token < self.model.n_vocab:
            raise BackendError(f"token {token} outside the vocabulary")
        if not 0 <= pos < self.n_ctx_seq:
            raise ContextOverflowError(f"position {pos} is past the context of {self.n_ctx_seq} tokens")
        self.batch.token[index] = token
        self.batch.pos[index] = pos
        self.batch.n_seq_id[index] = 1
        self.batch.seq_id[index][0] = seq
        self.batch.logits[index] = logits

    def _decode(self, n_tokens: int) -> None:
        if not 0 < n_tokens <= self.n_batch:
            raise BackendError(f"batch of {n_tokens} tokens; n_batch is {self.n_batch}")
        self.batch.n_tokens = n_tokens
        while True:
            code = lc.llama_decode(self.ctx, self.batch)
            if code == 0:
                return
            # 1: no room in the KV cache. The call changed nothing, so free cells and retry.
            if code == 1 and self._evict(for_cells=True):
                continue
            if code == 1:
                raise ContextOverflowError(
                    f"the KV cache ({self.n_ctx} tokens) is full; raise n_ctx or lower the search width"
                )
            raise BackendError(f"llama_decode failed with code {code}")

    def _acquire_keeping(self, count: int, prompts: list[list[int]], ids: list[int]) -> None:
        """``count`` ids into ``ids``, evicting anything but the cached prefixes these
        prompts will copy from, when there is any other choice."""
        keep = {self.cache.longest_prefix(tokens)[0] for tokens in prompts} - {None} - self.cache.pinned
        self.cache.pinned |= keep  # type: ignore[arg-type]
        try:
            self._acquire(count, ids)
        except BackendError:
            self.cache.pinned -= keep
            self._acquire(count, ids)
        finally:
            self.cache.pinned -= keep

    def _acquire(self, count: int, ids: list[int]) -> None:
        """Take ``count`` sequence ids into ``ids``, each appended the moment it is held,
        so the caller's ``finally`` can give back every id, whatever interrupts this."""
        start = len(ids)
        while len(ids) < start + count:
            seq = self.cache.acquire()
            if seq is None:
                if self._evict(for_cells=False):
                    continue
                while len(ids) > start:
                    self.cache.release(ids.pop())
                raise BackendError("no free sequence ids: raise n_seq_max")
            ids.append(seq)
            lc.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def _evict(self, *, for_cells: bool) -> bool:
        victim = self.cache.lru_victim(for_cells=for_cells)
        if victim is None:
            return False
        lc.llama_memory_seq_rm(self.memory, victim, -1, -1)
        self.cache.remove(victim)
        return True

    def _copy_prefix(self, source: int | None, length: int, seq: int, tokens: list[int]) -> int:
        """Share ``source``'s first cells with ``seq``; how many prompt tokens that covers.

        At least the last prompt token is always decoded again, for its logits.
        """
        length = min(length, len(tokens) - 1)
        if source is None or length <= 0:
            return 0
        lc.llama_memory_seq_cp(self.memory, source, seq, 0, length)
        return length

    def _settle(self, seq: int, tokens: list[int]) -> None:
        """Record what ``seq`` holds now, so later prompts can share it."""
        if tokens:
            self.cache.insert(seq, tokens)
        else:
            lc.llama_memory_seq_rm(self.memory, seq, -1, -1)
            self.cache.remove(seq)

    def _trim_cache(self) -> None:
        # Every cached cell widens attention for every branch in a unified cache, so
        # keep the cache to a fraction of the context.
        while self.cache.cells > self.cache_cells and self._evict(for_cells=True):
            pass


class _Sooner:
    """Two deadlines read as one that passes when either does (a request's own
    deadline within a call's)."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def remaining(self) -> float:
        return min(self.first.remaining(), self.second.remaining())

    def expired(self) -> bool:
        return self.first.expired() or self.second.expired()


class _EarliestLive:
    """The deadlines of one shared prefill read as one: it has passed only when every
    one has (someone may still use the prompts), and its time left is the earliest
    live one's, so chunks shrink as that deadline nears and it is not overrun."""

    def __init__(self, deadlines: Sequence[Any]) -> None:
        self.deadlines = list(deadlines)

    def remaining(self) -> float:
        return min((left for left in (d.remaining() for d in self.deadlines) if left > 0), default=0.0)

    def expired(self) -> bool:
        return all(d.expired() for d in self.deadlines)


def _defuse(text: str, controls: re.Pattern[str] | None) -> str:
    """``text`` with every control token's text in it split after its first character."""
    if controls is None:
        return text
    return controls.sub(lambda m: m[0][0] + "\u200b" + m[0][1:], text)
