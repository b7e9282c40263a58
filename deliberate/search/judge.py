"""Judging: the model's value and vote judgements of states, on one scale.

A part of ``Search`` (see ``deliberate.search``). ``evaluate`` asks the value judge
(label probabilities, turned into an expected value) or the vote judge (which
sibling is most promising, as a share of votes put on the value scale), where the
evaluator policy says the judge is worth asking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from deliberate.errors import ContextOverflowError
from deliberate.tasks.base import label_probs, label_value, vote_labels


class Judging:
    """The judging part of ``Search``."""

    def evaluate(
        self, nodes: Sequence[int], *, how: Literal["value", "vote", "none", "auto"] | None = None
    ) -> list[float | None]:
        """A value in [0, 1] for each node, batched into one model call; cached per state.

        Values share one scale whatever judged them: 1 is sure, 0 hopeless, 0.5 middling
        (which is also what an unjudged node counts as). A judge that fails (the KV cache
        full) leaves its nodes unjudged rather than ending the search.
        """
        self.check()
        how = how or self.config.evaluator
        if how == "none":  # no judge: every unverified state stays unjudged (0.5 when ranked)
            return [self.graph.value(n) for n in nodes]
        pending = [n for n in dict.fromkeys(nodes) if not self._has_value(n)]
        if how == "auto":  # ask only at depths where the judge was measured to help
            pending = [n for n in pending if self._worth_judging(self.graph.depth(n))]
            how = "value"
        try:
            if how == "vote":
                pending = self._vote(pending)
            if pending:
                self._value(pending)
        except ContextOverflowError as error:
            self.emit("evaluate", source=how, nodes=[], values=[], error=str(error))
        return [self.graph.value(n) for n in nodes]

    def _worth_judging(self, depth: int) -> bool:
        """For ``evaluator="auto"``: whether to ask the judge at ``depth``, decided once
        per depth and recorded as an "evaluator" event with the reason."""
        if depth not in self._judge_at:
            asked, why = self.judge_policy(depth) if self.judge_policy else (None, "no judge profile")
            self._judge_at[depth] = asked is not False
            self.emit("evaluator", depth=depth, judge=self._judge_at[depth], why=why)
        return self._judge_at[depth]

    def _has_value(self, node: int) -> bool:
        return any(v["source"] in ("value", "vote", "verifier") for v in self.graph[node]["values"])

    def _value(self, nodes: list[int]) -> None:
        labels = self.task.labels
        prompts = [
            self.task.value_prompt(self.question, self.graph[n]["state"]).render(self._chat) for n in nodes
        ]
        scores = self.backend.score_labels(prompts, list(labels), self._explore_deadline(), special=self.config.chat)
        # How the backend scored them, where it has more than one way (a server backend).
        via = getattr(getattr(self.backend, "stats", None), "extra", {}).get("label_scoring")
        done = []
        for node, logprobs in zip(nodes, scores):
            probs = label_probs(logprobs, labels)
            if probs is None:
                continue  # unscored: the deadline passed
            value = label_value(probs, labels)
            detail: dict[str, Any] = {k.strip(): round(p, 4) for k, p in probs.items()}
            if via:
                detail["via"] = via
            self.graph.add_value(node, value, "value", detail, self.elapsed())
            done.append(node)
        self.stats.evaluations += len(done)
        if done:
            self.emit("evaluate", source="value", nodes=done, values=[round(self.graph.value(n), 4) for n in done])

    def _vote(self, nodes: list[int]) -> list[int]:
        """Vote among siblings; returns the nodes a vote could not cover (lone children)."""
        groups: dict[int | None, list[int]] = {}
        for node in nodes:
            groups.setdefault(self.graph.parent(node), []).append(node)
        alone: list[int] = []
        for parent, siblings in groups.items():
            if parent is None or len(siblings) < 2:
                alone.extend(siblings)
                continue
            for start in range(0, len(siblings), 20):
                batch = siblings[start : start + 20]
                if len(batch) < 2:
                    alone.extend(batch)
                    continue
                labels = vote_labels(len(batch))
                prompt = self.task.vote_prompt(
                    self.question, self.graph[parent]["state"], [self.graph[n]["thought"] for n in batch]
                ).render(self._chat)
                [logprobs] = self.backend.score_labels([prompt], labels, self._explore_deadline(), special=self.config.chat)
                probs = label_probs(logprobs, {label: 1.0 for label in labels})
                if probs is None:
                    continue
                values = [vote_value(probs[label], len(batch)) for label in labels]
                for node, label, value in zip(batch, labels, values):
                    self.graph.add_value(node, value, "vote", {"share": round(probs[label], 4), "of": len(batch)}, self.elapsed())
                self.stats.evaluations += len(batch)
                self.emit("evaluate", source="vote", nodes=batch, values=[round(v, 4) for v in values])
        return alone


def vote_value(share: float, count: int) -> float:
    """A vote share among ``count`` siblings on the value scale: n*s / (n*s + 1).

    A sibling with an average share (1/n) gets 0.5, like an unjudged node; the one
    every vote goes to approaches 1; one no vote goes to gets 0. So a lone sibling's
    label value and twenty voted siblings' values can be ranked together.
    """
    relative = share * count
    return relative / (relative + 1.0)
