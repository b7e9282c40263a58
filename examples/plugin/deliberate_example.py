"""An example deliberate plugin: the "greedy-first" strategy and the "parity" task.

Its pyproject.toml names them in deliberate's entry-point groups::

    [project.entry-points."deliberate.strategies"]
    greedy-first = "deliberate_example:GreedyFirst"

    [project.entry-points."deliberate.tasks"]
    parity = "deliberate_example:ParityTask"

Once installed, ``--strategy greedy-first`` and ``--task parity`` work like the
built-ins, in the CLI, in ``deliberate.think`` and in ``deliberate serve``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from deliberate.errors import QuestionError
from deliberate.search import Search, SearchConfig
from deliberate.tasks.base import VALUE_LABELS, Prompt, State, Step, vote_labels

# -- the strategy: always expand the single most promising state ---------------------------


@dataclass
class GreedyOptions:
    k: int = 4  # thoughts asked for per expansion


class GreedyFirst:
    """Best-first search: expand the one best state that still has something to try.

    Ties go to the state asked least often, then to the deepest, so a chain of
    equally valued states is followed down instead of widened at the root.
    """

    name = "greedy-first"
    Options = GreedyOptions

    def __init__(self, options: GreedyOptions) -> None:
        self.options = options

    def configure(self, config: SearchConfig) -> None:
        pass

    def run(self, search: Search) -> None:
        graph = search.graph
        while not search.solved():
            waiting = [n for n in graph.with_status("open", "expanded") if not search.exhausted(n)]
            if not waiting:
                if not search.revivable():
                    return  # the task proves nothing is left to try
                for node in search.revivable():
                    search.revive(node)
                continue

            def promise(node: int) -> tuple[float, int, int, int]:
                value = graph.value(node)
                return (0.5 if value is None else value, -graph[node]["expansions"], graph.depth(node), -node)

            [children] = search.expand([max(waiting, key=promise)], self.options.k)
            search.evaluate(children)


# -- the task: is the sum of some numbers even or odd? --------------------------------------

INSTRUCTION = "Add the numbers one at a time. Write each step as: total so far + next number = new total."
EXAMPLES = "Numbers left: 4 7\nTotal: 0\nStep: 0 + 4 = 4\n\nNumbers left: 7\nTotal: 4\nStep: 4 + 7 = 11\n\n"
_STEP = re.compile(r"^\s*(-?\d+)\s*\+\s*(-?\d+)\s*=\s*(-?\d+)\s*\.?\s*$")


class ParityTask:
    """Whether the sum of the numbers in the question is even or odd, one addition a step.

    A state is the total so far and the numbers left. With the verifier on, a step
    whose sum is wrong is rejected, and the final answer is checked against the
    question's own numbers.
    """

    name = "parity"
    mode: Literal["propose", "sample"] = "sample"
    labels = VALUE_LABELS
    step_stop = ("\n",)
    step_tokens = 16
    propose_tokens = 0
    max_depth = 64

    # -- states ----------------------------------------------------------------
    def root(self, question: str) -> State:
        numbers = _numbers(question)
        if not numbers:
            raise QuestionError("the parity task needs a question with whole numbers in it")
        if len(numbers) > self.max_depth:
            raise QuestionError(f"the parity task adds at most {self.max_depth} numbers, got {len(numbers)}")
        return {"steps": [], "left": numbers, "total": 0}

    def key(self, state: State) -> str:
        return f"{state['total']}|{' '.join(map(str, state['left']))}"

    def is_terminal(self, state: State) -> bool:
        return not state["left"] or len(state["steps"]) >= self.max_depth

    def answer(self, question: str, state: State) -> str | None:
        if state["left"]:
            return None
        return "even" if state["total"] % 2 == 0 else "odd"

    def verify(self, question: str, state: State) -> bool | None:
        truth = "even" if sum(_numbers(question)) % 2 == 0 else "odd"
        return self.answer(question, state) == truth

    # -- generating steps ------------------------------------------------------
    def propose_prompt(self, question: str, state: State) -> Prompt | None:
        return None  # one step at a time

    def parse_proposals(self, question: str, state: State, text: str, *, verify: bool) -> list[Step]:
        steps = (self.parse_step(question, state, line, verify=verify) for line in text.splitlines())
        return [step for step in steps if step is not None]

    def step_prompt(self, question: str, state: State) -> Prompt:
        return Prompt(INSTRUCTION, EXAMPLES, f"{_show(state)}Step:")

    def openings(self, state: State) -> list[str]:
        return [""]

    def parse_step(self, question: str, state: State, text: str, *, verify: bool) -> Step | None:
        match = _STEP.match(text.strip().splitlines()[0] if text.strip() else "")
        if not match or not state["left"]:
            return None
        total, number, claimed = (int(group) for group in match.groups())
        if total != state["total"] or number != state["left"][0]:
            return None  # a step about some other state
        if verify and claimed != total + number:
            return None  # the verifier checks every addition
        thought = f"{total} + {number} = {claimed}"
        return Step(thought, {"steps": [*state["steps"], thought], "left": state["left"][1:], "total": claimed})

    # -- judging ---------------------------------------------------------------
    def value_prompt(self, question: str, state: State) -> Prompt:
        steps = "".join(f"{s}\n" for s in state["steps"]) or "(none yet)\n"
        query = f"Numbers: {' '.join(map(str, _numbers(question)))}\nSteps:\n{steps}"
        return Prompt("Judge whether every addition so far is right: sure, likely or impossible.", "", query, "Judgement:")

    def vote_prompt(self, question: str, state: State, candidates: Sequence[str]) -> Prompt:
        letters = [label.strip() for label in vote_labels(len(candidates))]
        listed = "".join(f"{letter}: {c}\n" for letter, c in zip(letters, candidates))
        return Prompt("Choose the right next addition.", "", f"{_show(state)}Candidates:\n{listed}", "The best candidate is")


def _numbers(question: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", question)]


def _show(state: State) -> str:
    return f"Numbers left: {' '.join(map(str, state['left']))}\nTotal: {state['total']}\n"
