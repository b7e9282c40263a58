"""Continuous batching: requests join the decode loop between steps, and leave it the
moment they finish.

A part of ``LlamaBackend`` (see ``deliberate.backends.llama``), used by
``backends.shared`` when several searches share one model. ``generate`` serves a
fixed set of requests and returns when the slowest branch is done, so a search whose
branches finished early waits on the others', the batch thins out towards the end of
every call, and each call's prompts are prefilled in decodes of their own.
``generate_rolling`` instead asks for new work before each step:

    backend.generate_rolling(admit, deliver)

- ``admit(live)`` is told how many sequence ids the loop holds and returns the units
  to start now: ``Generate`` (some samples of one request) and ``Score`` (one prompt
  to score). Each holds one id per sample until it is delivered.
- A unit's prompt suffix is prefilled inside the next decode steps, beside the tokens
  of the branches already decoding, up to ``PREFILL_STEP`` tokens a step.
- ``deliver(key, result)`` gets a unit's result the moment it is ready: its samples,
  its label log-probabilities (``{}`` when its deadline passed first), or the
  ``BackendError`` that makes it impossible (an empty prompt). Its ids are free for
  the next unit at once.

The call returns when ``admit`` has nothing and no unit is live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deliberate.backends.base import Generate, GenerateRequest, Sample, Score
from deliberate.backends.llama.decode import PREFILL_STEP, _Branch
from deliberate.backends.prefix_cache import PrefixCache
from deliberate.errors import BackendError

# A unit waits for a prompt being prefilled when it shares this many more tokens with
# it than with any cached sequence (as ``_fill`` does within one call, so the
# siblings of a new prompt prefill it once); for fewer, it prefills them itself.
WAIT_FOR = 32


@dataclass(eq=False)
class _Unit:
    """The branches of one admitted unit, delivered together once all are finished."""

    key: Any
    prompt_tokens: int
    branches: list[_Branch] = field(default_factory=list)
    scores: list[dict[str, float]] | None = None  # a Score unit's result, once read


class Rolling:
    """The continuous-batching part of ``LlamaBackend``."""

    def generate_rolling(
        self, admit: Callable[[int], Sequence[Generate | Score]], deliver: Callable[[Any, Any], None]
    ) -> None:
        """Serve units from ``admit`` until it has none and none is live (module docstring)."""
        live: list[_Branch] = []
        owner: dict[int, _Unit] = {}  # id(branch) -> its unit
        filling = PrefixCache(self.n_seq_max)  # the prompts being prefilled now
        waiting: list[Generate | Score] = []
        try:
            while True:
                units = [*waiting, *admit(len(live) + sum(unit.count for unit in waiting))]
                waiting = []
                for unit in units:
                    joined = self._join(unit, owner, deliver, filling, wait=bool(live))
                    if joined is None:
                        waiting.append(unit)
                    else:
                        live.extend(joined)
                if not live and not units:
                    return
                self._step(live)
                live = self._retire(live, owner, deliver, filling)  # their ids free before the next admit
        finally:
            self._free(live)
            self._trim_cache()

    def _join(
        self, unit: Generate | Score, owner: dict[int, _Unit], deliver: Callable[[Any, Any], None],
        filling: PrefixCache, *, wait: bool,
    ) -> list[_Branch] | None:  # fmt: skip
        """Start one unit's branches, or None when it should wait for a prompt now
        being prefilled (and ``wait`` allows). The first branch prefills the prompt
        suffix; once it is in, the others copy its cells and each samples its first
        token (or the labels are read)."""
        scoring = isinstance(unit, Score)
        request = GenerateRequest(unit.prompt, max_tokens=0, special=unit.special) if scoring else unit.request
        tokens = self.model.tokenize(request.prompt, special=request.special)
        if not tokens:
            deliver(unit.key, BackendError(f"empty prompt: nothing to {'score' if scoring else 'continue from'}"))
            return []
        firsts: list[int] = []
        if scoring:
            try:
                firsts = self._label_tokens(unit.labels)
            except BackendError as error:
                deliver(unit.key, error)
                return []
        ended = "deadline" if unit.deadline.expired() else "context" if len(tokens) >= self.n_ctx_seq - 1 else None
        if unit.count <= 0 or ended is not None:
            deliver(unit.key, {} if scoring else [Sample("", len(tokens), 0, ended) for _ in range(unit.count)])  # type: ignore[arg-type]
            return []
        if wait and filling.longest_prefix(tokens)[1] > self.cache.longest_prefix(tokens)[1] + WAIT_FOR:
            return None
        ids: list[int] = []
        try:
            self._acquire_keeping(unit.count, [tokens], ids)
        except BaseException:
            self._free([], ids)
            raise
        first = 0 if scoring else unit.first
        branches = [_Branch(request, (0, first + j), seq, unit.deadline) for j, seq in enumerate(ids)]
        record = _Unit(unit.key, len(tokens), branches, [{}] if scoring else None)
        head = branches[0]
        source, length = self.cache.longest_prefix(tokens)
        offset = self._copy_prefix(source, length, head.seq, tokens)
        head.tokens = tokens[:offset]
        head.pending, head.prefill = tokens[offset : offset + PREFILL_STEP], tokens[offset + PREFILL_STEP :]
        filling.insert(head.seq, tokens)
        if scoring:
            start = self._label_reader(record.scores, 0, unit.labels, firsts)  # type: ignore[arg-type]
        else:
            start = self._brancher(branches, tokens)

        def ready(index: int) -> None:
            filling.remove(head.seq)
            self.cache.insert(head.seq, tokens)  # only now: its cells are all decoded
            start(index)
            if scoring:
                head.finish = "stop"
                self.stats.scored_prompts += 1

        head.ready = ready
        for branch in branches:
            owner[id(branch)] = record
        return branches

    def _retire(
        self, live: list[_Branch], owner: dict[int, _Unit], deliver: Callable[[Any, Any], None], filling: PrefixCache
    ) -> list[_Branch]:
        """Free the finished branches; deliver each unit whose branches all are. The
        branches still decoding."""
        for branch in live:
            unit = owner[id(branch)]
            if branch.finish is not None and branch is unit.branches[0]:
                filling.remove(branch.seq)
                for other in unit.branches[1:]:  # its prompt never got in: they never started
                    if other.finish is None and other.sampler is None:
                        other.finish = branch.finish
        finished = [b for b in live if b.finish is not None]
        if not finished:
            return live
        self._free(finished)
        for branch in finished:
            unit = owner.pop(id(branch))
            if any(id(b) in owner for b in unit.branches):
                continue
            if unit.scores is not None:
                deliver(unit.key, unit.scores[0])
            else:
                deliver(unit.key, [b.sample(unit.prompt_tokens) for b in unit.branches])
        self._trim_cache()
        return [b for b in live if b.finish is None]
