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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from deliberate.backends.base import Backend, GenerateRequest, Sample, derive_seed
from deliberate.clock import Deadline
from deliberate.errors import ContextOverflowError
from deliberate.graph import ROOT, ThoughtGraph
from deliberate.tasks.base import Step, Task, vote_labels

Event = dict[str, Any]
OPEN = ("open", "expanded")
FINAL = ("terminal", "solved", "failed")
FINISH_ON_INTERRUPT = 0.4  # seconds after Ctrl-C until which greedy finishing may run


class StopSearch(Exception):
    """Raised by a search operation when the search must end; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SearchConfig:
    mode: Literal["propose", "sample"] | None = None  # None: the task's own preference
    evaluator: Literal["value", "vote"] = "value"
    verifier: bool = True  # let the task check arithmetic and final answers exactly
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    reserve: float = 0.1  # share of the budget kept for finishing greedily
    stop_when_solved: bool = True
    chat: bool = False  # render prompts with the model's chat template
    max_nodes: int | None = None
    answer_by: Literal["value", "vote"] = "value"  # how terminal answers are chosen
    tries: int = 2  # samples per opening before a state without new thoughts is a dead end


@dataclass
class SearchStats:
    tokens: int = 0
    prompt_tokens: int = 0
    expansions: int = 0
    evaluations: int = 0
    merged: int = 0
    rejected: int = 0  # samples that produced no valid step


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
        self._merged_into: dict[int, list[int]] = {}  # the last expand's merges, per listing

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
        if self._finishing is not None:
            if self._finishing.expired():
                raise StopSearch("deadline")
            return
        if self.deadline.cancelled:
            raise StopSearch("interrupted")
        if self.config.stop_when_solved and self.solved():
            raise StopSearch("solved")
        if self.config.max_nodes is not None and len(self.graph) >= self.config.max_nodes:
            raise StopSearch("max-nodes")
        if self._explore_deadline().expired():
            raise StopSearch("deadline")

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
        nodes are never expanded; they get an empty list.
        """
        self.check()
        mode = mode or self.config.mode or self.task.mode
        temperature = self.config.temperature if temperature is None else temperature
        # One plan per request: (listing index, node, opening, request, proposing). A node
        # listed twice (rollouts from the root) is two listings with their own samples.
        plans: list[tuple[int, int, str, GenerateRequest, bool]] = []
        asked: dict[int, int] = {}  # samples planned per node in this call, for fresh seeds
        for index, node in enumerate(nodes):
            if self.graph.status(node) not in OPEN:
                continue
            state = self.graph[node]["state"]
            listing = sum(1 for p in plans if p[1] == node and p[0] != index)
            attempt = self.graph[node]["expansions"] + listing
            # Seeds count every sample ever asked of this node, so no call repeats one.
            seed = derive_seed(self.graph[node]["seed"], 1_000_003 + self.graph[node].get("tried", 0) + asked.get(node, 0))
            prompt = self.task.propose_prompt(self.question, state) if mode == "propose" else None
            if prompt is not None:
                request = self._request(prompt.render(self._chat), max(1, math.ceil(k / 3)), seed, temperature, True)
                plans.append((index, node, "", request, True))
                asked[node] = asked.get(node, 0) + request.n
                continue
            text = self.task.step_prompt(self.question, state).render(self._chat)
            # Openings ("5 *", "10 -") start each sampled step differently; a small base model
            # otherwise proposes the same step again and again.
            openings = self.task.openings(state)
            if not rollout:
                # An opening that already gave a valid step is not asked again: under the
                # verifier a checked step has one right completion, so a repeat could only
                # merge into the child we have. (A rollout may repeat one: it follows
                # the merge down the tree.)
                done = self.graph[node].get("openings_done", [])
                fresh = [o for o in openings if o not in done]
                if openings and not fresh:
                    continue  # every opening of this state has its thought already
                openings = fresh
            # Rollouts start from a seeded opening: always taking the first would make
            # every rollout from a state try the same operation.
            start = derive_seed(seed, 17) % max(1, len(openings)) if rollout else attempt * k
            for j, (opening, n) in enumerate(_spread(k, openings, start)):
                request = self._request(text + opening, n, derive_seed(seed, j), temperature, False)
                plans.append((index, node, opening, request, False))
                asked[node] = asked.get(node, 0) + n
        if not plans:
            return [[] for _ in nodes]
        results = self.backend.generate([p[3] for p in plans], self._explore_deadline())
        children: list[list[int]] = [[] for _ in nodes]
        self._merged_into = {}
        for (index, node, opening, _, proposing), samples in zip(plans, results):
            children[index].extend(self._add_children(index, node, opening, samples, proposing, rollout))
        for _, node, _, request, _ in plans:
            self.graph[node]["tried"] = self.graph[node].get("tried", 0) + request.n
        expanded = list(dict.fromkeys(p[1] for p in plans))
        for node in expanded:
            self.graph[node]["expansions"] += 1
            if self.graph.status(node) == "open":
                self.graph.set_status(node, "expanded")
        self.stats.expansions += len(expanded)
        per_node: dict[int, list[int]] = {node: [] for node in expanded}
        for index, node in enumerate(nodes):
            if node in per_node:
                per_node[node].extend(children[index])
        self.emit(
            "expand",
            nodes=expanded,
            children=[per_node[n] for n in expanded],
            mode="propose" if plans[0][4] else "sample",
            tokens=sum(s.completion_tokens for samples in results for s in samples),
        )
        return children

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
        )

    def _add_children(
        self, index: int, node: int, opening: str, samples: list[Sample], proposing: bool, rollout: bool
    ) -> list[int]:
        state = self.graph[node]["state"]
        verify = self.config.verifier
        made: list[int] = []
        for sample in samples:
            self.stats.tokens += sample.completion_tokens
            self.stats.prompt_tokens += sample.prompt_tokens
            if sample.finish_reason == "context":
                if node == ROOT:
                    raise ContextOverflowError(
                        f"the question does not fit in the model's context ({sample.prompt_tokens} prompt tokens)"
                    )
                self.prune(node, "context window full")
                continue
            text = opening + sample.text
            if sample.finish_reason == "deadline":
                if not proposing:
                    continue  # cut off mid-thought: not a step
                text = text[: text.rfind("\n") + 1]  # the finished lines of a list still count
            steps: list[Step]
            if proposing:
                steps = self.task.parse_proposals(self.question, state, text, verify=verify)
            else:
                step = self.task.parse_step(self.question, state, text, verify=verify)
                steps = [step] if step is not None else []
            if not steps:
                self.stats.rejected += 1
            share = sample.completion_tokens // max(1, len(steps))
            if steps and opening and not proposing:
                done = self.graph[node].setdefault("openings_done", [])
                if opening not in done:
                    done.append(opening)
            for step in steps:
                child, merged = self.graph.add_child(
                    node,
                    step.thought,
                    step.state,
                    self.task.key(step.state),
                    seed=derive_seed(self.graph[node]["seed"], len(self.graph.children(node))),
                    created=round(self.elapsed(), 4),
                    tokens=share,
                )
                if merged:
                    self.stats.merged += 1
                    if child not in self.graph.path(node):
                        self._merged_into.setdefault(index, []).append(child)
                    continue
                self.graph[child]["rollout"] = rollout
                self._judge_if_final(child)
                made.append(child)
        return made

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

    def evaluate(self, nodes: Sequence[int], *, how: Literal["value", "vote"] | None = None) -> list[float | None]:
        """A value for each node, batched into one model call; cached per state."""
        self.check()
        how = how or self.config.evaluator
        pending = [n for n in dict.fromkeys(nodes) if not self._has_value(n)]
        if how == "vote":
            pending = self._vote(pending)
        if pending:
            self._value(pending)
        return [self.graph.value(n) for n in nodes]

    def _has_value(self, node: int) -> bool:
        return any(v["source"] in ("value", "vote", "verifier") for v in self.graph[node]["values"])

    def _value(self, nodes: list[int]) -> None:
        labels = self.task.labels
        prompts = [
            self.task.value_prompt(self.question, self.graph[n]["state"]).render(self._chat) for n in nodes
        ]
        scores = self.backend.score_labels(prompts, list(labels), self._explore_deadline(), special=self.config.chat)
        done = []
        for node, logprobs in zip(nodes, scores):
            if not logprobs:
                continue  # unscored: the deadline passed
            probs = _softmax(logprobs)
            value = sum(probs[label] * labels[label] for label in labels)
            self.graph.add_value(node, value, "value", {k.strip(): round(p, 4) for k, p in probs.items()}, self.elapsed())
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
                if not logprobs:
                    continue
                probs = _softmax(logprobs)
                for node, label in zip(batch, labels):
                    self.graph.add_value(node, probs[label], "vote", {"of": len(batch)}, self.elapsed())
                self.stats.evaluations += len(batch)
                self.emit("evaluate", source="vote", nodes=batch, values=[round(probs[l], 4) for l in labels])
        return alone

    def prune(self, node: int, reason: str) -> None:
        if self.graph.status(node) in OPEN:
            self.graph.set_status(node, "pruned")
            self.emit("prune", node=node, reason=reason)

    def backtrack(self, from_node: int, to_node: int) -> None:
        self.emit("backtrack", source=from_node, target=to_node)

    def exhausted(self, node: int) -> bool:
        """Whether ``node`` has been sampled ``config.tries`` times per opening the task
        offers, so that no new child means a dead end rather than bad luck."""
        offered = self.task.openings(self.graph[node]["state"])
        done = self.graph[node].get("openings_done", [])
        if offered and all(o in done for o in offered):
            return True
        return self.graph[node].get("tried", 0) >= self.config.tries * max(1, len(offered))

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
            steps = self.expand([tips[i] for i in active], 1, mode="sample", temperature=temperature, rollout=True)  # type: ignore[misc]
            for listing, (i, new) in enumerate(zip(active, steps)):
                if new:
                    tips[i], misses[i] = new[0], 0
                    continue
                # A step into a state the graph already has: carry on from that node.
                follow = self._merged_into.get(listing, [])
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

    def finish(self) -> None:
        """Spend the reserve completing the best partial state, if no answer exists yet."""
        if self.best_terminal() is not None:
            return
        clock = self.deadline.clock
        # After Ctrl-C, finishing may run until FINISH_ON_INTERRUPT after the signal
        # itself, however long the call in flight took to notice it.
        cancelled = self.deadline.cancelled_at
        until = math.inf if cancelled is None else cancelled + FINISH_ON_INTERRUPT
        self._finishing = Deadline(clock, min(self.deadline.at, until))
        try:
            start = self.best_partial()
            self.emit("finish", node=start)
            self.rollout([start], temperature=0.0)
            if self.best_terminal() is None:  # greedy led nowhere: a few sampled tries
                self.rollout([start] * 3, temperature=self.config.temperature)
        except StopSearch:
            pass
        finally:
            self._finishing = None


def _spread(k: int, openings: Sequence[str], start: int) -> list[tuple[str, int]]:
    """``k`` samples spread over the openings, rotating so repeated expansions cover them all."""
    openings = list(openings) or [""]
    if k < len(openings):
        return [(openings[(start + i) % len(openings)], 1) for i in range(k)]
    share, extra = divmod(k, len(openings))
    return [(opening, share + (1 if i < extra else 0)) for i, opening in enumerate(openings)]


def _softmax(logprobs: dict[str, float]) -> dict[str, float]:
    top = max(logprobs.values())
    weights = {k: math.exp(v - top) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}
