"""The anytime finish: the best answer at any moment, and the greedy finish.

A part of ``Search`` (see ``deliberate.search``). Until a terminal answer exists,
exploration stops a reserved slice of the budget early, and ``finish`` spends that
slice completing the most promising partial state greedily; an interrupt shortens
it to ``FINISH_ON_INTERRUPT``.
"""

from __future__ import annotations

import math
from collections import defaultdict

from deliberate.errors import ContextOverflowError
from deliberate.graph import ROOT
from deliberate.search.config import FINISH_ON_INTERRUPT, OPEN, StopSearch


class Finishing:
    """The answering part of ``Search``."""

    def solved(self) -> bool:
        return bool(self.graph.with_status("solved"))

    def best_terminal(self) -> int | None:
        """The node whose answer the search would give now."""
        solved = self.graph.with_status("solved")
        if solved:
            return min(solved, key=lambda n: self.graph[n]["created"])
        finals = [n for n in self.graph.with_status("terminal") if self.graph[n]["answer"]]
        if not finals:
            return None
        votes: defaultdict[str, float] = defaultdict(float)
        for n in finals:  # a node reached again by other chains counts once per chain
            votes[self.graph[n]["answer"]] += self.graph.chains(n) * self.vote_weight(n)
        if self.config.answer_by == "vote":
            top = max(votes.values())
            finals = [n for n in finals if votes[self.graph[n]["answer"]] == top]
        # By value; among equal values (every value when no judge is asked), the answer
        # more chains reached; then the earliest.
        return max(finals, key=lambda n: (self.graph.value(n) or 0.0, votes[self.graph[n]["answer"]], -self.graph[n]["created"]))

    def vote_weight(self, node: int) -> float:
        """How much the chain ending at ``node`` counts in a vote.

        With ``vote_weight="tool-likelihood"``, the model's own probability of the tool
        results on its path, as if it had written them (each call's ``logprob``; a call
        without one counts 1). Without the tool, the verifier keeps a chain only if the
        model wrote its results right; with it, every result is right, and chains whose
        arithmetic the model could not have done vote as much as the rest. Weighting by
        that probability is the importance weight between the two: the tool arm's
        votes then estimate the same answer distribution as the arm without the tool,
        from chains that cost no rejected samples. Chains reaching one node share its
        text, and so its weight.
        """
        if self.config.vote_weight != "tool-likelihood":
            return 1.0
        logprob = sum(call.get("logprob") or 0.0 for n in self.graph.path(node) for call in self.graph[n]["calls"])
        return math.exp(logprob)

    def answer(self) -> str | None:
        best = self.best_terminal()
        return None if best is None else self.graph[best]["answer"]

    def best_partial(self) -> int:
        candidates = self.graph.with_status(*OPEN)
        if not candidates:
            return ROOT
        return max(candidates, key=lambda n: (self.graph.value(n) or 0.0, self.graph.depth(n), -n))

    def finish(self, *, until_the_end: bool = True) -> None:
        """Spend the reserve completing the best partial state, if no answer exists yet.

        First greedily, then with sampled rollouts from the best partial state, again
        and again until an answer exists or the time is up (``until_the_end``): time
        left is never wasted. After a strategy that ended by itself (every state tried)
        one round of sampled rollouts is all.
        """
        if self.best_terminal() is not None:
            return
        # After Ctrl-C, finishing may run until FINISH_ON_INTERRUPT after the signal
        # itself, however long the call in flight took to notice it; and a signal that
        # arrives during the finish ends it the same way.
        self._finishing = self.deadline.with_grace(FINISH_ON_INTERRUPT)
        try:
            start = self.best_partial()
            self.emit("finish", node=start)
            self.rollout([start], temperature=0.0)
            while self.best_terminal() is None:  # greedy led nowhere: sampled tries
                asked, size = self.stats.expansions, len(self.graph)
                self.rollout([self.best_partial()] * 3, temperature=max(self.config.temperature, 0.7))
                if self.stats.expansions == asked or not until_the_end:
                    break  # no state is left to roll out from
                if len(self.graph) == size:
                    # The rollouts only retraced known states: widen the states that still
                    # have a move to try instead, or stop if the task proves there is none.
                    waiting = [n for n in self.graph.with_status(*OPEN) if not self.exhausted(n)]
                    if not waiting:
                        break
                    waiting.sort(key=lambda n: (-(self.graph.value(n) or 0.5), self.graph[n]["expansions"]))
                    self.expand(waiting[:3], 8)
        except (StopSearch, ContextOverflowError):
            pass  # the best answer so far stands
        finally:
            self._finishing = None
