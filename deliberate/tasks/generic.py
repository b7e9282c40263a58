"""A free-form question, answered in reasoning lines that end with "Answer: ...".

The prompts are few-shot completions, so they work with a base model; with ``chat=True``
the search renders them through the model's chat template instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from deliberate.errors import QuestionError
from deliberate.tasks.base import VALUE_LABELS, Prompt, State, Step, vote_labels

INSTRUCTION = (
    'Answer the question by reasoning step by step, one step per line. '
    'Finish with a line of the form "Answer: <answer>".'
)

EXAMPLES = """Question: A box holds 6 eggs. How many eggs are in 4 boxes?
Step: Each box holds 6 eggs and there are 4 boxes.
Step: 4 * 6 = 24.
Answer: 24

Question: Every cat is a mammal. Every mammal is warm-blooded. Tom is a cat. True or false: Tom is warm-blooded.
Step: Tom is a cat.
Step: Every cat is a mammal, so Tom is a mammal.
Step: Every mammal is warm-blooded, so Tom is warm-blooded.
Answer: True

"""

VALUE_INSTRUCTION = (
    "Judge whether the reasoning so far is correct and leads to the right answer. "
    "Reply sure, likely or impossible."
)

VALUE_EXAMPLES = """Question: A box holds 6 eggs. How many eggs are in 4 boxes?
Steps:
4 * 6 = 24.
Answer: 24
Judgement: sure

Question: Anna has 5 pencils and gives away 2. How many are left?
Steps:
5 + 2 = 7.
Judgement: impossible

Question: A train travels 60 km each hour. How far does it go in 3 hours?
Steps:
It goes 60 km every hour.
Judgement: likely

"""

_STEP_PREFIX = re.compile(r"^\s*(step\s*\d*\s*[:.)-]\s*)", re.IGNORECASE)
_ANSWER = re.compile(r"^\s*(?:final\s+)?answer\s*[:=-]\s*(?P<answer>.+?)\s*$", re.IGNORECASE)


class GenericTask:
    name = "generic"
    mode: Literal["propose", "sample"] = "sample"
    labels = VALUE_LABELS
    step_stop = ("\n",)
    step_tokens = 64
    propose_tokens = 0
    max_depth = 10

    def __init__(self, *, shots: str | None = None, max_depth: int | None = None) -> None:
        # Benchmarks pass exemplars in the same "Question:/Step:/Answer:" format.
        self.examples = shots if shots else EXAMPLES
        if not self.examples.endswith("\n\n"):
            self.examples = self.examples.rstrip("\n") + "\n\n"
        if max_depth is not None:
            self.max_depth = max_depth

    # -- states ----------------------------------------------------------------
    def root(self, question: str) -> State:
        if not question.strip():
            raise QuestionError("the question is empty")
        return {"steps": [], "answer": None}

    def key(self, state: State) -> str:
        lines = [" ".join(step.lower().split()) for step in state["steps"]]
        return "\n".join(lines)

    def is_terminal(self, state: State) -> bool:
        return state["answer"] is not None or len(state["steps"]) >= self.max_depth

    def answer(self, question: str, state: State) -> str | None:
        return state["answer"]

    def verify(self, question: str, state: State) -> bool | None:
        return None

    # -- generating steps ------------------------------------------------------
    def propose_prompt(self, question: str, state: State) -> Prompt | None:
        return None  # free-form steps are sampled one line at a time

    def parse_proposals(self, question: str, state: State, text: str, *, verify: bool) -> list[Step]:
        steps = (self.parse_step(question, state, line, verify=verify) for line in text.splitlines())
        return [step for step in steps if step is not None]

    def step_prompt(self, question: str, state: State) -> Prompt:
        return Prompt(INSTRUCTION, self.examples, f"Question: {question.strip()}\n" + self._lines(state))

    def openings(self, state: State) -> list[str]:
        return [""]

    def parse_step(self, question: str, state: State, text: str, *, verify: bool) -> Step | None:
        line = text.strip()
        if not line or line.lower().startswith("question"):
            return None
        match = _ANSWER.match(line)
        if match:
            answer = match["answer"].rstrip(".").strip()
            if not answer:
                return None
            return Step(f"Answer: {answer}", self._extend(state, f"Answer: {answer}", answer))
        thought = _STEP_PREFIX.sub("", line).strip()
        if not thought or not self.check_step(thought, verify=verify):
            return None
        return Step(thought, self._extend(state, thought, None))

    def check_step(self, thought: str, *, verify: bool) -> bool:
        """Whether a reasoning step is acceptable; tasks with a verifier override this."""
        return True

    def _extend(self, state: State, thought: str, answer: str | None) -> State:
        return {"steps": [*state["steps"], thought], "answer": answer}

    @staticmethod
    def _lines(state: State) -> str:
        return "".join(
            f"{s}\n" if s.startswith("Answer:") else f"Step: {s}\n" for s in state["steps"]
        )

    # -- judging ---------------------------------------------------------------
    def value_prompt(self, question: str, state: State) -> Prompt:
        steps = "".join(f"{s}\n" for s in state["steps"]) or "(none yet)\n"
        return Prompt(VALUE_INSTRUCTION, VALUE_EXAMPLES, f"Question: {question.strip()}\nSteps:\n{steps}", "Judgement:")

    def vote_prompt(self, question: str, state: State, candidates: Sequence[str]) -> Prompt:
        letters = [label.strip() for label in vote_labels(len(candidates))]
        listed = "".join(f"{letter}: {c}\n" for letter, c in zip(letters, candidates))
        so_far = "".join(f"{s}\n" for s in state["steps"]) or "(none yet)\n"
        return Prompt(
            "Choose the most promising next step.",
            "",
            f"Question: {question.strip()}\nSteps so far:\n{so_far}Candidate next steps:\n{listed}",
            "The best candidate is",
        )
