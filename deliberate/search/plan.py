"""Planning an expansion: which requests to send for a node's thoughts.

A part of ``Search`` (see ``deliberate.search``), used by ``generate``. For each node
it chooses the openings still worth asking, how many samples each gets, their seeds
and temperatures, and which missing moves a tool can complete with no model asked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deliberate.backends.base import GenerateRequest, derive_seed
from deliberate.tasks.base import Step, covers, pending_openings
from deliberate.tools import ToolSyntax


@dataclass(frozen=True)
class Plan:
    """One request of an expansion and where its samples go."""

    listing: int  # index into the nodes passed to expand (a node may be listed twice)
    node: int
    opening: str  # text the prompt ends with, which the sample continues
    request: GenerateRequest | None  # None: no model call, the steps are ``given``
    proposing: bool  # a list of proposals rather than one step
    given: tuple[Step, ...] = ()  # steps the search listed and a tool completed


class Planning:
    """The planning part of ``Search``; it reads the search's graph, task and config."""

    def _plan(
        self,
        listing: int,
        node: int,
        k: int,
        mode: str,
        temperature: float | None,
        rollout: bool,
        asked: dict[int, int],
    ) -> list[Plan]:
        """The requests that ask ``node`` for ``k`` thoughts; none if nothing is left to ask."""
        attrs = self.graph[node]
        state = attrs["state"]
        # Seeds count every sample ever asked of this node, so no call repeats one, and
        # a node listed twice (rollouts from the root) gets its own samples.
        seed = derive_seed(attrs["seed"], 1_000_003 + attrs["tries"] + asked.get(node, 0))
        base = self.config.temperature if temperature is None else temperature
        prompt = self.task.propose_prompt(self.question, state) if mode == "propose" else None
        if prompt is not None:
            warm = self._warmer(base, 0 if rollout else attrs["expansions"])
            request = self._request(prompt.render(self._chat), max(1, math.ceil(k / 3)), seed, warm, True)
            asked[node] = asked.get(node, 0) + request.n
            return [Plan(listing, node, "", request, True)]
        text = self.task.step_prompt(self.question, state).render(self._chat)
        # Openings ("5 *", "10 -") start each sampled step differently; a small base model
        # otherwise proposes the same step again and again.
        openings = self.task.openings(state)
        moves = self._moves(node)
        if moves is not None and not rollout:
            # Ask only under openings with a move still missing: a verified move has one
            # right result, so asking again for a move we have could only merge. A failed
            # ask is asked again (fresh seed, warmer) until it gives its step. (A rollout
            # may repeat a move: it follows the merge down the tree.)
            openings = pending_openings(openings, moves, attrs["moves_done"])
            if not openings:
                return []
            if attrs["stale"] >= self.config.enumerate_after:
                # Fresh-seed asks have stopped finding new moves: list the missing ones
                # (where a tool completes a bare move), so every move gets its chance.
                given = self._enumerate(state, moves, attrs["moves_done"], k)
                if given:
                    return [Plan(listing, node, "", None, False, tuple(given))]
        if rollout:
            # Rollouts start from a seeded opening: always taking the first would make
            # every rollout from a state try the same operation.
            start = derive_seed(seed, 17) % max(1, len(openings))
        else:
            # Openings never asked come first, then the ones asked least (which failed:
            # a move that gave its step is no longer pending).
            openings = sorted(openings, key=lambda o: attrs["asks"].get(o, 0))
            start = 0
        if moves is not None and not rollout:
            # No more samples under an opening than it has moves missing: the rest
            # could only repeat a move already asked for.
            missing = [m for m in moves if m not in set(attrs["moves_done"])]
            room = {o: sum(covers(o, m) for m in missing) for o in openings}
        else:
            room = {}
        plans = []
        for j, (opening, n) in enumerate(spread(k, openings, start)):
            n = max(1, min(n, room.get(opening, n)))
            whole = self._complete(state, opening)
            if whole is not None:  # the opening is a whole move and a tool writes the rest
                plans.append(Plan(listing, node, opening, None, False, (whole,)))
                continue
            earlier = 0 if rollout else self.graph.record_ask(node, opening)
            request = self._request(text + opening, n, derive_seed(seed, j), self._warmer(base, earlier), False)
            plans.append(Plan(listing, node, opening, request, False))
            asked[node] = asked.get(node, 0) + n
        return plans

    def _complete(self, state: dict[str, Any], move: str) -> Step | None:
        """The step a tool makes of a bare ``move`` alone, with no model asked; None
        where the task needs the model to write more (or the tools are off)."""
        if not self.config.tools or not getattr(self.task, "tools", False):
            return None
        step = self.task.parse_step(self.question, state, move, verify=self.config.verifier)
        return step if step is not None and step.calls else None

    def _enumerate(self, state: dict[str, Any], moves: Sequence[str], done: Sequence[str], k: int) -> list[Step]:
        """Up to ``k`` of the moves not yet done, completed by a tool."""
        steps: list[Step] = []
        for move in moves:
            if len(steps) == k:
                break
            if move not in done and (step := self._complete(state, move)) is not None:
                steps.append(step)
        return steps

    def _warmer(self, base: float, earlier: int) -> float:
        """The temperature for an ask made ``earlier`` times before: warmer each time,
        so that a move the model keeps failing on sees different samples."""
        if base <= 0:
            return base  # greedy stays greedy
        warmer = base + self.config.heat * earlier
        return round(min(warmer, max(base, self.config.max_temperature)), 4)

    def _moves(self, node: int) -> list[str] | None:
        moves = getattr(self.task, "moves", None)
        return None if moves is None else moves(self.graph[node]["state"], verify=self.config.verifier)

    def _request(self, prompt: str, n: int, seed: int, temperature: float, proposing: bool) -> GenerateRequest:
        return GenerateRequest(
            prompt=prompt,
            n=n,
            max_tokens=self.task.propose_tokens if proposing else self.task.step_tokens,
            stop=("\n\n",) if proposing else self.task.step_stop,
            temperature=temperature,
            top_k=self.config.top_k,
            top_p=self.config.top_p,
            seed=seed,
            special=self.config.chat,
            tools=self._call_syntax,
            score_tools=self.config.vote_weight == "tool-likelihood",
        )

    @property
    def _call_syntax(self) -> ToolSyntax | None:
        """The tool whose calls run inside generated text, when the task has one and
        tools are on (``Task.call_syntax``)."""
        if not self.config.tools or not getattr(self.task, "tools", False):
            return None
        return getattr(self.task, "call_syntax", None)


def spread(k: int, openings: Sequence[str], start: int) -> list[tuple[str, int]]:
    """``k`` samples spread over the openings, rotating so repeated expansions cover them all."""
    openings = list(openings) or [""]
    if k < len(openings):
        return [(openings[(start + i) % len(openings)], 1) for i in range(k)]
    share, extra = divmod(k, len(openings))
    return [(opening, share + (1 if i < extra else 0)) for i, opening in enumerate(openings)]
