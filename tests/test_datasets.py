"""Benchmark loaders and scorers: small files written here, then the real datasets if present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import shared_dataset
from deliberate.benchmarks.datasets import TASKS, KINDS, Item, game24_correct, load, score
from deliberate.benchmarks.math_answers import math_equal, normalize_math
from deliberate.errors import DatasetError, UsageError


def item(gold: str, task: str = "generic") -> Item:
    return Item("1", "q", gold, task)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# -- loading ------------------------------------------------------------------------


def test_game24_csv(tmp_path: Path) -> None:
    (tmp_path / "24.csv").write_text("Rank,Puzzles,AMT (s)\n7,1 1 4 6,4.4\n8,  2 9 10 12 ,5.0")
    items = load("game24", tmp_path)  # the folder: 24.csv is picked
    assert items == [
        Item("7", "Use the numbers 1 1 4 6 and + - * / to make 24.", "1 1 4 6", "game24"),
        Item("8", "Use the numbers 2 9 10 12 and + - * / to make 24.", "2 9 10 12", "game24"),
    ]
    assert load("game24", tmp_path / "24.csv", start=1) == items[1:]
    assert load("game24", tmp_path, limit=1) == items[:1]


def test_game24_bad_puzzle_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "24.csv").write_text("Rank,Puzzles\n1,1 1 4 6\n2,1 2 three 4\n")
    with pytest.raises(DatasetError, match=r"24.csv line 3: puzzle '1 2 three 4'"):
        load("game24", tmp_path)


def test_game24_missing_column(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Rank,Numbers\n1,1 1 4 6\n")
    with pytest.raises(DatasetError, match="missing column 'Puzzles'"):
        load("game24", tmp_path / "x.csv")


def test_gsm8k_gold_after_hashes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "test.jsonl", [
        {"question": "How many?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"},
        {"question": "How much?", "answer": "Lots.\n#### 1,450,000"},
    ])
    items = load("gsm8k", tmp_path)
    assert [(i.id, i.gold, i.task) for i in items] == [("test:1", "4", "math"), ("test:2", "1450000", "math")]
    assert load("gsm8k", path) == items


def test_malformed_line_is_named(tmp_path: Path) -> None:
    lines = [json.dumps({"question": "q", "answer": "#### 1"})] * 6 + ["{not json"]
    (tmp_path / "gsm8k.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as caught:
        load("gsm8k", tmp_path / "gsm8k.jsonl")
    assert str(caught.value) == "gsm8k.jsonl line 7: not valid JSON"


def test_missing_field_is_named(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}, {"question": "q"}])
    with pytest.raises(DatasetError, match=r"d.jsonl line 2: missing field 'answer'"):
        load("generic", tmp_path / "d.jsonl")
    write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "no final line"}])
    with pytest.raises(DatasetError, match=r"g.jsonl line 1: .*####"):
        load("gsm8k", tmp_path / "g.jsonl")
    write_jsonl(tmp_path / "l.jsonl", [[1, 2]])
    with pytest.raises(DatasetError, match=r"l.jsonl line 1: not a JSON object"):
        load("generic", tmp_path / "l.jsonl")


def test_missing_file_and_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load("gsm8k", tmp_path / "nowhere.jsonl")
    with pytest.raises(DatasetError, match="has no 24.csv"):
        load("game24", tmp_path)  # an empty folder
    with pytest.raises(DatasetError) as caught:
        load("crosswords", tmp_path)
    assert all(kind in str(caught.value) for kind in KINDS)
    with pytest.raises(UsageError):
        load("generic", tmp_path, start=-1)


def test_a_selection_must_hold_an_item(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n" for i in range(3)))
    assert [item.gold for item in load("gsm8k", path, start=2, limit=5)] == ["2"]
    for start, limit, match in ((0, 0, "limit must be at least 1, got 0"), (3, None, "start 3 skips every item: .* holds 3 gsm8k items")):
        with pytest.raises(UsageError, match=match):
            load("gsm8k", path, start=start, limit=limit)
    path.write_text("")
    with pytest.raises(DatasetError, match="holds no items"):
        load("gsm8k", path)


def test_math500_prontoqa_bbh_generic(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "m.jsonl", [
        {"problem": "Half?", "answer": "\\frac{1}{2}", "unique_id": "test/algebra/1.json"},
        {"problem": "Two?", "solution": "So it is $\\boxed{2}$."},
    ])
    golds = [(i.id, i.gold) for i in load("math500", tmp_path / "m.jsonl")]
    assert golds == [("test/algebra/1.json", "\\frac{1}{2}"), ("m:2", "2")]

    context = "Every cat is a mammal. Tom is a cat."
    test = {"question": context, "query": "True or false: Tom is a mammal.", "answer": "True"}
    pronto = {"example1": {"in_context_example0": {}, "test_example": test}}
    (tmp_path / "p.json").write_text(json.dumps(pronto))
    assert load("prontoqa", tmp_path / "p.json") == [
        Item("example1", "Every cat is a mammal. Tom is a cat. True or false: Tom is a mammal.", "True", "generic")
    ]

    folder = tmp_path / "bbh" / "bbh"
    folder.mkdir(parents=True)
    for name in ("navigate", "date"):
        examples = [{"input": f"{name}?", "target": "(A)"}]
        (folder / f"{name}.json").write_text(json.dumps({"canary": "x", "examples": examples}))
    assert [i.id for i in load("bbh", tmp_path / "bbh")] == ["date:1", "navigate:1"]
    assert [i.id for i in load("bbh", folder / "navigate.json")] == ["navigate:1"]

    write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "question": "Capital of France?", "answer": "Paris"}])
    assert load("generic", tmp_path / "g.jsonl") == [Item("a", "Capital of France?", "Paris", "generic")]


def test_whole_file_json_errors(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"example1":\n {oops}')
    with pytest.raises(DatasetError, match=r"p.json line 2: not valid JSON"):
        load("prontoqa", tmp_path / "p.json")
    (tmp_path / "b.json").write_text(json.dumps({"canary": "x"}))
    with pytest.raises(DatasetError, match="missing field 'examples'"):
        load("bbh", tmp_path / "b.json")


# -- scoring ------------------------------------------------------------------------

PUZZLE = Item("1", "Use the numbers 4 5 6 10 and + - * / to make 24.", "4 5 6 10", "game24")


@pytest.mark.parametrize("answer", [
    "(5 * (10 - 4)) - 6 = 24",
    "5 * (10 - 4) - 6",
    "Answer: (10 - 4) × 5 − 6 = 24",
    "some reasoning\n(10 - 4) * 5 - 6 = 24",
])
def test_game24_right(answer: str) -> None:
    assert score("game24", answer, PUZZLE)


@pytest.mark.parametrize("answer", [
    "(5 * (10 - 4)) - 6 = 25",  # the claim does not matter; the value does
    "4 * 6 = 24",  # not every number used
    "(5 * (10 - 4)) - 6 + 0 = 24",  # a number that is not in the puzzle
    "(5 * (10 - 4)) - 6 - 4 + 4",  # 4 used twice
    "10 + 5 + 6 + 4",  # every number, but 25
    "__import__('os').system('echo hi')",
    "9**9**9**9",
    "2**3 * 3 * 1",  # ** is not one of the four operations
    "-(-4) * 6 + 5 - 5 + 10 - 10",
    "(" * 500 + "1" + ")" * 500,
    "4.0 * 6 * (10 - 5 - 4)",
    "24",
    "",
    "   ",
    None,
    "1/0 + 4 + 5 + 6 + 10",
])
def test_game24_wrong_never_raises(answer: str | None) -> None:
    assert score("game24", answer, PUZZLE) is False


def test_game24_fractions_are_exact() -> None:
    assert game24_correct("8 / (3 - 8 / 3) = 24", "3 3 8 8")
    assert not game24_correct("8 / (3 - 8 / 3.001)", "3 3 8 8")


@pytest.mark.parametrize(("answer", "right"), [
    ("18", True), ("$18.", True), ("She makes $18 every day.", True), ("18.00", True),
    ("1,450,000", False), ("17", False), ("no idea", False), ("36/2", True),
])
def test_gsm8k(answer: str, right: bool) -> None:
    assert score("gsm8k", answer, item("18", "math")) is right
    assert score("gsm8k", "1,450,000", item("1450000", "math"))


@pytest.mark.parametrize(("answer", "right"), [
    ("True", True), ("true.", True), ("**TRUE**", True), ("False", False), ("True or False", False), ("", False),
])
def test_prontoqa(answer: str, right: bool) -> None:
    assert score("prontoqa", answer, item("True")) is right


@pytest.mark.parametrize(("answer", "right"), [
    ("(B)", True), ("B", True), ("(B).", True), ("(B) the second option", True), ("B)", True),
    ("(C)", False), ("Bob", False), ("b", False),
])
def test_bbh_options(answer: str, right: bool) -> None:
    assert score("bbh", answer, item("(B)")) is right


def test_bbh_exact_match() -> None:
    assert score("bbh", " valid ", item("valid"))
    assert score("bbh", "Yes.", item("Yes"))
    assert not score("bbh", "invalid", item("valid"))
    assert not score("bbh", "yes", item("Yes"))  # BBH is exact match


def test_bbh_numbers_match_as_numbers() -> None:
    # object_counting and multistep_arithmetic_two: "8.0", "8." and "8" are one answer
    for answer in ("8", "8.0", "8.", " 8 "):
        assert score("bbh", answer, item("8")), answer
    assert score("bbh", "-50", item("-50")) and score("bbh", "1,450", item("1450"))
    for answer in ("9", "-8", "8 apples", "eight", ""):
        assert not score("bbh", answer, item("8")), answer


@pytest.mark.parametrize(("answer", "gold"), [
    ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}"),
    ("14/3", "\\frac{14}{3}"),
    ("\\frac{28}{6}", "\\frac{14}{3}"),
    ("10\\text{ cm}", "10"),
    ("90^\\circ", "90"),
    ("5.0", "5"),
    ("x = 5", "5"),
    (".5", "\\frac12"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("\\$18", "18"),
    ("\\text{(C)}", "(C)"),
])
def test_math500_equal(answer: str, gold: str) -> None:
    assert math_equal(answer, gold)
    assert score("math500", answer, item(gold, "math"))


@pytest.mark.parametrize(("answer", "gold"), [
    ("7", "8"), ("\\frac{1}{0}", "1"), ("(3,\\frac{\\pi}{3})", "(3,\\frac{\\pi}{2})"), ("\\boxed{}", "0"),
])
def test_math500_not_equal(answer: str, gold: str) -> None:
    assert not score("math500", answer, item(gold, "math"))


def test_normalize_math() -> None:
    assert normalize_math("The answer is $\\boxed{\\tfrac{1}{2}}$.") == "\\frac{1}{2}"
    assert normalize_math("\\sqrt2") == "\\sqrt{2}"


@pytest.mark.parametrize(("answer", "gold", "right"), [
    ("Paris", "paris", True), ("Paris.", "Paris", True), ("  the   Paris", "Paris", False),
    ("24", "24.0", True), ("1/2", "12", False), ("-5", "5", False), ("", "x", False), ("!!", "??", False),
])
def test_generic(answer: str, gold: str, right: bool) -> None:
    assert score("generic", answer, item(gold)) is right


def test_unknown_kind_when_scoring() -> None:
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        score("chess", "e4", item("e4"))


# -- the real datasets ----------------------------------------------------------------

REAL = [("game24", "game24", 1162), ("gsm8k", "gsm8k", 1187), ("math500", "math500", 500),
        ("prontoqa", "prontoqa", 500), ("bbh", "bbh", 6511)]


@pytest.mark.parametrize(("kind", "folder", "count"), REAL)
def test_real_dataset_loads_whole(kind: str, folder: str, count: int) -> None:
    items = load(kind, shared_dataset(folder))
    assert len(items) == count
    assert len({i.id for i in items}) == count  # ids are unique, so resume can rely on them
    assert {i.task for i in items} == {TASKS[kind]}  # one truth: the table the bench runs by
    if kind != "game24":  # every gold answer scores as right against itself
        assert all(score(kind, i.gold, i) for i in items)


def test_real_game24_known_solution() -> None:
    items = {i.id: i for i in load("game24", shared_dataset("game24"))}
    first = items["1"]
    assert first.question == "Use the numbers 1 1 4 6 and + - * / to make 24."
    assert score("game24", "(1 + 1) * ... ", first) is False
    assert score("game24", "4 * 6 * 1 * 1 = 24", first)
    assert score("game24", "(4 * 6) * (1 / 1)", first)
    assert not score("game24", "4 * 6 = 24", first)


def test_real_gsm8k_solutions_pass_the_math_verifier() -> None:
    # The verifier must not reject what GSM8K's own solutions write: of its train
    # solutions' 26,724 lines, the checks reject under 1 % (prose like "W/2 - 2 = $55",
    # read as 2 - 2 = 55), and the self-subtraction check alone rejects 2. Their final
    # answers, as answer lines after those steps, are rejected for 60 of 7,473 items
    # (stated in words, "so she has 5 left", never after an "=").
    from deliberate.tasks.math import MathTask, subtracts_a_number_from_itself

    task, lines, rejected, vacuous, answers, unsupported = MathTask(), 0, 0, 0, 0, 0
    for row in (json.loads(line) for line in (shared_dataset("gsm8k") / "train.jsonl").read_text().splitlines()):
        solution, gold = row["answer"].split("####")
        steps = [step.strip() for step in solution.strip().splitlines()]
        for step in steps:
            lines += 1
            rejected += not task.check_step(step, verify=True)
            vacuous += subtracts_a_number_from_itself(step)
        answers += 1
        unsupported += not task.check_answer(row["question"], {"steps": steps, "answer": None}, f"Answer: {gold.strip()}", verify=True)
    assert lines > 20000 and answers > 7000
    assert rejected / lines < 0.01 and vacuous / lines < 0.0005
    assert unsupported / answers < 0.01
