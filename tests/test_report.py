"""Benchmark reports: the Wilson interval, aggregation, Markdown and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deliberate.benchmarks.report import Row, plot, read_records, render_table, table, to_grid, to_markdown, wilson
from deliberate.errors import DatasetError


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    # Reference values: statsmodels proportion_confint(method="wilson").
    (0, 10, 0.0, 0.277532),
    (5, 10, 0.236593, 0.763407),
    (10, 10, 0.722468, 1.0),
    (1, 3, 0.061492, 0.792340),
    (37, 100, 0.281824, 0.467795),
])
def test_wilson_known_values(successes: int, n: int, low: float, high: float) -> None:
    got = wilson(successes, n)
    assert got == pytest.approx((low, high), abs=1e-6)


@pytest.mark.parametrize(("successes", "n"), [(1, 2), (37, 100), (999, 1000)])
def test_wilson_bounds_solve_the_score_equation(successes: int, n: int) -> None:
    # Each bound p0 is a p for which the observed share is exactly z standard errors away.
    p = successes / n
    for p0 in wilson(successes, n):
        assert (p - p0) ** 2 == pytest.approx(1.959963984540054**2 * p0 * (1 - p0) / n, rel=1e-9)


def test_wilson_empty_sample_is_uninformative() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


def record(task: str, strategy: str, think: float, correct: bool, seconds: float, tokens: int, **extra: object) -> dict:
    return {
        "task": task, "strategy": strategy, "think": think, "correct": correct, "seconds": seconds, "tokens": tokens,
        **extra,
    }


RECORDS = [
    record("game24", "bfs", 60.0, True, 30.0, 300),
    record("game24", "bfs", 5.0, True, 4.0, 40, nodes=12),
    record("game24", "bfs", 5.0, False, 5.0, 60, nodes=8),
    record("game24", "bfs", 5.0, True, 1.0, 0),
    record("game24", "cot", 5.0, False, 2.0, 20),
    record("gsm8k", "bfs", 5.0, True, 5.0, 50, verifier=False),
    record("gsm8k", "bfs", 5.0, False, 3.0, 30),
]


def test_table_aggregates_and_sorts() -> None:
    rows = table(RECORDS)
    assert [(r.task, r.strategy, r.think, r.n, r.correct) for r in rows] == [
        ("game24", "bfs", 5.0, 3, 2),
        ("game24", "bfs", 60.0, 1, 1),
        ("game24", "cot", 5.0, 1, 0),
        ("gsm8k", "bfs", 5.0, 1, 0),
        ("gsm8k", "bfs --no-verifier", 5.0, 1, 1),  # never merged with verified runs
    ]
    first = rows[0]
    assert first.accuracy == pytest.approx(2 / 3)
    assert (first.low, first.high) == pytest.approx(wilson(2, 3))
    assert first.seconds == pytest.approx(10.0 / 3)
    assert first.tokens_per_second == pytest.approx(100 / 10.0)  # sum of tokens over sum of seconds
    assert first.nodes_per_second == pytest.approx(20 / 10.0)  # a record without nodes counts none


def test_table_rejects_records_without_keys() -> None:
    with pytest.raises(DatasetError, match="lacks task, strategy or think"):
        table([{"task": "game24", "correct": True}])


def test_read_records(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:3]) + "\n")
    b.write_text(json.dumps(RECORDS[3]) + "\n" + '{"task": "game24", "strat')  # a record still being written
    assert read_records([a, b]) == RECORDS[:4]
    assert read_records(str(a)) == RECORDS[:3]


def test_read_records_names_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n{oops\n" + json.dumps(RECORDS[1]) + "\n")
    with pytest.raises(DatasetError, match=r"bad.jsonl line 2: not valid JSON"):
        read_records([bad])
    bad.write_text("[1, 2]\n")
    with pytest.raises(DatasetError, match=r"bad.jsonl line 1: not a JSON object"):
        read_records([bad])
    with pytest.raises(DatasetError, match="results file not found"):
        read_records([tmp_path / "missing.jsonl"])


def test_markdown() -> None:
    text = to_markdown(table(RECORDS))
    lines = text.splitlines()
    assert lines[0] == "| task | strategy | think | accuracy | 95% CI | n | mean s | tok/s | nodes/s | quit |"
    assert lines[1].startswith("|---|---|--:")
    assert lines[2] == "| game24 | bfs | 5s | 66.7% | 20.8%–93.9% | 3 | 3.3 | 10 | 2.00 | 0 |"
    assert len(lines) == 2 + 5
    assert to_markdown([Row("game24", "bfs", 0.5, 1, 1, 1.0, 0.2, 1.0, 0.5, 0.0)]).count("500ms") == 1


def test_quits_count_unsolved_records_that_ended_complete() -> None:
    records = [
        {"task": "game24", "strategy": "bfs", "think": 60, "correct": False, "stop_reason": "complete"},
        {"task": "game24", "strategy": "bfs", "think": 60, "correct": False, "stop_reason": "deadline"},
        {"task": "game24", "strategy": "bfs", "think": 60, "correct": True, "stop_reason": "complete"},
        {"task": "game24", "strategy": "bfs", "think": 60, "correct": False, "stop_reason": "complete"},
    ]
    [row] = table(records)
    assert row.quits == 2 and row.correct == 1


def test_grid_has_a_column_per_budget_and_a_dash_where_none_ran() -> None:
    lines = to_grid(table(RECORDS)).splitlines()
    assert lines[0] == "| task | strategy | 5s | 60s |"
    assert lines[1] == "|---|---|--:|--:|"
    assert lines[2:] == [
        "| game24 | bfs | 67% (2/3) | 100% (1/1) |",
        "| game24 | cot | 0% (0/1) | – |",
        "| gsm8k | bfs | 0% (0/1) | – |",
        "| gsm8k | bfs --no-verifier | 100% (1/1) | – |",
    ]


def test_render_table() -> None:
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(render_table(table(RECORDS)))
    shown = console.export_text()
    assert "66.7%" in shown and "bfs --no-verifier" in shown


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = plot(table(RECORDS), tmp_path / "accuracy.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


def test_plot_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no results"):
        plot([], tmp_path / "x.png")


def test_wilson_bounds_are_exact_at_the_ends() -> None:
    for n in range(1, 200):
        assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0


def test_plot_handles_all_wrong_and_all_right(tmp_path: Path) -> None:
    # 0/n and n/n put the point on a bound; rounding must not make an error bar negative.
    pytest.importorskip("matplotlib")
    records = []
    for think in (5.0, 15.0, 60.0):
        for n in (21, 50):
            records += [record("game24", f"s{n}", think, think == 60.0, 1.0, 10) for _ in range(n)]
    out = plot(table(records), tmp_path / "bounds.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_show_as_the_flags_that_give_them() -> None:
    records = [
        record("gsm8k", "cot", 20, True, 1.0, 10, settings={"tools": False}),
        record("gsm8k", "cot", 20, False, 1.0, 10),
        record("game24", "bfs", 60, True, 1.0, 10, settings={"evaluator": "none", "task_options": {"openings": "pair"}}),
    ]
    names = {(row.task, row.strategy) for row in table(records)}
    assert names == {("gsm8k", "cot --no-tools"), ("gsm8k", "cot"), ("game24", "bfs --evaluator none --task-opt openings=pair")}


# -- answers the question states ------------------------------------------------------------

FLOCK = "Wendi gives 15 cups in the morning and 25 in the afternoon. Her flock is 20 chickens, 3 cups each. How many cups at the last meal?"
DRINK = "I have 10 liters that are two-thirds water and 15 liters that are three-fifths water. I spill 1 liter. How much water is left?"


def math_record(question: str, gold: str, answer: str | None, strategy: str = "self-consistency", **extra: object) -> dict:
    correct = answer is not None and answer.split()[-1] == gold
    return record("gsm8k", strategy, 20.0, correct, 20.0, 100, question=question, gold=gold, answer=answer, **extra)


def test_stated_splits_the_items_by_whether_the_question_states_the_gold_answer() -> None:
    from deliberate.benchmarks.stated import stated_table

    records = [
        math_record(FLOCK, "20", "20"),  # stated, right: the flock's size is the answer
        math_record(DRINK, "14", "15 liters"),  # not stated; the answer copies a number, wrongly
        math_record(DRINK, "14", "14"),  # not stated, right
        math_record(FLOCK, "20", None),  # no answer
        math_record(FLOCK, "20", "$1,500"),  # a number the question does not state
        math_record(FLOCK, "20", "15", settings={"tools": False}),
    ]
    [plain, no_tools] = stated_table(records)
    assert (plain.strategy, plain.stated, plain.stated_right, plain.other, plain.other_right, plain.echoed) == (
        "self-consistency", 3, 1, 2, 1, 2,
    )
    assert (no_tools.strategy, no_tools.stated, no_tools.stated_right, no_tools.echoed) == (
        "self-consistency --no-tools", 1, 0, 1,
    )


def test_stated_reads_numbers_as_values() -> None:
    from deliberate.benchmarks.stated import stated_table

    question = "A bag holds 1,450 grams and costs $7.50. What does it cost?"
    [row] = stated_table([math_record(question, "7.5", "7.50 dollars"), math_record(question, "1450", "1450")])
    assert (row.stated, row.echoed) == (2, 2)


def test_stated_markdown_gives_counts_and_shares() -> None:
    from deliberate.benchmarks.stated import stated_markdown, stated_table

    text = stated_markdown(stated_table([math_record(FLOCK, "20", "20"), math_record(DRINK, "14", "3")]))
    assert "| gsm8k | self-consistency | 20s | 1/1 (100.0%) | 0/1 (0.0%) | 1/2 (50.0%) |" in text


def test_stated_needs_numeric_gold_answers() -> None:
    from deliberate.benchmarks.stated import stated_table

    with pytest.raises(DatasetError, match="a question and a numeric gold answer"):
        stated_table([record("game24", "bfs", 5.0, True, 1.0, 10, question="4 6 6 6", gold="", answer="(6 - 4) * 6 + 6")])


# -- answers reached ------------------------------------------------------------------------------


def reached_record(answers: dict[str, int], given: str | None, gold: str = "7", **extra: object) -> dict:
    return record("gsm8k", "self-consistency", 20.0, given == gold, 20.0, 100, gold=gold, answer=given,
                  answers=answers, reached=gold in answers, **extra)


def test_reached_separates_what_the_search_generated_from_what_it_gave() -> None:
    from deliberate.benchmarks.reached import reached_table

    records = [
        reached_record({"7": 3, "40": 1}, "7"),  # reached and picked
        reached_record({"40": 3, "7": 2}, "40"),  # reached, not picked
        reached_record({"40": 1}, "40"),  # never reached
        reached_record({}, None),  # no answer at all
        reached_record({"7": 1}, "7", settings={"tools": False}),
        record("gsm8k", "self-consistency", 20.0, True, 20.0, 100, gold="7", answer="7"),  # an older record: left out
    ]
    [plain, no_tools] = reached_table(records)
    assert (plain.strategy, plain.n, plain.right, plain.reached, plain.picked, plain.answers, plain.chains) == (
        "self-consistency", 4, 1, 2, 1, 5, 10,
    )
    assert (no_tools.strategy, no_tools.n, no_tools.right, no_tools.reached, no_tools.picked) == (
        "self-consistency --no-tools", 1, 1, 1, 1,
    )


def test_reached_markdown_and_rich_tables() -> None:
    from rich.console import Console

    from deliberate.benchmarks.reached import reached_markdown, reached_table, render_reached

    rows = reached_table([reached_record({"40": 2}, "40"), reached_record({"40": 1, "7": 1}, "40")])
    assert "| gsm8k | self-consistency | 20s | 0/2 (0.0%) | 1/2 (50.0%) | 0/1 (0.0%) | 1.5 | 2.0 |" in reached_markdown(rows)
    console = Console(width=200, record=True)
    console.print(render_reached(rows))
    text = console.export_text()
    assert "picked when reached" in text and "1/2 (50.0%)" in text


def test_reached_needs_records_that_list_their_answers() -> None:
    from deliberate.benchmarks.reached import reached_table

    with pytest.raises(DatasetError, match="run the benchmark again"):
        reached_table([record("gsm8k", "cot", 20.0, True, 2.0, 10, gold="7", answer="7")])
