"""Generation: asking the model for thoughts and adding them to the graph.

A part of ``Search`` (see ``deliberate.search``): ``expand`` gets its requests from
``plan``, sends them in one batched call, and turns the samples into children, merges
and tool-call events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from deliberate.backends.base import GenerateRequest, Sample, derive_seed
from deliberate.backends.tool_calls import generate_with_tools
from deliberate.errors import ContextOverflowError
from deliberate.graph import ROOT
from deliberate.search.config import OPEN
from deliberate.search.plan import Plan
from deliberate.tasks.base import Step
from deliberate.tools import ToolCall


class Generation:
    """The generating part of ``Search``: it sends the requests ``Planning`` makes and
    adds what comes back; it uses the search's graph, task, backend, config, stats and
    events."""

    def expand(
        self,
        nodes: Sequence[int],
        k: int,
        *,
        mode: Literal["propose", "sample"] | None = None,
        temperature: float | None = None,
        rollout: bool = False,
    ) -> list[list[int]]:
        """Generate up to ``k`` thoughts under each node, in one batched model call.

        Returns the new children of each node. A thought that reaches a state already
        in the graph is merged into that node and not returned again. Pruned and final
        nodes are never expanded, nor are nodes whose every move has its child; they
        get an empty list.
        """
        return self._expand(nodes, k, mode=mode, temperature=temperature, rollout=rollout).children

    def _expand(
        self,
        nodes: Sequence[int],
        k: int,
        *,
        mode: Literal["propose", "sample"] | None,
        temperature: float | None,
        rollout: bool,
    ) -> _Expansion:
        self.check()
        mode = mode or self.config.mode or self.task.mode
        plans: list[Plan] = []
        asked: dict[int, int] = {}  # samples planned per node in this call, for fresh seeds
        for listing, node in enumerate(nodes):
            if self.graph.status(node) not in OPEN:
                continue
            plans.extend(self._plan(listing, node, k, mode, temperature, rollout, asked))
        found = _Expansion([[] for _ in nodes], [[] for _ in nodes])
        if not plans:
            return found
        requests = [p.request for p in plans if p.request is not None]
        listing = [p.proposing for p in plans if p.request is not None]
        results = iter(self._tails(requests, listing, generate_with_tools(self.backend, requests, self._explore_deadline()))
                       if requests else [])
        before = len(self.graph)
        expanded = list(dict.fromkeys(p.node for p in plans))
        known = {node: len(self.graph[node]["moves_done"]) for node in expanded}
        sampled: list[Sample] = []
        for plan in plans:
            if plan.request is None:
                made, merged = self._add_steps(plan, list(plan.given), 0, rollout)
                self.graph.record_try(plan.node, len(plan.given))  # so rollouts' seeds move on
            else:
                samples = next(results)
                sampled.extend(samples)
                made, merged = self._add_children(plan, samples, rollout)
                self.graph.record_try(plan.node, plan.request.n)
            found.children[plan.listing].extend(made)
            found.merges[plan.listing].extend(merged)
        for node in expanded:
            # Asks that found (almost) no new move count towards enumerating the missing
            # ones: a model that mostly repeats moves it gave has stopped finding new ones.
            asked_now = sum(p.request.n for p in plans if p.node == node and p.request is not None)
            found_now = len(self.graph[node]["moves_done"]) - known[node]
            self.graph.record_expansion(node, found_new=found_now >= max(1, asked_now // 4))
            if self.graph.status(node) == "open":
                self.graph.set_status(node, "expanded")
        self.stats.expansions += len(expanded)
        self._barren = 0 if len(self.graph) > before else self._barren + 1
        per_node: dict[int, list[int]] = {node: [] for node in expanded}
        for listing, node in enumerate(nodes):
            if node in per_node:
                per_node[node].extend(found.children[listing])
        self.emit(
            "expand",
            nodes=expanded,
            children=[per_node[n] for n in expanded],
            mode="propose" if plans[0].proposing else "sample",
            tokens=sum(s.completion_tokens for s in sampled),
            enumerated=sum(len(p.given) for p in plans),
        )
        return found

    def _tails(self, requests: list[GenerateRequest], listing: list[bool],
               results: list[list[Sample]]) -> list[list[Sample]]:
        """The samples with each result the task wants decoded greedily (``greedy_tail``:
        Game of 24's number after "a op b =", without the calculator) written by one more
        batched call at temperature 0. A sampled step is a move that stopped at "=";
        in a list of proposals (``listing``) every line's move gets its own ask, from the
        same prompt, as if it were the first line. Lines with no move are dropped."""
        tail = getattr(self.task, "greedy_tail", None)
        if not tail:
            return results
        heads: dict[tuple[int, int], list[str]] = {}
        for i, samples in enumerate(results):
            for j, sample in enumerate(samples):
                if listing[i] and sample.finish_reason != "context":
                    heads[i, j] = self.task.listed_moves(sample.text)
                elif sample.finish_reason == "stop" and sample.text.strip():
                    heads[i, j] = [sample.text.rstrip()]
        asks = [(key, head) for key, lines in heads.items() for head in lines]
        if not asks:
            return results
        requests_ = [GenerateRequest(prompt=requests[i].prompt + head + tail, max_tokens=self.task.tail_tokens,
                                     stop=self.task.tail_stop, special=requests[i].special) for (i, _), head in asks]
        rests = iter(self.backend.generate(requests_, self._explore_deadline()))
        done = [list(samples) for samples in results]
        for (i, j), lines in heads.items():
            first, ends = results[i][j], [next(rests)[0] for _ in lines]
            if listing[i]:  # the lines whose result came back in time
                text = "".join(f"{h}{tail}{r.text}\n" for h, r in zip(lines, ends) if r.finish_reason != "deadline")
                reason = first.finish_reason
            else:
                text, reason = lines[0] + tail + ends[0].text, ends[0].finish_reason
            done[i][j] = replace(first, text=text, finish_reason=reason,
                                 completion_tokens=first.completion_tokens + sum(r.completion_tokens for r in ends),
                                 prompt_tokens=first.prompt_tokens + sum(r.prompt_tokens for r in ends),
                                 cached_tokens=first.cached_tokens + sum(r.cached_tokens for r in ends))
        return done

    def _add_children(self, plan: Plan, samples: list[Sample], rollout: bool) -> tuple[list[int], list[int]]:
        """The new children the samples made, and the existing nodes they merged into."""
        node = plan.node
        state = self.graph[node]["state"]
        verify = self.config.verifier
        made: list[int] = []
        merged_into: list[int] = []
        for sample in samples:
            self.stats.tokens += sample.completion_tokens
            self.stats.prompt_tokens += sample.prompt_tokens
            if sample.finish_reason == "context":
                if node == ROOT and len(self.graph) == 1:
                    raise ContextOverflowError(
                        f"the question does not fit in the model's context ({sample.prompt_tokens} prompt tokens)"
                    )
                if node != ROOT:
                    self.prune(node, "context window full", dead=True)
                continue
            text = plan.opening + sample.text
            if sample.finish_reason == "deadline":
                if not plan.proposing:
                    continue  # cut off mid-thought: not a step
                text = text[: text.rfind("\n") + 1]  # the finished lines of a list still count
            steps: list[Step]
            if plan.proposing:
                steps = self.task.parse_proposals(self.question, state, text, verify=verify)
            else:
                step = self.task.parse_step(self.question, state, text, verify=verify)
                steps = [step] if step is not None else []
            if sample.calls:
                steps = [_with_calls(step, sample.calls) for step in steps]
            if not steps:
                self.stats.rejected += 1
            new, merged = self._add_steps(plan, steps, sample.completion_tokens // max(1, len(steps)), rollout)
            made.extend(new)
            merged_into.extend(merged)
        return made, merged_into

    def _add_steps(self, plan: Plan, steps: list[Step], share: int, rollout: bool) -> tuple[list[int], list[int]]:
        """Add each step under the plan's node; the new children and the merges."""
        node = plan.node
        origin = "enumerated" if plan.request is None else "model"
        made: list[int] = []
        merged_into: list[int] = []
        for step in steps:
            if step.move is not None:
                self.graph.record_move(node, step.move)
            existing = self.graph.node_for_key(self.task.key(step.state))
            if existing is None and self.full():
                continue  # the node budget is a hard cap
            child, merged = self.graph.add_child(
                node,
                step.thought,
                step.state,
                self.task.key(step.state),
                seed=derive_seed(self.graph[node]["seed"], len(self.graph.children(node))),
                created=round(self.elapsed(), 4),
                tokens=share,
                origin=origin,
                calls=step.calls,
                rollout=rollout,
            )
            for call in step.calls:
                self.stats.tool_calls += 1
                self.emit("tool", node=child, parent=node, merged=merged, **call)
            if merged:
                self.stats.merged += 1
                if child not in self.graph.path(node):
                    merged_into.append(child)
                continue
            if origin == "enumerated":
                self.stats.enumerated += 1
            self._judge_if_final(child)
            made.append(child)
        return made, merged_into

    def _judge_if_final(self, node: int) -> None:
        state = self.graph[node]["state"]
        if not self.task.is_terminal(state):
            return
        self.graph.set_answer(node, self.task.answer(self.question, state))
        verdict = self.task.verify(self.question, state) if self.config.verifier else None
        if verdict is None:
            self.graph.set_status(node, "terminal")
            return
        self.graph.set_status(node, "solved" if verdict else "failed")
        self.graph.add_value(node, 1.0 if verdict else 0.0, "verifier", None, self.elapsed())
        self.emit("verify", node=node, ok=verdict, answer=self.graph[node]["answer"])


@dataclass
class _Expansion:
    children: list[list[int]]  # per listing: the new children
    merges: list[list[int]]  # per listing: existing nodes that samples reached again


def _with_calls(step: Step, calls: Sequence[ToolCall]) -> Step:
    """``step`` with the tool calls whose text it holds (a sample's calls, made while
    it was generated: a list of proposals gives each step its own)."""
    mine = [c for c in calls if c.input in step.thought and c.output in step.thought]
    if not mine:
        return step
    return replace(step, calls=step.calls + tuple(c.record() for c in mine))
