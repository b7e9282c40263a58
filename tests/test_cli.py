"""The ``deliberate`` command as users run it: a fresh interpreter per call.

Every bad input must end with exactly one line on stderr (no traceback), the exit
code of its error class (2 usage, 1 anything else), and nothing written: an existing
file at the --trace target stays as it was, a missing one stays missing. The happy
path thinks on the embedded model and checks the answer, the trace and the budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from helpers_real import assert_trace_complete, budget_slack, read_json, run_cli

SENTINEL = '{"not": "a trace, and it must survive"}\n'
PUZZLE = "Use the numbers 4 5 6 10 and + - * / to make 24."


@pytest.fixture
def corrupt_gguf(tmp_path: Path) -> Path:
    # Right magic bytes, then garbage: it passes our check and fails inside llama.cpp.
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.gguf"
    path.write_text("these are not the weights you are looking for\n" * 20)
    return path


def assert_clean_failure(run, code: int, needle: str) -> None:
    assert run.code == code, (run.code, run.stderr)
    assert "Traceback" not in run.stderr
    lines = run.error_lines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("deliberate: "), lines[0]
    assert needle.lower() in lines[0].lower(), lines[0]
    assert run.stdout == ""


# Each case: arguments after "solve", exit code, a word the message must contain.
# None of them may load the model (they fail in well under a second of checks).
FAST_FAILURES = {
    "empty question": (["", "--think", "1s"], 2, "empty"),
    "blank question": (["   \t ", "--think", "1s"], 2, "empty"),
    "- with nothing on stdin": (["-", "--think", "1s"], 2, "empty"),
    "think abc": (["what?", "--think", "abc"], 2, "duration"),
    "think 0": (["what?", "--think", "0"], 2, "duration"),
    "think -1": (["what?", "--think", "-1"], 2, "duration"),
    "think empty": (["what?", "--think", ""], 2, "duration"),
    "missing model": (["what?", "--think", "1s", "--model", "/nonexistent.gguf"], 1, "not found"),
    "unknown strategy": (["what?", "--think", "1s", "--strategy", "telepathy"], 2, "strategy"),
    "unknown task": (["what?", "--think", "1s", "--task", "poetry"], 2, "unknown task 'poetry' (tasks: auto, generic, game24, math)"),
    "empty task": (["what?", "--think", "1s", "--task", ""], 2, "unknown task '' (tasks: auto,"),
    "unknown option": (["what?", "--think", "1s", "--opt", "wisdom=9"], 2, "wisdom"),
    "option without =": (["what?", "--think", "1s", "--opt", "breadth"], 2, "key=value"),
    "game24 needs four numbers": (["make 24 from 1 2", "--task", "game24", "--think", "1s"], 2, "four numbers"),
    "unknown task option": (["what?", "--think", "1s", "--task", "math", "--task-opt", "depth=3"], 2, "unknown option 'depth' for task math"),
    "task option of the wrong type": (["what?", "--think", "1s", "--task", "math", "--task-opt", "max_depth=deep"], 2, "expected int"),
    "task option out of range": (["what?", "--think", "1s", "--task", "generic", "--task-opt", "max_depth=0"], 2, "at least 1"),
    "threads 0": (["what?", "--think", "1s", "--threads", "0"], 2, "--threads"),
    "threads negative": (["what?", "--think", "1s", "--threads", "-3"], 2, "--threads"),
    "tools as a task option": (["what?", "--think", "1s", "--task", "math", "--task-opt", "tools=false"], 2, "--no-tools"),
    "unreachable server": (["what?", "--think", "2s", "--model", "http://127.0.0.1:9/v1"], 1, "127.0.0.1:9"),
}


@pytest.mark.parametrize("case", list(FAST_FAILURES))
def test_bad_input_is_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    args, code, needle = FAST_FAILURES[case]
    existing = tmp_path / "existing.json"
    existing.write_text(SENTINEL)
    run = run_cli("solve", *args, "--trace", str(existing), cwd=tmp_path, timeout=30)
    assert_clean_failure(run, code, needle)
    assert run.seconds < 10, "a bad input must be rejected at once"
    assert existing.read_text() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.json"]  # no temp files left


def test_not_a_gguf_is_rejected_before_llama_cpp(text_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    run = run_cli("solve", "what?", "--think", "1s", "--model", str(text_file), "--trace", str(target))
    assert_clean_failure(run, 1, "not a GGUF")
    assert not target.exists()


def test_corrupt_gguf_is_a_one_line_load_error(corrupt_gguf: Path, tmp_path: Path) -> None:
    existing = tmp_path / "existing.json"
    existing.write_text(SENTINEL)
    run = run_cli("solve", "what?", "--think", "1s", "--model", str(corrupt_gguf), "--trace", str(existing))
    assert_clean_failure(run, 1, "could not load")
    assert existing.read_text() == SENTINEL


def test_trace_in_missing_directory_fails_before_loading(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "t.json"
    # The model path is bad too: had the model been resolved or loaded first, the
    # message would be about the model, not the trace.
    run = run_cli("solve", PUZZLE, "--think", "1s", "--model", str(tmp_path / "absent.gguf"), "--trace", str(target))
    assert_clean_failure(run, 2, "does not exist")
    assert "trace" in run.stderr
    assert run.seconds < 3
    assert not target.parent.exists()


def test_no_arguments_prints_help() -> None:
    run = run_cli()
    assert run.code == 0
    assert "solve" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.model
def test_question_longer_than_the_context_is_a_one_line_error(tmp_path: Path) -> None:
    question = "word " * 20_000  # about 20k tokens, near the OS limit for one argument
    target = tmp_path / "t.json"
    run = run_cli("solve", question, "--think", "2s", "--ctx", "512", "--threads", "1", "--trace", str(target), timeout=60)
    assert_clean_failure(run, 1, "does not fit")
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.model
def test_a_tiny_context_is_a_one_line_error(tmp_path: Path) -> None:
    # Below n_seq_max (64) llama.cpp would abort the process while creating the context.
    run = run_cli("solve", "what?", "--think", "1s", "--ctx", "16", "--threads", "1", timeout=60)
    assert_clean_failure(run, 1, "n_ctx (16)")


# -- the happy path -------------------------------------------------------------------

THINK = 8.0


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory):
    """One real solve with the default settings (threads, context, strategy)."""
    folder = tmp_path_factory.mktemp("solve")
    trace = folder / "t.json"
    run = run_cli("solve", PUZZLE, "--think", f"{THINK:g}s", "--trace", str(trace), cwd=folder, timeout=120)
    return run, trace


@pytest.mark.model
def test_solve_prints_the_answer_and_exits_0_or_3(solved) -> None:
    run, trace = solved
    assert run.code in (0, 3), run.stderr
    assert "Traceback" not in run.stderr
    answer = read_json(trace)["meta"]["answer"]
    if run.code == 0:
        assert run.stdout.strip() == answer
    else:
        assert run.stdout == "" and answer is None
    summary = run.error_lines()
    assert len(summary) == 1 and "stop:" in summary[0], run.stderr


@pytest.mark.model
def test_solve_writes_a_complete_trace(solved) -> None:
    _, trace = solved
    data = read_json(trace)
    assert_trace_complete(data)
    assert data["meta"]["question"] == PUZZLE
    assert data["meta"]["task"] == "game24"
    assert data["meta"]["strategy"] == "bfs"
    assert not [p for p in trace.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.model
def test_solve_keeps_to_its_budget(solved) -> None:
    run, trace = solved
    timings = read_json(trace)["meta"]["timings"]
    assert timings["thinking_seconds"] <= THINK + budget_slack(THINK)
    # The summary line reports the same numbers.
    assert f"thought {timings['thinking_seconds']:.1f}s" in run.stderr
    # Start-up, trace writing and shutdown take seconds at most on top of load + think.
    overhead = run.seconds - timings["load_seconds"] - timings["thinking_seconds"]
    assert overhead < 4.0, overhead


@pytest.mark.model
def test_a_question_can_come_from_stdin() -> None:
    run = run_cli("solve", "-", "--think", "1s", "--threads", "1", "--json", timeout=60, stdin=f"{PUZZLE}\n")
    assert run.code in (0, 3), run.stderr
    payload = json.loads(run.stdout)
    assert payload["question"] == PUZZLE and payload["task"] == "game24"


@pytest.mark.model
def test_json_prints_one_object(tmp_path: Path) -> None:
    run = run_cli("solve", PUZZLE, "--think", "1s", "--threads", "1", "--json", "--seed", "3", cwd=tmp_path, timeout=60)
    assert run.code in (0, 3), run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    assert {"answer", "solved", "question", "task", "strategy", "stop_reason", "trace", "stats"} <= set(payload)
    assert payload["question"] == PUZZLE
    assert (payload["answer"] is None) == (run.code == 3)
    assert payload["trace"] is None
    answers = payload["answers"]  # every answer the search reached, with the chains behind it
    assert isinstance(answers, dict) and all(isinstance(n, int) and n >= 1 for n in answers.values())
    assert (payload["answer"] is None) or payload["answer"] in answers


@pytest.mark.model
def test_trace_show_renders_the_tree(solved) -> None:
    _, trace = solved
    run = run_cli("trace", "show", str(trace))
    assert run.code == 0, run.stderr
    assert "4 5 6 10" in run.stdout
    assert "stop:" in run.stdout


@pytest.mark.model
def test_trace_show_graphml_parses_with_networkx(solved) -> None:
    _, trace = solved
    run = run_cli("trace", "show", str(trace), "--format", "graphml")
    assert run.code == 0, run.stderr
    graph = nx.parse_graphml(run.stdout)
    data = read_json(trace)
    assert graph.number_of_nodes() == len(data["graph"]["nodes"])
    assert graph.number_of_edges() == len(data["graph"]["edges"])


def test_trace_show_of_a_non_trace_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text(SENTINEL)
    run = run_cli("trace", "show", str(bogus))
    assert_clean_failure(run, 1, "not a deliberate trace")
    missing = run_cli("trace", "show", str(tmp_path / "missing.json"))
    assert_clean_failure(missing, 1, "not found")


@pytest.mark.model
def test_bench_speed_json_reports_all_three_rates() -> None:
    run = run_cli("bench", "speed", "--json", "--width", "4", "--levels", "2", "--tokens", "8", "--repeat", "2")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["width"], result["levels"], result["tokens_per_child"], result["repeat"]) == (4, 2, 8, 2)
    for key in ("raw_tok_s", "engine_tok_s", "naive_tok_s"):
        assert result[key] > 0, result
    assert result["engine_vs_naive"] == pytest.approx(result["engine_tok_s"] / result["naive_tok_s"], rel=0.02)
    # Level 2 extends level 1's prompt, so the prefix cache must have saved its tokens.
    assert result["prefill_tokens_saved"] > 0
    # Tool calls: counted on both paths; in the decode loop a call costs the result and ">>".
    inline, continuation = result["tool_calls"]["inline"], result["tool_calls"]["continuation"]
    assert inline["calls"] > 0 and continuation["calls"] > 0, result["tool_calls"]
    assert inline["median_prefill_per_call"] <= inline["median_result_tokens"] + 2


def test_bench_speed_rejects_a_server_url() -> None:
    run = run_cli("bench", "speed", "--model", "http://127.0.0.1:9/v1")
    assert_clean_failure(run, 2, "GGUF path")


def test_bench_seqs_with_a_server_url_is_a_usage_error(tmp_path: Path) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text('{"question": "What is 2 + 2?", "answer": "4"}\n')
    out = tmp_path / "out.jsonl"
    run = run_cli("bench", "generic", "--data", str(data), "--seqs", "1", "--model", "http://127.0.0.1:9/v1", "--out", str(out), "-q")
    assert_clean_failure(run, 2, "n_seq_max")
    assert not out.exists()
