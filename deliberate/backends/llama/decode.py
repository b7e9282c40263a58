"""The decode loop: one ``llama_decode`` per step for every live branch.

A part of ``LlamaBackend`` (see ``deliberate.backends.llama``). A generate call turns
its requests into branches (one sequence id each), prefills each distinct prompt once
and copies it to its samples, then steps every branch together, each with its own
sampler chain, seed, stop strings, deadline and tool calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import llama_cpp as lc

from deliberate.backends.base import GenerateRequest, Sample, cut_at_stop, derive_seed
from deliberate.backends.llama.context import MIN_CHUNK, _EarliestLive, _Sooner
from deliberate.clock import Deadline
from deliberate.errors import ContextOverflowError
from deliberate.tools import ToolCall

# The most prompt tokens one joining branch feeds per decode step (``rolling``): a
# long prompt takes several steps, so the branches decoding beside it are not held
# up for one long prefill.
PREFILL_STEP = 128


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
    # After a tool call: the tool's tokens in ``pending`` are scored as they are decoded,
    # each by the logits before it, into the call's ``logprob``.
    scoring: bool = False
    # Continuous batching (``rolling``) prefills a joining request inside the decode
    # steps: ``prefill`` holds its prompt tokens still to feed, and ``ready`` runs
    # once the last one is decoded, with that token's batch index.
    prefill: list[int] = field(default_factory=list)
    ready: Callable[[int], None] | None = None
    out: bytearray = field(default_factory=bytearray)
    generated: int = 0
    cached: int = 0
    finish: str | None = None
    text: str = ""

    def sample(self, prompt_tokens: int) -> Sample:
        """What the caller gets for this branch once it is finished."""
        finish: Any = self.finish or "deadline"
        return Sample(self.text, prompt_tokens, self.generated, finish, self.cached, tuple(self.calls))


class Decoding:
    """The generating part of ``LlamaBackend``."""

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
            self._start_wave(requests, wave, prompts, deadline, deadlines, ids, branches)
            while self._step(branches):
                pass
        finally:
            self._free(branches, ids)
        self._trim_cache()
        return branches

    def _start_wave(
        self,
        requests: Sequence[GenerateRequest],
        wave: list[tuple[int, int]],
        prompts: dict[tuple[str, bool], list[int]],
        deadline: Any,
        deadlines: Sequence[Any] | None,
        ids: list[int],
        branches: list[_Branch],
    ) -> None:
        """Take ids for ``wave``'s branches (into ``branches``) and prefill their prompts;
        each prefilled branch has sampled its first token. ``deadline`` None means each
        branch has only its request's own deadline."""
        # Ids are taken inside the caller's try, each recorded as soon as it is held, so
        # a second Ctrl-C at any point still gives every one of them back.
        self._acquire_keeping(len(wave), [prompts[(requests[ri].prompt, requests[ri].special)] for ri, _ in wave], ids)
        for (ri, si), seq in zip(wave, ids):
            own = deadline if deadlines is None else deadlines[ri] if deadline is None else _Sooner(deadline, deadlines[ri])
            branches.append(_Branch(requests[ri], (ri, si), seq, own))
        # With per-request deadlines the wave prefills while any branch may still use
        # it, in chunks sized for the earliest live deadline.
        fill_deadline: Any = deadline if deadlines is None else _EarliestLive([b.deadline for b in branches])
        try:
            self._fill(self._plan_prefill(branches, prompts), fill_deadline)
        except ContextOverflowError:
            # The prompts do not fit in the KV cache together: those not yet
            # prefilled end with "context"; the others still decode.
            for branch in branches:
                if branch.sampler is None and branch.finish is None:
                    self._end_for_context(branch)
        for branch in branches:
            if branch.sampler is None and branch.finish is None:
                branch.finish = "deadline"  # its prefill did not finish in time

    def _free(self, branches: Sequence[_Branch], ids: Sequence[int] = ()) -> None:
        """Give back the branches' samplers and ids; what each sequence holds stays
        cached for later prompts. ``ids`` taken for branches never made are freed too."""
        for branch in branches:
            if branch.sampler is not None:
                lc.llama_sampler_free(branch.sampler)
                branch.sampler = None
            self._settle(branch.seq, branch.tokens)
            self.cache.release(branch.seq)
            branch.finish = branch.finish or "deadline"
        made = {branch.seq for branch in branches}
        for seq in ids:
            if seq not in made:  # taken, never used
                self._settle(seq, [])
                self.cache.release(seq)

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
            # The model wrote up to the marker, so the tool's tokens can be scored as its own.
            branch.scoring = branch.request.score_tools
        else:
            before = bytes(branch.out[: len(branch.out) - size])
            start = len(before.decode("utf-8", errors="ignore"))
            tail = self.model.tokenize(text[start:cut] + written, bos=False)
            feed = tail
            branch.out = bytearray(before + (text[start:cut] + written).encode("utf-8"))
        branch.calls.append(ToolCall(call.tool, call.input, call.output, call.ok, prefill=len(tail)))
        self.stats.prompt_tokens += len(tail)
        return feed

    def _score_call(self, branch: _Branch, last: int) -> None:
        """Set the last call's ``logprob``: each of the tool's tokens in ``pending`` (all
        but its first, the model's own end marker) scored by the logits one before it,
        which the step put at batch indices ``last - len(pending) + 1`` onwards."""
        first = last - len(branch.pending) + 1
        total = sum(float(self._log_probs(first + j)[token]) for j, token in enumerate(branch.pending[1:]))
        branch.calls[-1] = replace(branch.calls[-1], logprob=round(total, 4))
        branch.scoring = False

    def _end_for_context(self, branch: _Branch) -> None:
        """End ``branch`` with reason "context" and free its cells; its text so far stays."""
        branch.finish = "context"
        branch.pending = []
        branch.tokens = []  # nothing worth caching: _settle frees the sequence
        lc.llama_memory_seq_rm(self.memory, branch.seq, -1, -1)

    def _step(self, branches: Sequence[_Branch]) -> bool:
        """One ``llama_decode`` for the live branches; False when none is live."""
        live = [b for b in branches if b.finish is None and b.pending]
        # Do not start a step that would end after a branch's deadline: that branch
        # ends here, and the others decode on without it.
        for branch in live:
            if branch.deadline.remaining() <= self._step_seconds:
                branch.finish = "deadline"
        live = [b for b in live if b.finish is None]
        if not live:
            return False
        # One token per branch, and a tool's result after a call: as many branches as
        # fit in n_batch step now, the rest in the next step. Prompt tokens (a joining
        # branch's prefill, a tool's result) fill a step only as far as the earliest
        # deadline allows: a step of 512 prompt tokens can take seconds on a busy CPU,
        # more than a step of one token per branch took before it.
        # A step's time is taken as its tokens times the seconds per token of recent
        # big steps (their fixed cost included, so small steps are overestimated).
        left = min(b.deadline.remaining() for b in live)
        feed = self.n_batch if self._fixed_chunk or math.isinf(left) else max(1, int(0.8 * left / self._token_seconds))
        stepping: list[tuple[_Branch, int]] = []
        size = 0
        for branch in live:
            if len(branch.pending) > 1 and size + len(branch.pending) > feed:
                if stepping and size >= feed:
                    continue  # no room in this step: all of it in a later one
                keep = max(feed - size, 1)
                branch.pending, branch.prefill = branch.pending[:keep], branch.pending[keep:] + branch.prefill
                branch.scoring = False  # split over steps near a deadline: the call goes unscored
            if stepping and size + len(branch.pending) > self.n_batch:
                continue
            for j, token in enumerate(branch.pending):
                last = j == len(branch.pending) - 1 and not branch.prefill  # logits where it samples
                self._put(size, token, len(branch.tokens) + j, branch.seq, last or branch.scoring)
                size += 1
            stepping.append((branch, size - 1))
        started = time.perf_counter()
        try:
            self._decode(size)
        except ContextOverflowError:
            # The KV cache is full with nothing left to evict: the longest branch
            # ends here, with a reason, and gives its cells to the others.
            self._end_for_context(max(live, key=lambda b: len(b.tokens)))
            return True
        seconds = time.perf_counter() - started
        self.stats.decode_seconds += seconds
        self._step_seconds = seconds
        if size >= MIN_CHUNK:
            self._token_seconds = 0.5 * self._token_seconds + 0.5 * seconds / size
        self.stats.completion_tokens += len(stepping)
        for branch, index in stepping:
            if branch.scoring:
                self._score_call(branch, index)
            branch.tokens.extend(branch.pending)
            branch.pending = []
            if branch.prefill:  # more of its prompt to feed in the next step
                branch.pending, branch.prefill = branch.prefill[:PREFILL_STEP], branch.prefill[PREFILL_STEP:]
            elif branch.ready is not None:  # its prompt is in: sample (or score) from here
                ready, branch.ready = branch.ready, None
                ready(index)
            else:
                self._take(branch, lc.llama_sampler_sample(branch.sampler, self.ctx, index))
        return True
