"""An example deliberate plugin: the "greedy-first" strategy, the "parity" task and
the "function" backend.

Its pyproject.toml names them in deliberate's entry-point groups::

    [project.entry-points."deliberate.strategies"]
    greedy-first = "deliberate_example:GreedyFirst"

    [project.entry-points."deliberate.tasks"]
    parity = "deliberate_example:ParityTask"

    [project.entry-points."deliberate.backends"]
    function = "deliberate_example:function_backend"

    [project.entry-points."deliberate.datasets"]
    parity = "deliberate_example:PARITY"

Once installed, ``--strategy greedy-first``, ``--task parity``, ``--model
function:MODULE:NAME`` and ``deliberate bench parity --data FILE`` work like the
built-ins, in the CLI, in ``deliberate.think`` and in ``deliberate serve``. The README's "Extending" section shows the three pieces
below; a test checks that it shows them exactly as they are here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deliberate.backends.base import BaseBackend, GenerateRequest, Sample, cut_at_stop, derive_seed
from deliberate.benchmarks.datasets import Dataset, Item
from deliberate.clock import Deadline
from deliberate.errors import QuestionError
from deliberate.search import Search, SearchConfig
from deliberate.tasks.base import BaseTask, Prompt, State, Step

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
STEP = re.compile(r"^\s*(-?\d+)\s*\+\s*(-?\d+)\s*=\s*(-?\d+)\s*\.?\s*$")


class ParityTask(BaseTask):
    """Whether the sum of the question's numbers is even or odd, one addition a step."""

    name = "parity"
    step_tokens = 16
    max_depth = 64

    def root(self, question: str) -> State:
        numbers = [int(n) for n in re.findall(r"-?\d+", question)]
        if not 0 < len(numbers) <= self.max_depth:
            raise QuestionError(f"the parity task needs 1 to {self.max_depth} whole numbers in the question")
        return {"steps": [], "left": numbers, "total": 0}

    def step_prompt(self, question: str, state: State) -> Prompt:
        left = " ".join(map(str, state["left"]))
        return Prompt(INSTRUCTION, EXAMPLES, f"Numbers left: {left}\nTotal: {state['total']}\nStep:")

    def parse_step(self, question: str, state: State, text: str, *, verify: bool) -> Step | None:
        match = STEP.match(text.strip().split("\n")[0])
        if not match or not state["left"]:
            return None
        total, number, claimed = map(int, match.groups())
        if (total, number) != (state["total"], state["left"][0]) or (verify and claimed != total + number):
            return None  # a step about another state, or (with the verifier) a wrong sum
        thought = f"{total} + {number} = {claimed}"
        return Step(thought, {"steps": [*state["steps"], thought], "left": state["left"][1:], "total": claimed})

    def is_terminal(self, state: State) -> bool:
        return not state["left"]

    def answer(self, question: str, state: State) -> str | None:
        return None if state["left"] else ("even" if state["total"] % 2 == 0 else "odd")

    def verify(self, question: str, state: State) -> bool | None:  # optional: check a final answer exactly
        return self.answer(question, state) == ("even", "odd")[sum(self.root(question)["left"]) % 2]


# -- the backend: any Python function as a model ---------------------------------------------
class FunctionBackend(BaseBackend):
    """A function ``respond(prompt, seed) -> text`` as the model: a rule-based player, a
    client for some API, a replay of saved answers. ``--model function:MODULE:NAME``."""

    def __init__(self, respond: Callable[[str, int], str]) -> None:
        self.respond = respond

    def generate(self, requests: Sequence[GenerateRequest], deadline: Deadline) -> list[list[Sample]]:
        results = []
        for request in requests:
            samples = []
            for i in range(request.n):
                if deadline.expired():
                    samples.append(Sample("", 0, 0, "deadline"))
                    continue
                text, stopped = cut_at_stop(self.respond(request.prompt, derive_seed(request.seed, i)), request.stop)
                samples.append(Sample(text, len(request.prompt.split()), len(text.split()), "stop" if stopped else "length"))
            results.append(samples)
        return results


def function_backend(model: str, **params: object) -> FunctionBackend:
    module, _, name = model.rpartition(":")
    return FunctionBackend(getattr(importlib.import_module(module), name))


# -- the dataset: one question per line, for ``deliberate bench parity --data FILE.txt`` ----------
def read_parity(path: Path) -> list[Item]:
    """Every non-blank line is a question; its gold answer is the parity of its numbers."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [
        Item(f"{path.name}:{number}", line, ("even", "odd")[sum(map(int, re.findall(r"-?\d+", line))) % 2], "parity")
        for number, line in enumerate(lines, 1)
        if line
    ]


PARITY = Dataset(read_parity, lambda answer, gold: answer.strip().lower() == gold, pattern="*.txt")
