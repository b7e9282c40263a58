"""The context: sequence ids, the prefix cache, prefill, and the guarded llama.cpp calls.

A part of ``LlamaBackend`` (see ``deliberate.backends.llama``). Every index, size and
sequence id is checked here in Python before it reaches llama.cpp, whose own checks
abort the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp as lc
import numpy as np

from deliberate.clock import Deadline
from deliberate.errors import BackendError, ContextOverflowError

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


class Context:
    """The context part of ``LlamaBackend``."""

    # -- prefill ---------------------------------------------------------------
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
            room = self._fixed_chunk or self._chunk_tokens(deadline.remaining())
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
            self._measure_prefill(len(chunk), time.perf_counter() - started)
            for feed, _ in chunk:
                feed.fed += 1
            for feed, j in ready:
                feed.on_ready(j)
            position += size

    def _chunk_tokens(self, remaining: float) -> int:
        """How many prompt tokens one decode may feed with ``remaining`` seconds left.

        Near the deadline, smaller chunks keep the overshoot small; and no chunk runs
        longer than MAX_CALL_SECONDS, so Ctrl-C is never kept waiting. The MIN_CHUNK
        floor holds only while the deadline is far: on a busy CPU a 32-token chunk
        can take longer than the time that is left."""
        seconds = min(0.5 * remaining, MAX_CALL_SECONDS)
        return max(MIN_CHUNK if seconds >= MAX_CALL_SECONDS else 1, int(self._prefill_rate * seconds))

    def _measure_prefill(self, tokens: int, seconds: float) -> None:
        if tokens >= MIN_CHUNK:  # see MIN_CHUNK: small chunks measure the fixed cost
            self._prefill_rate = 0.5 * self._prefill_rate + 0.5 * tokens / max(seconds, 1e-6)

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

    def _log_probs(self, index: int) -> Any:
        """The log-probability of every token after batch index ``index`` of the last
        decode (a log-softmax of its logits, in float64)."""
        pointer = lc.llama_get_logits_ith(self.ctx, index)
        if not pointer:
            raise BackendError("llama.cpp returned no logits")
        logits = np.ctypeslib.as_array(pointer, shape=(self.model.n_vocab,)).astype(np.float64)
        top = logits.max()
        return logits - (top + np.log(np.exp(logits - top).sum()))

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
        """Share ``source``'s first cells with ``seq`` before its prompt ``tokens`` are
        prefilled; how many of them that covers (also kept in ``_feed_offsets`` and
        counted in the stats).

        At least the last prompt token is always decoded again, for its logits.
        """
        length = min(length, len(tokens) - 1)
        if source is None or length <= 0:
            length = 0
        else:
            lc.llama_memory_seq_cp(self.memory, source, seq, 0, length)
        self._feed_offsets[seq] = length
        self.stats.prompt_tokens += len(tokens)
        self.stats.cached_tokens += length
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
