"""Ground truth for ``deliberate bench judge``, which no search ever sees.

Game of 24: a state is good when the numbers it has left can still make 24, decided
exactly by a brute-force solver over Fractions (``solvable``; it lives here and nowhere
else). GSM8K: a state is good when one of a few sampled continuations from it reaches
the gold answer by the dataset's own rule (``label_by_rollouts``), an estimate: a "bad"
state is one where the model found no way on in that many tries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from deliberate.clock import Deadline, MonotonicClock
from deliberate.tasks import Task

if TYPE_CHECKING:
    from deliberate.benchmarks.judge_states import Reached

BATCH = 16  # states whose rollouts are asked in one call
ROLLOUTS = 4  # sampled continuations per state, for tasks labelled by rollouts
ROLLOUT_TOKENS = 256

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def solvable(numbers: Sequence[str | int | Fraction]) -> bool:
    """Whether ``numbers`` ("4", "3/2", ...) can still make exactly 24 with + - * /,
    each number used once."""
    return _makes_24(tuple(sorted(Fraction(n) for n in numbers)))


@lru_cache(maxsize=None)
def _makes_24(numbers: tuple[Fraction, ...]) -> bool:
    if len(numbers) == 1:
        return numbers[0] == 24
    for i in range(len(numbers)):
        for j in range(i + 1, len(numbers)):
            rest = numbers[:i] + numbers[i + 1 : j] + numbers[j + 1 :]
            a, b = numbers[i], numbers[j]
            results = {a + b, a - b, b - a, a * b}
            if b:
                results.add(a / b)
            if a:
                results.add(b / a)
            if any(_makes_24(tuple(sorted((*rest, r)))) for r in results):
                return True
    return False


def _label_game24(state: Mapping[str, Any]) -> bool:
    return solvable(state["left"])


LABELERS: dict[str, Callable[[Mapping[str, Any]], bool]] = {"game24": _label_game24}



def label_by_rollouts(
    backend: Any, task: Task, kind: str, reached: Sequence[Reached], items: Mapping[str, Any], *,
    rollouts: int = ROLLOUTS, seed: int = 0, batch: int = BATCH, on_progress: Progress | None = None,
) -> None:
    """Set ``good`` on each state: whether one of ``rollouts`` sampled continuations
    from it reaches its item's gold answer (``score``, the dataset's rule)."""
    from deliberate.backends.base import GenerateRequest, derive_seed
    from deliberate.backends.tool_calls import generate_with_tools
    from deliberate.benchmarks.datasets import score

    deadline = Deadline(getattr(backend, "clock", None) or MonotonicClock())  # no time limit
    tools = getattr(task, "call_syntax", None) if getattr(task, "tools", False) else None
    for start in range(0, len(reached), batch):
        chunk = reached[start : start + batch]
        requests = [
            GenerateRequest(
                prompt=task.step_prompt(r.question, r.state).render(), n=rollouts, max_tokens=ROLLOUT_TOKENS,
                stop=("\n\n", "\nQuestion:"), temperature=0.7, seed=derive_seed(seed, start + i), tools=tools,
            )
            for i, r in enumerate(chunk)
        ]
        for r, samples in zip(chunk, generate_with_tools(backend, requests, deadline)):
            answers = [_rollout_answer(task, r, sample.text) for sample in samples]
            r.good = any(score(kind, answer, items[r.item]) for answer in answers if answer is not None)
        if on_progress:
            on_progress("label", min(start + batch, len(reached)), len(reached))


def _rollout_answer(task: Task, r: Reached, text: str) -> str | None:
    """The answer a continuation reaches: its steps parsed as the search parses them,
    up to the first that ends the chain."""
    state = r.state
    for line in text.splitlines():
        step = task.parse_step(r.question, state, line, verify=False)
        if step is None:
            continue
        state = step.state
        if task.is_terminal(state):
            return task.answer(r.question, state)
    return None
