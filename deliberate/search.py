"""The search: the only way a strategy reaches the model, the task or the clock.

A strategy calls ``expand``, ``evaluate``, ``prune``, ``backtrack`` and ``rollout``.
Each of them checks the budget first and raises ``StopSearch`` when it is spent, so
a strategy holds no timing code and can be stopped at any call. The search keeps the
thought graph, the event log and the best answer so far.

The budget has two parts. Until some terminal answer exists, exploration stops a
reserved slice (10 % by default) before the deadline, and ``finish`` spends that slice
completing the most promising partial state greedily. Once an answer exists,
exploration may use the whole budget.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from deliberate.backends.base import Backend, GenerateRequest, Sample, derive_seed, generate_with_tools
from deliberate.clock import Deadline
from deliberate.errors import ContextOverflowError
from deliberate.graph import ROOT, ThoughtGraph
from deliberate.tools import ToolCall, ToolSyntax
from deliberate.tasks.base import Step, Task, covers, label_probs, label_value, pending_openings, vote_labels

Event = dict[str, Any]
OPEN = ("open", "expanded")
FINAL = ("terminal", "solved", "failed")
FINISH_ON_INTERRUPT = 0.25  # seconds after Ctrl-C until which greedy finishing may run (the solve must end within 1 s)
# With no time limit, this many expansions in a row that add no node end the search
# ("stalled"): asking again has stopped finding anything new, and no clock will stop it.
STALL_LIMIT = 64


class StopSearch(Exception):
    """Raised by a search operation when the search must end; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SearchConfig:
    mode: Literal["propose", "sample"] | None = None  # None: the task's own preference
    # none: the model never judges; auto: value where the judge profile says the judge
    # separates good states from bad at that depth (without a profile: value everywhere)
    evaluator: Literal["value", "vote", "none", "auto"] = "value"
    verifier: bool = True  # let the task check arithmetic and final answers exactly
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    reserve: float = 0.1  # share of the budget kept for finishing greedily
    stop_when_solved: bool = True
    chat: bool = False  # render prompts with the model's chat template
    max_nodes: int | None = None
    answer_by: Literal["value", "vote"] = "value"  # how terminal answers are chosen
    heat: float = 0.1  # temperature added per earlier ask of the same opening, so re-asks vary more
    max_temperature: float = 1.2
    tools: bool = True  # let the task's tools (the calculator) compute parts of a step
    # After this many expansions of a state in a row that found no new move, the
    # search adds missing moves itself where a tool can complete them ("enumerated").
    enumerate_after: int = 1


@dataclass
class SearchStats:
    tokens: int = 0
    prompt_tokens: int = 0
    expansions: int = 0
    evaluations: int = 0
    merged: int = 0
    rejected: int = 0  # samples that produced no valid step
    enumerated: int = 0  # children whose move the search listed rather than the model
    tool_calls: int = 0


class Search:
    def __init__(
        self,
        question: str,
        task: Task,
        backend: Backend,
        deadline: Deadline,
        *,
        budget: float | None,
        config: SearchConfig | None = None,
        seed: int = 0,
        on_event: Callable[[Event], None] | None = None,
        graph: ThoughtGraph | None = None,
        events: list[Event] | None = None,
        elapsed_before: float = 0.0,
    ) -> None:
        self.question = question
        self.task = task
        self.backend = backend
        self.deadline = deadline
        self.budget = budget  # seconds, or None for no time limit
        self.config = config or SearchConfig()
        self.seed = seed
        self.on_event = on_event
        self.stats = SearchStats()
        self.stop_reason: str | None = None
        self._finishing: Deadline | None = None
        self._started = deadline.clock.now()
        self._elapsed_before = elapsed_before  # thinking time spent before a resume
        if graph is None:
            state = task.root(question)
            graph = ThoughtGraph(question, state, task.key(state), seed)
        self.graph = graph
        self.events: list[Event] = events if events is not None else []
        self._chat = backend.format_chat if self.config.chat else None
        self._barren = 0  # expansions in a row that added no node
        # For evaluator "auto": depth -> (ask the judge?, why); None means ask, as "value".
        self.judge_policy: Callable[[int], tuple[bool | None, str]] | None = None
        self._judge_at: dict[int, bool] = {}

    # -- time --------------------------------------------------------------------
    def elapsed(self) -> float:
        """Thinking seconds so far, including any earlier run that this one resumes."""
        return self._elapsed_before + self.deadline.clock.now() - self._started

    def _explore_deadline(self) -> Deadline:
        if self._finishing is not None:
            return self._finishing
        if self.budget is None or self.best_terminal() is not None:
            return self.deadline
        return self.deadline.sooner(max(0.0, self.deadline.remaining() - self.config.reserve * self.budget))

    def check(self) -> None:
        """Raise ``StopSearch`` if the search must end now."""
        if self.full():
            raise StopSearch("max-nodes")  # a hard cap: the greedy finish obeys it too
        if self.budget is None and self._barren >= STALL_LIMIT:
            raise StopSearch("stalled")
        if self._finishing is not None:
            if self._finishing.expired():
                raise StopSearch("interrupted" if self.deadline.cancelled else "deadline")
            return
        if self.deadline.cancelled:
            raise StopSearch("interrupted")
        if self.config.stop_when_solved and self.solved():
            raise StopSearch("solved")
        if self._explore_deadline().expired():
            raise StopSearch("deadline")

    def full(self) -> bool:
        """Whether the graph holds ``max_nodes`` nodes, so that no operation may add one."""
        return self.config.max_nodes is not None and len(self.graph) >= self.config.max_nodes

    # -- events ------------------------------------------------------------------
    def emit(self, kind: str, **data: Any) -> None:
        event = {"t": round(self.elapsed(), 4), "type": kind, **data}
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    # -- operations ----------------------------------------------------------------
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
        plans: list[_Plan] = []
        asked: dict[int, int] = {}  # samples planned per node in this call, for fresh seeds
        for listing, node in enumerate(nodes):
            if self.graph.status(node) not in OPEN:
                continue
            plans.extend(self._plan(listing, node, k, mode, temperature, rollout, asked))
        found = _Expansion([[] for _ in nodes], [[] for _ in nodes])
        if not plans:
            return found
        requests = [p.request for p in plans if p.request is not None]
        results = iter(generate_with_tools(self.backend, requests, self._explore_deadline()) if requests else [])
        before = len(self.graph)
        expanded = list(dict.fromkeys(p.node for p in plans))
        known = {node: len(self.graph[node]["moves_done"]) for node in expanded}
        sampled: list[Sample] = []
        for plan in plans:
            if plan.request is None:
                made, merged = self._add_steps(plan, list(plan.given), 0, rollout)
                self.graph[plan.node]["tries"] += len(plan.given)  # so rollouts' seeds move on
            else:
                samples = next(results)
                sampled.extend(samples)
                made, merged = self._add_children(plan, samples, rollout)
                self.graph[plan.node]["tries"] += plan.request.n
            found.children[plan.listing].extend(made)
            found.merges[plan.listing].extend(merged)
        for node in expanded:
            attrs = self.graph[node]
            attrs["expansions"] += 1
            # Asks that found (almost) no new move count towards enumerating the missing
            # ones: a model that mostly repeats moves it gave has stopped finding new ones.
            asked_now = sum(p.request.n for p in plans if p.node == node and p.request is not None)
            found_now = len(attrs["moves_done"]) - known[node]
            attrs["stale"] = 0 if found_now >= max(1, asked_now // 4) else attrs["stale"] + 1
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

    def _plan(
        self,
        listing: int,
        node: int,
        k: int,
        mode: str,
        temperature: float | None,
        rollout: bool,
        asked: dict[int, int],
    ) -> list[_Plan]:
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
            return [_Plan(listing, node, "", request, True)]
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
                    return [_Plan(listing, node, "", None, False, tuple(given))]
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
        for j, (opening, n) in enumerate(_spread(k, openings, start)):
            n = max(1, min(n, room.get(opening, n)))
            whole = self._complete(state, opening)
            if whole is not None:  # the opening is a whole move and a tool writes the rest
                plans.append(_Plan(listing, node, opening, None, False, (whole,)))
                continue
            earlier = 0 if rollout else attrs["asks"].get(opening, 0)
            request = self._request(text + opening, n, derive_seed(seed, j), self._warmer(base, earlier), False)
            plans.append(_Plan(listing, node, opening, request, False))
            asked[node] = asked.get(node, 0) + n
            if not rollout:
                attrs["asks"][opening] = earlier + 1
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
        )

    @property
    def _call_syntax(self) -> ToolSyntax | None:
        """The tool whose calls run inside generated text, when the task has one and
        tools are on (``Task.call_syntax``)."""
        if not self.config.tools or not getattr(self.task, "tools", False):
            return None
        return getattr(self.task, "call_syntax", None)

    def _add_children(self, plan: _Plan, samples: list[Sample], rollout: bool) -> tuple[list[int], list[int]]:
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

    def _add_steps(self, plan: _Plan, steps: list[Step], share: int, rollout: bool) -> tuple[list[int], list[int]]:
        """Add each step under the plan's node; the new children and the merges."""
        node = plan.node
        origin = "enumerated" if plan.request is None else "model"
        made: list[int] = []
        merged_into: list[int] = []
        for step in steps:
            if step.move is not None and step.move not in self.graph[node]["moves_done"]:
                self.graph[node]["moves_done"].append(step.move)
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
            )
            for call in step.calls:
                self.stats.tool_calls += 1
                self.emit("tool", node=child, parent=node, merged=merged, **call)
            if merged:
                self.stats.merged += 1
                if child not in self.graph.path(node):
                    merged_into.append(child)
                continue
            self.graph[child]["origin"] = origin
            self.graph[child]["calls"] = [dict(call) for call in step.calls]
            if origin == "enumerated":
                self.stats.enumerated += 1
            self.graph[child]["rollout"] = rollout
            self._judge_if_final(child)
            made.append(child)
        return made, merged_into

    def _judge_if_final(self, node: int) -> None:
        state = self.graph[node]["state"]
        if not self.task.is_terminal(state):
            return
        self.graph[node]["answer"] = self.task.answer(self.question, state)
        verdict = self.task.verify(self.question, state) if self.config.verifier else None
        if verdict is None:
            self.graph.set_status(node, "terminal")
            return
        self.graph.set_status(node, "solved" if verdict else "failed")
        self.graph.add_value(node, 1.0 if verdict else 0.0, "verifier", None, self.elapsed())
        self.emit("verify", node=node, ok=verdict, answer=self.graph[node]["answer"])

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

    def prune(self, node: int, reason: str, *, dead: bool = False) -> None:
        """Stop exploring ``node``. ``dead`` says it is proven hopeless; otherwise the
        prune is the strategy's choice, and ``revive`` can take it back."""
        if self.graph.status(node) in OPEN:
            self.graph.set_status(node, "pruned")
            self.graph[node]["pruned"] = {"reason": reason, "dead": dead}
            self.emit("prune", node=node, reason=reason, dead=dead)

    def revivable(self) -> list[int]:
        """Nodes pruned by a strategy's choice rather than proven dead."""
        return [n for n in self.graph.with_status("pruned") if not (self.graph[n]["pruned"] or {}).get("dead")]

    def revive(self, node: int) -> None:
        """Take back a strategy's prune: with time left, no state that is not proven
        dead stays unexplored."""
        if node in self.revivable():
            self.graph.set_status(node, "expanded" if self.graph[node]["expansions"] else "open")
            self.graph[node]["pruned"] = None
            self.emit("revive", node=node)

    def backtrack(self, from_node: int, to_node: int) -> None:
        self.emit("backtrack", source=from_node, target=to_node)

    def exhausted(self, node: int) -> bool:
        """Whether the task proves that ``node`` has nothing left to try: it lists the
        legal moves of the state, and each of them has given its child.

        A model that failed to give a step, however often, proves nothing: the node is
        asked again. Without a list of moves a node is never exhausted.
        """
        moves = self._moves(node)
        return moves is not None and set(moves) <= set(self.graph[node]["moves_done"])

    def is_terminal(self, node: int) -> bool:
        return self.graph.status(node) in FINAL

    def rollout(self, nodes: Sequence[int], *, temperature: float | None = None, retries: int = 2) -> list[int | None]:
        """Continue each node one sampled step at a time until it is final.

        All rollouts advance together, one batched call per step. A rollout that
        yields no valid step gets ``retries`` more tries before it is abandoned.
        Returns the final node each rollout reached, or None.
        """
        tips: list[int | None] = list(nodes)
        misses = [0] * len(tips)
        while True:
            active = [i for i, tip in enumerate(tips) if tip is not None and not self.is_terminal(tip)]
            active = [i for i in active if self.graph.status(tips[i]) in OPEN]  # type: ignore[arg-type]
            if not active:
                return [tip if tip is not None and self.is_terminal(tip) else None for tip in tips]
            found = self._expand([tips[i] for i in active], 1, mode="sample", temperature=temperature, rollout=True)  # type: ignore[misc]
            for i, new, follow in zip(active, found.children, found.merges):
                if new:
                    tips[i], misses[i] = new[0], 0
                    continue
                # A step into a state the graph already has: carry on from that node.
                if follow and (self.graph.status(follow[-1]) in OPEN or self.is_terminal(follow[-1])):
                    tips[i], misses[i] = follow[-1], 0
                    continue
                misses[i] += 1
                if misses[i] > retries:
                    tips[i] = None

    # -- answers -----------------------------------------------------------------
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
        if self.config.answer_by == "vote":
            votes: Counter[str] = Counter()
            for n in finals:  # a node reached again by other chains counts once per chain
                votes[self.graph[n]["answer"]] += 1 + len(self.graph[n]["aliases"])
            top = max(votes.values())
            finals = [n for n in finals if votes[self.graph[n]["answer"]] == top]
        return max(finals, key=lambda n: (self.graph.value(n) or 0.0, -self.graph[n]["created"]))

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


@dataclass(frozen=True)
class _Plan:
    """One request of an expansion and where its samples go."""

    listing: int  # index into the nodes passed to expand (a node may be listed twice)
    node: int
    opening: str  # text the prompt ends with, which the sample continues
    request: GenerateRequest | None  # None: no model call, the steps are ``given``
    proposing: bool  # a list of proposals rather than one step
    given: tuple[Step, ...] = ()  # steps the search listed and a tool completed


@dataclass
class _Expansion:
    children: list[list[int]]  # per listing: the new children
    merges: list[list[int]]  # per listing: existing nodes that samples reached again


def _with_calls(step: Step, calls: Sequence[ToolCall]) -> Step:
    """``step`` with the tool calls whose text it holds (a sample's calls, made while
    it was generated: a list of proposals gives each step its own)."""
    mine = [c for c in calls if f"{c.input}" in step.thought and c.output in step.thought]
    if not mine:
        return step
    return replace(step, calls=step.calls + tuple(c.record() for c in mine))


def _spread(k: int, openings: Sequence[str], start: int) -> list[tuple[str, int]]:
    """``k`` samples spread over the openings, rotating so repeated expansions cover them all."""
    openings = list(openings) or [""]
    if k < len(openings):
        return [(openings[(start + i) % len(openings)], 1) for i in range(k)]
    share, extra = divmod(k, len(openings))
    return [(opening, share + (1 if i < extra else 0)) for i, opening in enumerate(openings)]


def vote_value(share: float, count: int) -> float:
    """A vote share among ``count`` siblings on the value scale: n*s / (n*s + 1).

    A sibling with an average share (1/n) gets 0.5, like an unjudged node; the one
    every vote goes to approaches 1; one no vote goes to gets 0. So a lone sibling's
    label value and twenty voted siblings' values can be ranked together.
    """
    relative = share * count
    return relative / (relative + 1.0)
