"""Benchmark datasets: read each one into ``Item``s and score an answer against its gold.

Each folder under ``shared/datasets`` has a SOURCE.md that says how its answers are
checked; the scorers follow it. Scoring never raises on what a model wrote: a
malformed answer is simply wrong. ``DatasetError`` is for files, not answers.

    kind      file in the folder                            solved with task
    game24    24.csv (Rank, Puzzles)                        game24
    gsm8k     test.jsonl (question, answer "... #### 18")   math
    math500   test.jsonl (problem, answer)                  generic (answers are often not plain numbers)
    prontoqa  345hop_random_true.json (exampleN)            generic
    bbh       bbh/<task>.json, or a folder of them          generic
    generic   any JSONL with question and answer            generic

Each kind is a ``Dataset`` (how to find its file, read it and score an answer) found by
name in the ``deliberate.datasets`` entry-point group, so a plugin can add a kind (see
``deliberate.plugins``); the six above are the built-ins.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from deliberate.benchmarks.math_answers import last_boxed, math_equal, plain_number
from deliberate.calculator import evaluate, normalize
from deliberate.errors import CalculatorError, DatasetError, UsageError
from deliberate.jsonl import read_jsonl
from deliberate.plugins import DATASETS


@dataclass(frozen=True)
class Item:
    id: str  # unique within its dataset: the Rank, "test:7" (file:line), "navigate:12"...
    question: str  # the text given to deliberate.think
    gold: str  # the reference answer, as the dataset writes it
    task: str  # the deliberate task that solves it: game24, math or generic


# The built-in kinds and the task that solves each one's items.
TASKS = {
    "game24": "game24", "gsm8k": "math", "math500": "generic",  # math500 answers are often not plain numbers
    "prontoqa": "generic", "bbh": "generic", "generic": "generic",
}
KINDS = tuple(TASKS)


@dataclass(frozen=True)
class Dataset:
    """A dataset kind: where its file is in a folder, how to read it, how to score an answer.

    ``read`` turns the file (or the folder, when ``folders``) into ``Item``s and raises
    ``DatasetError`` for a malformed one; ``correct(answer, gold)`` never raises.
    """

    read: Callable[[Path], list[Item]]
    correct: Callable[[str, str], bool]
    default_file: str | None = None  # the file to read when a folder is given
    pattern: str = "*.jsonl"  # else the folder's one file that matches this
    folders: bool = False  # read takes a folder as it is


def dataset(kind: str) -> Dataset:
    """The ``Dataset`` for ``kind``: a built-in or a plugin's; ``DatasetError`` if unknown."""
    return DATASETS.load(kind)


def kinds() -> list[str]:
    """Every dataset kind: the built-ins, then plugins'."""
    return DATASETS.names()


def load(kind: str, path: str | Path, *, start: int = 0, limit: int | None = None) -> list[Item]:
    """Items ``start`` to ``start + limit`` of a dataset; ``path`` is its folder or file.

    A selection with no items in it is an error, not an empty run: ``limit`` below 1,
    a ``start`` past the last item, or a file that holds none.
    """
    found = dataset(kind)
    if start < 0:
        raise UsageError(f"start must not be negative, got {start}")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    file = _resolve(kind, found, Path(path).expanduser())
    items = found.read(file)
    if not items:
        raise DatasetError(f"{kind} dataset {file} holds no items")
    if start >= len(items):
        raise UsageError(f"start {start} skips every item: {file} holds {len(items)} {kind} items")
    return items[start : None if limit is None else start + limit]


def _resolve(kind: str, found: Dataset, path: Path) -> Path:
    if not path.exists():
        raise DatasetError(f"{kind} dataset not found: {path}")
    if path.is_file() or found.folders:
        return path
    if found.default_file and (path / found.default_file).is_file():
        return path / found.default_file
    matches = sorted(path.glob(found.pattern))
    if len(matches) != 1:
        wanted = found.default_file or f"one {found.pattern.removeprefix('*')} file"
        raise DatasetError(f"{kind} dataset folder {path} has no {wanted}; pass the file itself")
    return matches[0]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every non-blank line (``deliberate.jsonl``'s rule;
    a dataset may not end in half a line)."""
    return read_jsonl(path, what="dataset file").refuse_torn().rows


def _field(row: dict[str, Any], name: str, where: str) -> str:
    if name not in row or row[name] is None:
        raise DatasetError(f"{where}: missing field {name!r}")
    return str(row[name])


def _game24(path: Path) -> list[Item]:
    reader = csv.DictReader(_read_text(path).splitlines())
    if "Puzzles" not in (reader.fieldnames or []):
        raise DatasetError(f"{path.name} line 1: missing column 'Puzzles'")
    items = []
    for row in reader:
        where = f"{path.name} line {reader.line_num}"
        puzzle = " ".join(_field(row, "Puzzles", where).split())
        if not re.fullmatch(r"\d+( \d+){3}", puzzle):
            raise DatasetError(f"{where}: puzzle {puzzle!r} is not four whole numbers")
        rank = (row.get("Rank") or "").strip() or str(reader.line_num - 1)
        items.append(Item(rank, f"Use the numbers {puzzle} and + - * / to make 24.", puzzle, "game24"))
    return items


def _gsm8k(path: Path) -> list[Item]:
    items = []
    for number, row in _jsonl(path):
        where = f"{path.name} line {number}"
        final = re.search(r"####\s*(\S.*?)\s*$", _field(row, "answer", where))
        if not final:
            raise DatasetError(f"{where}: the answer has no '#### <number>' line")
        items.append(Item(f"{path.stem}:{number}", _field(row, "question", where), final[1].replace(",", ""), TASKS["gsm8k"]))
    return items


def _math500(path: Path) -> list[Item]:
    items = []
    for number, row in _jsonl(path):
        where = f"{path.name} line {number}"
        gold = row.get("answer")
        if gold is None:  # fall back to the solution's last \boxed{}
            gold = last_boxed(_field(row, "solution", where))
            if gold is None:
                raise DatasetError(f"{where}: missing field 'answer'")
        item_id = str(row.get("unique_id") or f"{path.stem}:{number}")
        items.append(Item(item_id, _field(row, "problem", where), str(gold), TASKS["math500"]))
    return items


def _prontoqa(path: Path) -> list[Item]:
    try:
        data = json.loads(_read_text(path))
    except ValueError as exc:
        raise DatasetError(f"{path.name} line {getattr(exc, 'lineno', '?')}: not valid JSON") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path.name}: expected one JSON object of exampleN entries")
    items = []
    for key, problem in data.items():
        test = problem.get("test_example") if isinstance(problem, dict) else None
        if not isinstance(test, dict):
            raise DatasetError(f"{path.name} {key}: missing field 'test_example'")
        where = f"{path.name} {key}"
        # The context (facts and rules) followed by "True or false: <statement>."
        question = f"{_field(test, 'question', where).strip()} {_field(test, 'query', where).strip()}"
        items.append(Item(key, question, _field(test, "answer", where), "generic"))
    return items


def _bbh(path: Path) -> list[Item]:
    if path.is_dir():
        folder = path / "bbh" if (path / "bbh").is_dir() else path  # the upstream layout
        files = sorted(folder.glob("*.json"))
        if not files:
            raise DatasetError(f"bbh dataset folder {folder} has no .json task files")
    else:
        files = [path]
    items = []
    for file in files:
        try:
            data = json.loads(_read_text(file))
        except ValueError as exc:
            raise DatasetError(f"{file.name} line {getattr(exc, 'lineno', '?')}: not valid JSON") from None
        examples = data.get("examples") if isinstance(data, dict) else None
        if not isinstance(examples, list):
            raise DatasetError(f"{file.name}: missing field 'examples'")
        for index, example in enumerate(examples, 1):
            where = f"{file.name} example {index}"
            if not isinstance(example, dict):
                raise DatasetError(f"{where}: not a JSON object")
            gold = _field(example, "target", where).strip()
            items.append(Item(f"{file.stem}:{index}", _field(example, "input", where), gold, "generic"))
    return items


def _generic(path: Path) -> list[Item]:
    items = []
    for number, row in _jsonl(path):
        where = f"{path.name} line {number}"
        item_id = str(row.get("id") or f"{path.stem}:{number}")
        items.append(Item(item_id, _field(row, "question", where), _field(row, "answer", where), "generic"))
    return items


# -- scoring -------------------------------------------------------------------------


def score(kind: str, answer: str | None, item: Item) -> bool:
    """Whether ``answer`` is right for ``item``, by the dataset's own rule."""
    found = dataset(kind)
    if answer is None or not str(answer).strip():
        return False
    return found.correct(str(answer), item.gold)


def game24_correct(answer: str, puzzle: str) -> bool:
    """An expression (optionally "... = 24") with + - * / over the puzzle's numbers, each once, equal to 24."""
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        return False
    expression, *claims = re.sub(r"^\s*answer\s*:", "", lines[-1], flags=re.IGNORECASE).split("=")
    if any(plain_number(claim) != 24 for claim in claims):
        return False  # "... = 25" claims something else, whatever the left side is
    try:
        value = evaluate(expression)  # bounded and whitelisted; it rejects anything but arithmetic
    except CalculatorError:
        return False
    used = []
    # evaluate() accepted it, so parsing again is safe; now hold it to the game's rules.
    for node in ast.walk(ast.parse(normalize(expression).strip(), mode="eval").body):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            used.append(Fraction(node.value))
        elif isinstance(node, ast.BinOp) and not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return False  # ** is not one of the four operations
        elif not isinstance(node, (ast.BinOp, ast.operator)):
            return False  # unary minus, decimals
    return value == 24 and sorted(used) == sorted(Fraction(n) for n in puzzle.split())


def last_number(text: str) -> Fraction | None:
    """The last number a text writes ("$1,450", "8/3"), as GSM8K's "#### (number)" rule
    reads an answer; None if it writes none."""
    numbers = re.findall(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?", text)
    return plain_number(numbers[-1].replace(",", "")) if numbers else None


def _gsm8k_correct(answer: str, gold: str) -> bool:
    value = last_number(answer)
    return value is not None and value == plain_number(gold)


def _prontoqa_correct(answer: str, gold: str) -> bool:
    match = re.fullmatch(r"\W*(true|false)\W*", answer.casefold())
    return match is not None and match[1] == gold.strip().casefold()


def _bbh_correct(answer: str, gold: str) -> bool:
    answer = answer.strip().removesuffix(".").strip()
    option = re.fullmatch(r"\(([A-Z])\)", gold.strip())
    if option:  # "(B)", "B", "B)" and "(B) the text of option B" all choose B
        chosen = re.fullmatch(r"\(?([A-Z])\)?|\(([A-Z])\)\s.*", answer, flags=re.DOTALL)
        return chosen is not None and (chosen[1] or chosen[2]) == option[1]
    number = plain_number(gold)
    if number is not None:  # object_counting, multistep_arithmetic_two: "8.0" and "8" agree
        return plain_number(answer) == number
    return answer == gold.strip()


def _generic_correct(answer: str, gold: str) -> bool:
    a, g = plain_number(answer), plain_number(gold)
    if a is not None and g is not None:
        return a == g
    return _plain(answer) == _plain(gold) != ""


def _plain(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


# -- the built-in kinds, as the deliberate.datasets entry points name them ---------------

GAME24 = Dataset(_game24, game24_correct, default_file="24.csv")
GSM8K = Dataset(_gsm8k, _gsm8k_correct, default_file="test.jsonl")
MATH500 = Dataset(_math500, math_equal, default_file="test.jsonl")
PRONTOQA = Dataset(_prontoqa, _prontoqa_correct, default_file="345hop_random_true.json", pattern="*.json")
BBH = Dataset(_bbh, _bbh_correct, folders=True)
GENERIC = Dataset(_generic, _generic_correct)
