"""Label scoring: the log-probability of each label's first token after each prompt.

A part of ``LlamaBackend`` (see ``deliberate.backends.llama``): one prefill per
prompt, prefix-shared like generation, and the logits of its last token read once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deliberate.backends.llama.context import _EarliestLive, _Feed, _Sooner
from deliberate.clock import Deadline
from deliberate.errors import BackendError


class Scoring:
    """The scoring part of ``LlamaBackend``."""

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
        unique = list(dict.fromkeys(prompts))
        if len(unique) < len(prompts):
            # A prompt listed twice is scored once: a second prefill would cost time,
            # and in another batch slot it can read different floats (by 0.03 in a
            # label value, measured), so one state would get two values.
            where = {prompt: k for k, prompt in enumerate(unique)}
            merged = None
            if deadlines is not None:
                groups: list[list[Any]] = [[] for _ in unique]
                for prompt, each in zip(prompts, deadlines):
                    groups[where[prompt]].append(each)
                merged = [_EarliestLive(group) for group in groups]
            scored = self.score_labels(unique, labels, deadline, special=special, deadlines=merged)
            return [dict(scored[where[prompt]]) for prompt in prompts]
        firsts = self._label_tokens(labels)
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

    def _label_tokens(self, labels: Sequence[str]) -> list[int]:
        """Each label's first token, by which it is scored; they must differ."""
        firsts = []
        for label in labels:
            tokens = self.model.tokenize(label, bos=False)
            if not tokens:
                raise BackendError(f"label {label!r} has no tokens")
            firsts.append(tokens[0])
        if len(set(firsts)) != len(firsts):
            raise BackendError(f"labels {list(labels)} must start with different tokens")
        return firsts

    def _label_reader(
        self, results: list[dict[str, float]], i: int, labels: Sequence[str], firsts: list[int]
    ) -> Callable[[int], None]:
        def ready(index: int) -> None:
            log_probs = self._log_probs(index)
            results[i] = {label: float(log_probs[t]) for label, t in zip(labels, firsts)}

        return ready
