"""The benchmark runner and the ``deliberate bench`` commands, on the scripted backend.

A responder plays the model for Game of 24: after an opening such as "10 - 4 =" it
writes the right (or a wrong) result. Prompts show the numbers left as "Input: ...",
so a four-number input is an item's root and tells which item is being solved.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from deliberate.backends.base import GenerateRequest
from deliberate.backends.scripted import ScriptedBackend
from deliberate.backends.server import ServerBackend
from deliberate.benchmarks.runner import run
from deliberate.calculator import evaluate, format_number
from deliberate.cli import app
from deliberate.errors import (
    BackendError,
    CalculatorError,
    ContextOverflowError,
    DatasetError,
    ServerError,
    UnknownNameError,
    UsageError,
)

from helpers_real import run_cli

PUZZLES = ["1 1 4 6", "1 1 11 11", "4 5 6 10"]
FIELDS = {"id", "task", "question", "gold", "answer", "correct", "solved", "seconds", "tokens", "nodes",
          "stop_reason", "model", "seed", "strategy", "think", "verifier", "options", "answers", "reached"}


class Player:
    """Computes each opened step right (or wrong, with ``wrong``); ``raise_on`` maps a puzzle
    to the exceptions to raise, one per call, before it answers normally."""

    def __init__(self, *, wrong: bool = False, raise_on: dict[str, list[BaseException]] | None = None) -> None:
        self.wrong = wrong
        self.raise_on = raise_on or {}
        self.roots: Counter[str] = Counter()  # generate calls per item root

    def __call__(self, prompt: str, request: GenerateRequest, seed: int) -> str:
        left = re.findall(r"Input: ([^\n]*)\n", prompt)[-1]
        if len(left.split()) == 4:
            self.roots[left] += 1
            if self.raise_on.get(left):
                raise self.raise_on[left].pop(0)
        opened = re.search(r"(\S+) ([-+*/]) (\S+) =$", prompt)
        if not opened:
            operand = re.search(r"\n(\S+)$", prompt)  # the calculator computes: name a move
            others = left.split()
            if operand and operand[1] in others:
                others.remove(operand[1])
                return f" + {others[0]} =\n"
            return "\n"
        try:
            value = evaluate(f"{opened[1]} {opened[2]} {opened[3]}")
        except CalculatorError:
            return " 0\n"
        return f" {format_number(value + 1 if self.wrong else value)}\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "24.csv"
    path.write_text("Rank,Puzzles\n" + "".join(f"{i},{p}\n" for i, p in enumerate(PUZZLES, 1)))
    return path


def bench(data: Path, out: Path, player: Player, **kwargs: Any) -> list[dict[str, Any]]:
    kwargs = {"strategies": ["bfs"], "thinks": [5.0], "retry_wait": 0.0, **kwargs}
    return run("game24", data, model=ScriptedBackend(player), out=out, **kwargs)


def lines(out: Path) -> list[dict[str, Any]]:
    text = out.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_records_are_written_with_every_field(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    records = bench(data, out, Player(), strategies=["bfs", "cot"], thinks=["5s", 2])
    assert records == lines(out)
    assert len(records) == len(PUZZLES) * 4
    first = records[0]
    assert set(first) == FIELDS
    assert first["id"] == "1" and first["task"] == "game24" and first["gold"] == "1 1 4 6"
    assert first["question"] == "Use the numbers 1 1 4 6 and + - * / to make 24."
    assert (first["strategy"], first["think"], first["seed"], first["verifier"]) == ("bfs", 5.0, 0, True)
    assert first["model"] == "scripted" and first["options"] == {}
    assert first["correct"] and first["solved"] and first["answer"].endswith("= 24")
    assert 0 < first["seconds"] <= 5.0 and first["tokens"] > 0 and first["nodes"] > 1
    assert all(r["correct"] for r in records if r["strategy"] == "bfs")
    assert first["reached"] and first["answer"] in first["answers"] and all(n >= 1 for n in first["answers"].values())


def test_records_tell_a_right_answer_reached_from_a_right_answer_given(tmp_path: Path) -> None:
    from conftest import GenericResponder

    data = tmp_path / "test.jsonl"
    question = "Ann has 5 apples and buys 2 more. Her bag holds 40. How many apples does she have?"
    data.write_text(json.dumps({"question": question, "answer": "5 + 2 = <<5+2=7>>7\n#### 7"}) + "\n")
    # Most chains answer 40 (a number the question gives, so the verifier lets it be);
    # a few compute 7, the right one.
    backend = ScriptedBackend(GenericResponder(answer="5 + 2 = 7", wrong="40", steps=0, accuracy=0.3))
    [record] = run("gsm8k", data, model=backend, out=tmp_path / "r.jsonl", strategies=["self-consistency"], thinks=[5.0])
    assert set(record["answers"]) == {"7", "40"} and record["answers"]["40"] > record["answers"]["7"] >= 1
    assert list(record["answers"]) == ["40", "7"]  # most chains first
    assert (record["answer"], record["correct"], record["reached"]) == ("40", False, True)
    unreached = ScriptedBackend(GenericResponder(answer="40", wrong="12", steps=0, accuracy=0.5))
    [record] = run("gsm8k", data, model=unreached, out=tmp_path / "r2.jsonl", strategies=["self-consistency"], thinks=[5.0])
    assert set(record["answers"]) == {"40"} and not record["reached"]  # "Answer: 12" is a guess: rejected


def test_task_solves_every_item_as_another_task_and_is_part_of_the_key(tmp_path: Path) -> None:
    from conftest import GenericResponder

    from deliberate.benchmarks import report
    from deliberate.errors import UsageError

    class Recording(GenericResponder):
        def __init__(self) -> None:
            super().__init__(answer="5 + 2 = 7", steps=0, accuracy=1.0)
            self.prompts: list[str] = []

        def __call__(self, prompt: str, request: GenerateRequest, seed: int) -> str:
            self.prompts.append(prompt)
            return super().__call__(prompt, request, seed)

    data, out = tmp_path / "test.jsonl", tmp_path / "r.jsonl"
    question = "Ann has 5 apples and buys 2 more. How many apples does she have?"
    data.write_text(json.dumps({"question": question, "answer": "5 + 2 = <<5+2=7>>7\n#### 7"}) + "\n")
    math_shot, generic_shot = "Mia buys 3 notebooks", "A box holds 6 eggs"  # each task's first exemplar
    records = {}
    for solve_as in (None, "generic", "auto"):
        responder = Recording()
        [records[solve_as]] = run("gsm8k", data, model=ScriptedBackend(responder), out=out, strategies=["cot"],
                                  thinks=[5.0], settings={"task": solve_as})
        shot = generic_shot if solve_as == "generic" else math_shot  # auto reads a word problem: math
        assert responder.prompts and all(shot in p for p in responder.prompts), solve_as
        assert records[solve_as]["correct"] and records[solve_as]["task"] == "gsm8k"  # scored as the dataset says
    assert "settings" not in records[None]
    assert records["generic"]["settings"] == {"task": "generic"} and records["auto"]["settings"] == {"task": "auto"}
    assert len(lines(out)) == 3  # each is a cell of its own, not skipped as done
    labels = [row.strategy for row in report.table(records.values())]
    assert sorted(labels) == ["cot", "cot --task auto", "cot --task generic"]
    before = out.read_bytes()
    # checked before the model loads (this file does not exist), with the file left as it was
    with pytest.raises(UsageError, match=r"unknown task 'chess' \(tasks: auto, generic, game24, math"):
        run("gsm8k", data, model=str(tmp_path / "missing.gguf"), out=out, strategies=["cot"], thinks=[5.0], settings={"task": "chess"})
    assert out.read_bytes() == before


def test_wrong_steps_score_wrong(data: Path, tmp_path: Path) -> None:
    # Without the tool the model computes, and this one computes wrong.
    records = bench(
        data, tmp_path / "r.jsonl", Player(wrong=True), verifier=False, thinks=[1.0],
        settings={"tools": False, "task_options": {"openings": "pair"}},
    )
    assert len(records) == 3
    assert not any(r["correct"] for r in records)
    assert all(r["verifier"] is False for r in records)


def test_resume_skips_finished_cells(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    bench(data, out, Player(), limit=2)
    player = Player()
    records = bench(data, out, player)
    assert set(player.roots) == {"4 5 6 10"}  # only the third item was solved again
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert len(lines(out)) == 3
    other_seed = Player()
    bench(data, out, other_seed, seed=1)  # a different cell: nothing is skipped
    assert len(other_seed.roots) == 3 and len(lines(out)) == 6


def test_half_written_last_line_is_cut_off(data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "r.jsonl"
    bench(data, out, Player(), limit=2)
    with out.open("a") as handle:
        handle.write('{"id": "3", "task": "game24", "que')
    with caplog.at_level(logging.WARNING, logger="deliberate.jsonl"):
        records = bench(data, out, Player())
    assert "line 3: cutting off a half-written record" in caplog.text
    assert [r["id"] for r in lines(out)] == ["1", "2", "3"]
    assert records == lines(out)


def test_unterminated_but_whole_last_line_is_kept(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    bench(data, out, Player(), limit=1)
    out.write_text(out.read_text().rstrip("\n"))
    player = Player()
    bench(data, out, player)
    assert "1 1 4 6" not in player.roots
    assert [r["id"] for r in lines(out)] == ["1", "2", "3"]


def test_bad_line_in_the_middle_is_an_error(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    bench(data, out, Player(), limit=2)
    first, second = out.read_text().splitlines()
    out.write_text(f"{first}\n{{oops\n{second}\n")
    with pytest.raises(DatasetError, match=r"r.jsonl line 2: not valid JSON"):
        bench(data, out, Player())
    assert out.read_text() == f"{first}\n{{oops\n{second}\n"  # nothing was cut


def test_interrupt_keeps_finished_records(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with pytest.raises(KeyboardInterrupt):
        bench(data, out, Player(raise_on={"4 5 6 10": [KeyboardInterrupt()]}))
    assert [r["id"] for r in lines(out)] == ["1", "2"]
    player = Player()
    assert len(bench(data, out, player)) == 3
    assert set(player.roots) == {"4 5 6 10"}


def test_transient_backend_error_is_retried(data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "r.jsonl"
    down = [ServerError("cannot reach the model server"), ServerError("cannot reach the model server")]
    player = Player(raise_on={"1 1 11 11": down})
    with caplog.at_level(logging.WARNING, logger="deliberate.bench"):
        records = bench(data, out, player)
    assert [r["id"] for r in records] == ["1", "2", "3"] and all(r["correct"] for r in records)
    assert "item 2: cannot reach the model server; retrying" in caplog.text
    assert lines(out) == records


def test_backend_down_for_good_aborts_keeping_records(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    player = Player(raise_on={"1 1 11 11": [ServerError("server down") for _ in range(10)]})
    with pytest.raises(BackendError, match="server down"):
        bench(data, out, player)
    assert [r["id"] for r in lines(out)] == ["1"]


@pytest.mark.parametrize(
    "error",
    [BackendError("no free sequence ids: raise n_seq_max"), ServerError("the model server answered 404: no such model")],
)
def test_a_lasting_backend_error_is_not_retried(data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, error) -> None:
    if "404" in str(error):
        from deliberate.backends.server import _StatusError

        error = _StatusError(str(error), 404)
    out = tmp_path / "r.jsonl"
    player = Player(raise_on={"1 1 11 11": [error] * 10})
    with caplog.at_level(logging.WARNING, logger="deliberate.bench"), pytest.raises(BackendError):
        bench(data, out, player)
    assert "retrying" not in caplog.text  # the first failure is the last
    assert player.raise_on["1 1 11 11"] == [error] * 9  # asked exactly once
    assert [r["id"] for r in lines(out)] == ["1"]


def test_context_overflow_is_a_wrong_answer_not_a_crash(data: Path, tmp_path: Path) -> None:
    player = Player(raise_on={"1 1 11 11": [ContextOverflowError("prompt of 9000 tokens does not fit")]})
    records = bench(data, tmp_path / "r.jsonl", player)
    assert records[1]["correct"] is False and records[1]["stop_reason"] == "error"
    assert "does not fit" in records[1]["error"]
    assert records[1]["answers"] == {} and records[1]["reached"] is False  # counted in --reached, as not reached
    assert records[2]["correct"]


def test_traces_are_written(data: Path, tmp_path: Path) -> None:
    records = bench(data, tmp_path / "r.jsonl", Player(), limit=1, trace_dir=tmp_path / "traces", options=["breadth=3"])
    trace = Path(records[0]["trace"])
    assert trace.parent == tmp_path / "traces" and trace.name == "game24_1_bfs_5s_seed0.json"
    assert json.loads(trace.read_text())["meta"]["options"]["breadth"] == 3
    assert records[0]["options"] == {"breadth": "3"}


def test_concurrent_items_write_whole_records(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    records = bench(data, out, Player(), concurrency=2, thinks=[5.0, 10.0])
    assert len(records) == 6
    assert sorted((r["id"], r["think"]) for r in lines(out)) == sorted((r["id"], r["think"]) for r in records)


def test_bad_arguments_fail_before_the_model_loads(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    missing = str(tmp_path / "missing.gguf")  # loading it would be a ModelError
    with pytest.raises(UsageError, match="needs a model server"):
        run("game24", data, strategies=["bfs"], thinks=[1], model=missing, out=out, concurrency=2)
    with pytest.raises(UsageError, match="needs a model server"):
        run("game24", data, strategies=["bfs"], thinks=[1], model=None, out=out, concurrency=2)
    with pytest.raises(UnknownNameError, match="unknown strategy"):
        run("game24", data, strategies=["nope"], thinks=[1], model=missing, out=out)
    with pytest.raises(UnknownNameError, match="unknown option"):
        run("game24", data, strategies=["bfs"], thinks=[1], model=missing, out=out, options=["depth=2"])
    with pytest.raises(DatasetError, match="not found"):
        run("game24", tmp_path / "nowhere", strategies=["bfs"], thinks=[1], model=missing, out=out)
    for selection, match in (
        ({"limit": 0}, "limit must be at least 1, got 0"),
        ({"limit": -2}, "limit must be at least 1, got -2"),
        ({"start": -1}, "start must not be negative"),
        ({"start": 3}, r"start 3 skips every item: .* holds 3 game24 items"),
    ):
        with pytest.raises(UsageError, match=match):
            run("game24", data, strategies=["bfs"], thinks=[1], model=missing, out=out, **selection)
    for task_options, error, match in (
        ({"depth": 2}, UnknownNameError, "unknown option 'depth' for task game24"),
        ({"openings": "diagonal"}, UsageError, "openings must be one of"),
        ({"tools": False}, UsageError, "--no-tools"),
    ):
        with pytest.raises(error, match=match):
            run("game24", data, strategies=["bfs"], thinks=[1], model=missing, out=out,
                settings={"task_options": task_options})
    assert not out.exists()


@pytest.mark.parametrize("selection", [["--limit", "0"], ["--start", "1000"]])
def test_a_selection_of_no_items_is_an_error_that_writes_nothing(data: Path, tmp_path: Path, selection: list[str]) -> None:
    out = tmp_path / "r.jsonl"
    run_ = run_cli("bench", "game24", "--data", str(data), "--out", str(out), *selection, timeout=30)
    assert run_.code == 2, run_.stderr
    [line] = run_.error_lines()
    assert line.startswith("deliberate: error: ") and ("limit" in line or "skips every item" in line), line
    assert not out.exists()


def test_a_bad_task_option_leaves_an_existing_results_file_as_it_was(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    bench(data, out, Player())
    before = out.read_bytes()
    run_ = run_cli("bench", "game24", "--data", str(data), "--out", str(out), "--task-opt", "results=maybe", timeout=30)
    assert run_.code == 2, run_.stderr
    assert run_.error_lines() == ["deliberate: error: game24 results must be one of greedy, sampled, got 'maybe'"]
    assert out.read_bytes() == before


# -- a model server that goes away -----------------------------------------------------


class FlakyServer:
    """An OpenAI-compatible server in a function (``httpx.MockTransport``) that plays ``Player``.

    With ``outage_on`` set, it goes away at the first completion for that puzzle: each
    completion stalls ``stall`` seconds and then fails to connect, until a client has
    seen ``GET /models`` fail once (the server has been restarted since).
    """

    def __init__(self, player: Player, *, outage_on: str | None = None, stall: float = 0.0) -> None:
        self.player, self.outage_on, self.stall = player, outage_on, stall
        self.down = False
        self.failed = Counter()  # failed requests by path
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self.lock:
            body = json.loads(request.content) if request.content else {}
            if self.outage_on and f"Input: {self.outage_on}\n" in body.get("prompt", ""):
                self.down, self.outage_on = True, None
            down = self.down
            if down:
                self.failed[path] += 1
                self.down = not path.endswith("/models")
        if down:
            time.sleep(self.stall if path.endswith("/completions") else 0.0)
            raise httpx.ConnectError("fake: connection refused", request=request)
        if path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "fake-model"}]})
        if "logprobs" in body:
            top = {" sure": -0.5, " likely": -1.5, " impossible": -3.0}
            choice = {"index": 0, "text": " sure", "logprobs": {"tokens": [" sure"], "top_logprobs": [top]}}
            usage = {"prompt_tokens": 5, "completion_tokens": 1}
            return httpx.Response(200, json={"choices": [choice], "usage": usage})
        request = GenerateRequest(body["prompt"])
        texts = [self.player(body["prompt"], request, body["seed"] + i) for i in range(body["n"])]
        choices = [{"index": i, "text": text, "finish_reason": "stop"} for i, text in enumerate(texts)]
        return httpx.Response(200, json={"choices": choices, "usage": {"prompt_tokens": 5, "completion_tokens": 2}})


def test_server_outage_mid_item_loses_no_record(data: Path, tmp_path: Path) -> None:
    # The outage stalls past the item's deadline, so the backend sees a cut-off sample, not
    # an error. Without a look at the server afterwards, item 2 would be recorded as wrong.
    # The wait before the retry lets the stalled requests of the first try drain. The
    # items get 3 s each, where 1 s is enough on an idle machine, so that a busy one
    # still solves them on the real clock.
    fake = FlakyServer(Player(), outage_on="1 1 11 11", stall=3.1)
    backend = ServerBackend("http://fake.test/v1", transport=httpx.MockTransport(fake), max_retries=2)
    out = tmp_path / "r.jsonl"
    records = run("game24", data, model=backend, strategies=["bfs"], thinks=[3.0], out=out, retry_wait=1.0)
    assert fake.failed["/v1/completions"] >= 1
    assert fake.failed["/v1/models"] == 1  # the runner's look after the item found the server away
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert all(r["correct"] for r in records) and records[0]["model"] == "fake-model"
    assert lines(out) == records


def test_concurrent_items_against_a_server(data: Path, tmp_path: Path) -> None:
    backend = ServerBackend("http://fake.test/v1", transport=httpx.MockTransport(FlakyServer(Player())))
    out = tmp_path / "r.jsonl"
    records = run("game24", data, model=backend, strategies=["bfs", "cot"], thinks=[2.0], out=out, concurrency=3)
    assert len(records) == 6 and all(r["correct"] for r in records if r["strategy"] == "bfs")
    assert sorted(r["id"] + r["strategy"] for r in lines(out)) == sorted(r["id"] + r["strategy"] for r in records)


# -- the command line -------------------------------------------------------------------


def test_cli_report(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    rows = [
        {"id": str(i), "task": "game24", "strategy": "bfs", "think": 5.0, "correct": i < 3, "seconds": 2, "tokens": 20}
        for i in range(4)  # 3 of 4 right
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["bench", "report", str(out), "--markdown", "--plot", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert "| game24 | bfs | 5s | 75.0% | 30.1%–95.4% | 4 | 2.0 | 10 |" in result.stdout
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    result = CliRunner().invoke(app, ["bench", "report", str(out)])
    assert result.exit_code == 0 and "75.0%" in result.stdout


def test_cli_report_of_a_range_of_items(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    rows = [
        {"id": f"test:{i}", "task": "gsm8k", "strategy": "cot", "think": 20.0, "correct": i in (2, 40), "seconds": 2, "tokens": 20}
        for i in range(1, 101)
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["bench", "report", str(out), "--markdown", "--items", "1-30"])
    assert result.exit_code == 0, result.output
    assert "| gsm8k | cot | 20s | 3.3% |" in result.stdout and "| 30 |" in result.stdout
    result = CliRunner().invoke(app, ["bench", "report", str(out), "--markdown", "--items", "31-100"])
    assert "| gsm8k | cot | 20s | 1.4% |" in result.stdout and "| 70 |" in result.stdout
    for bad, code, message in [("1-x", 2, "expected a range of item numbers such as 1-30"), ("30-1", 2, "from a lower number"),
                               ("200-300", 1, "no results in")]:
        done = run_cli("bench", "report", str(out), "--items", bad, timeout=60)
        assert done.code == code and done.stdout == "", done.stderr
        assert len(done.error_lines()) == 1, done.stderr
        assert done.error_lines()[0].startswith("deliberate: ") and message in done.error_lines()[0]
    assert len(out.read_text().splitlines()) == 100  # reporting never touches the file


def test_cli_report_of_the_answers_the_question_states(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    question = "Her flock is 20 chickens and each eats 3 cups. She gave 15 and 25 cups. How many cups are left to give?"
    rows = [
        {"id": f"test:{i}", "task": "gsm8k", "strategy": "cot", "think": 20.0, "seconds": 2, "tokens": 20,
         "question": question, "gold": "20", "answer": answer, "correct": answer == "20"}
        for i, answer in enumerate(["20", "15", "60", "20"], start=1)
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["bench", "report", str(out), "--stated", "--markdown", "--items", "1-3"])
    assert result.exit_code == 0, result.output
    assert "| gsm8k | cot | 20s | 1/3 (33.3%) | 0/0 | 2/3 (66.7%) |" in result.stdout
    game24 = tmp_path / "g.jsonl"
    game24.write_text(json.dumps({"id": "1101", "task": "game24", "strategy": "bfs", "think": 5.0, "correct": True,
                                  "question": "4 6 6 6", "gold": "", "answer": "(6 - 4) * 6 + 6"}) + "\n")
    for args, code, message in [([str(out), "--grid"], 2, "cannot be combined with --grid"),
                                ([str(game24)], 1, "a numeric gold answer")]:
        done = run_cli("bench", "report", "--stated", *args, timeout=60)
        assert done.code == code and done.stdout == "", done.stderr
        assert len(done.error_lines()) == 1 and message in done.error_lines()[0], done.stderr
    assert len(out.read_text().splitlines()) == 4 and len(game24.read_text().splitlines()) == 1  # never touched


def test_cli_report_of_the_answers_reached(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    rows = [
        {"id": f"test:{i}", "task": "gsm8k", "strategy": "self-consistency", "think": 20.0, "seconds": 20, "tokens": 200,
         "gold": "7", "answer": answers[0], "correct": answers[0] == "7", "answers": dict.fromkeys(answers, 2),
         "reached": "7" in answers}
        for i, answers in enumerate([["7", "40"], ["40", "7", "5"], ["40"], ["5"]], start=1)
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["bench", "report", str(out), "--reached", "--markdown"])
    assert result.exit_code == 0, result.output
    assert "| gsm8k | self-consistency | 20s | 1/4 (25.0%) | 2/4 (50.0%) | 1/2 (50.0%) | 1.8 | 3.5 |" in result.stdout
    old = tmp_path / "old.jsonl"  # written before records listed their answers
    old.write_text(json.dumps({k: v for k, v in rows[0].items() if k not in ("answers", "reached")}) + "\n")
    for args, code, message in [([str(out), "--stated"], 2, "one at a time"),
                                ([str(out), "--plot", str(tmp_path / "p.png")], 2, "--reached prints its own table"),
                                ([str(old)], 1, "run the benchmark again")]:
        done = run_cli("bench", "report", "--reached", *args, timeout=60)
        assert done.code == code and done.stdout == "", done.stderr
        assert len(done.error_lines()) == 1 and message in done.error_lines()[0], done.stderr
    assert len(out.read_text().splitlines()) == 4 and len(old.read_text().splitlines()) == 1  # never touched
    assert not (tmp_path / "p.png").exists()


def test_cli_runs_the_grid_by_default(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI takes no backend object, so the backend factory is swapped for the scripted one.
    monkeypatch.setattr("deliberate.backends.open_backend", lambda model=None, **_: ScriptedBackend(Player()))
    out = tmp_path / "r.jsonl"
    args = ["bench", "game24", "--data", str(data), "--think", "5s", "--out", str(out), "--limit", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in lines(out)] == ["1", "2"]
    assert "100.0%" in result.stderr  # the summary table


def deliberate_command() -> list[str]:
    script = Path(sys.executable).parent / "deliberate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "deliberate.cli"]


def test_cli_malformed_dataset_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    done = subprocess.run(
        [*deliberate_command(), "bench", "gsm8k", "--data", str(bad), "--out", str(tmp_path / "r.jsonl")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == "deliberate: error: bad.jsonl line 2: not valid JSON"
