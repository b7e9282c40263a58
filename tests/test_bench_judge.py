"""``deliberate bench judge``: the AUC and its interval, the Game of 24 solver, and whole
runs on scripted judges (one that knows the game, one that knows nothing)."""

from __future__ import annotations

import io
import itertools
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from conftest import Game24Responder, WatchedClock, can_make_24, game24_scorer, think_guarded, wall_clock_limit
from deliberate.backends.scripted import ScriptedBackend, uniform_scores
from deliberate.benchmarks import auc, ground_truth, judge, judge_scores, judge_states
from deliberate.benchmarks.datasets import load
from deliberate.cli import app
from deliberate.clock import Deadline
from deliberate.errors import UsageError
from deliberate.profiles import judge_worth_asking, load_profile
from deliberate.search import vote_value
from deliberate.tasks import make_task

# Puzzles with many ways to 24 and one with none: their searches reach states of both
# kinds (about 36 solvable and 61 unsolvable ones in all).
PUZZLES = ["1 2 3 4", "2 3 4 6", "1 1 1 1", "3 4 6 8", "2 4 6 8", "1 3 4 6"]


def backend(scores=game24_scorer) -> ScriptedBackend:
    return ScriptedBackend(Game24Responder(error_rate=0.2, prefer_solvable=True), scores=scores, clock=WatchedClock())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "24.csv"
    path.write_text("Rank,Puzzles\n" + "".join(f"{i},{p}\n" for i, p in enumerate(PUZZLES, 1)))
    return path


# -- the AUC -------------------------------------------------------------------------------------


def test_auc_of_hand_computed_cases() -> None:
    assert auc.auc([0.9, 0.8, 0.7], [0.1, 0.2]) == 1.0  # every good state above every bad one
    assert auc.auc([0.1, 0.2], [0.9, 0.8, 0.7]) == 0.0  # reversed
    assert auc.auc([0.5, 0.5, 0.5], [0.5, 0.5]) == 0.5  # all tied: half each
    # 0.9 beats all three bad (3), 0.6 beats all three (3), 0.4 loses to 0.5, ties 0.4 and
    # beats 0.1 (1.5): 7.5 of 9 pairs.
    assert auc.auc([0.9, 0.6, 0.4], [0.5, 0.4, 0.1]) == pytest.approx(7.5 / 9)
    assert auc.auc([], [0.1]) is None and auc.auc([0.1], []) is None


def test_auc_is_the_share_of_pairs_in_order() -> None:
    rng = random.Random(3)
    for _ in range(30):
        good = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(rng.randint(1, 15))]
        bad = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(rng.randint(1, 15))]
        pairs = [1.0 if g > b else 0.5 if g == b else 0.0 for g, b in itertools.product(good, bad)]
        assert auc.auc(good, bad) == pytest.approx(sum(pairs) / len(pairs))


def test_the_bootstrap_interval_holds_the_estimate_and_is_seeded() -> None:
    rng = random.Random(0)
    good = [rng.gauss(0.6, 0.2) for _ in range(40)]
    bad = [rng.gauss(0.45, 0.2) for _ in range(30)]
    point = auc.auc(good, bad)
    low, high = auc.bootstrap(good, bad, random.Random(7), 1000)
    assert 0.0 <= low < point < high <= 1.0
    assert (low, high) == auc.bootstrap(good, bad, random.Random(7), 1000)
    assert (low, high) != auc.bootstrap(good, bad, random.Random(8), 1000)
    row = auc.summarize(good, bad, seed="x", resamples=500)
    assert row == auc.summarize(good, bad, seed="x", resamples=500)
    assert row["good"] == 40 and row["bad"] == 30 and row["low"] <= row["auc"] == point <= row["high"]
    # Perfect separation stays perfect in every resample.
    assert auc.bootstrap([0.9] * 12, [0.1] * 12, random.Random(0), 200) == (1.0, 1.0)


def test_auc_is_na_below_ten_states_of_a_class() -> None:
    scarce = auc.summarize([0.9] * 9, [0.1] * 50)
    assert scarce == {"good": 9, "bad": 50, "auc": None, "low": None, "high": None}
    assert auc.format_auc(scarce) == "AUC n/a"
    enough = auc.summarize([0.9] * 10, [0.1] * 10)
    assert enough["auc"] == 1.0 and auc.format_auc(enough) == "AUC 1.00 [1.00, 1.00]"


def test_the_same_question_auc_counts_only_pairs_of_one_question_and_depth() -> None:
    questions = {  # each question's (good, bad) values at each depth
        "a": [([0.9, 0.8], [0.1] * 5)],  # 10 pairs, all in order
        "b": [([0.2], [0.1, 0.3])],  # 2 pairs, one in order
        "c": [([0.5] * 3, [0.5] * 3)],  # 9 ties: 4.5
        "d": [([0.7] * 2, [0.6] * 3)],  # 6 in order
        # 6 in order at one depth; none at the other depth, where every state is good,
        # and none across the depths, though 0.1 < 0.95 would have been one
        "e": [([0.4] * 2, [0.1] * 3), ([0.95], [])],
        "f": [([], [0.0] * 9)],  # no good state: no pair, not counted
    }
    row = auc.summarize_within(questions, seed=1, resamples=500)
    assert row["auc"] == pytest.approx(27.5 / 33)
    assert (row["good"], row["bad"], row["questions"]) == (10, 16, 5)
    assert row["low"] <= row["auc"] <= row["high"] and row == auc.summarize_within(questions, seed=1, resamples=500)
    # Below five questions with both classes, or ten states of a class: n/a.
    assert auc.summarize_within({k: questions[k] for k in "abcd"})["auc"] is None
    assert auc.summarize_within({q: [([0.9], [0.1] * 4)] for q in "abcdefgh"})["auc"] is None  # 8 good states


def test_states_of_different_depths_are_never_paired() -> None:
    # At each depth the judge is at chance; deeper states are valued lower and are
    # more often bad. Pairing across depths would credit the judge with that.
    questions = {q: [([0.8] * 3, [0.8] * 1), ([0.2] * 1, [0.2] * 3)] for q in range(6)}
    row = auc.summarize_within(questions, seed=0, resamples=200)
    assert row["auc"] == row["low"] == row["high"] == 0.5 and row["questions"] == 6


def test_a_judge_that_only_tells_easy_questions_from_hard_ones_is_at_chance() -> None:
    # Every state of an easy question is valued 0.8, of a hard one 0.2, whatever it is;
    # easy questions have more good states. Pooled, that looks like separation.
    rng = random.Random(5)
    questions = {}
    for q in range(12):
        easy = q % 2 == 0
        value = 0.8 if easy else 0.2
        questions[q] = [([value] * (6 if easy else 1), [value] * (2 if easy else 8))]
    good = [v for [(g, _)] in questions.values() for v in g]
    bad = [v for [(_, b)] in questions.values() for v in b]
    pooled = auc.summarize(good, bad, seed=rng.random(), resamples=300)
    within = auc.summarize_within(questions, seed=0, resamples=300)
    assert pooled["auc"] > 0.7 and pooled["low"] > 0.5
    assert within["auc"] == within["low"] == within["high"] == 0.5


# -- the ground truth ------------------------------------------------------------------------------


def test_the_solver_on_known_states() -> None:
    assert ground_truth.solvable(["4", "6"]) and ground_truth.solvable(["6", "6", "6", "6"]) and ground_truth.solvable(["24"])
    assert not ground_truth.solvable(["1", "2"]) and not ground_truth.solvable(["1", "1", "1", "1"]) and not ground_truth.solvable(["23"])
    assert ground_truth.solvable(["3/2", "16"])  # fractions left by an earlier division
    assert ground_truth.solvable(["1", "5", "5", "5"])  # 5 * (5 - 1/5): only through a fraction
    assert ground_truth.solvable(["3", "3", "8", "8"])  # 8 / (3 - 8/3)
    assert not ground_truth.solvable(["-2", "1"])
    assert ground_truth.solvable(["-4", "28"])  # a negative number left by a subtraction


def test_the_solver_agrees_with_the_test_oracle() -> None:
    rng = random.Random(1)
    for _ in range(150):
        numbers = [str(rng.randint(1, 13)) for _ in range(rng.choice([2, 3, 4]))]
        assert ground_truth.solvable(numbers) == can_make_24(numbers), numbers


# -- judging as the search judges --------------------------------------------------------------------


def test_values_are_the_values_the_search_gives(fake_clock) -> None:
    scripted = ScriptedBackend(Game24Responder(), scores=game24_scorer, clock=fake_clock)
    result = think_guarded("Use 4 5 6 10 to make 24.", scripted, think=3.0, evaluator="value")
    task = make_task("game24")
    graph = result.graph
    judged = [n for n in graph if any(v["source"] == "value" for v in graph[n]["values"])]
    assert len(judged) >= 5
    reached = [judge_states.Reached(graph[n]["key"], graph.depth(n), "1", graph.question, graph[n]["state"], None) for n in judged]
    values = judge_scores.score_values(scripted, task, reached, Deadline(fake_clock), batch=4)
    for node, value in zip(judged, values):
        searched = next(v["value"] for v in graph[node]["values"] if v["source"] == "value")
        assert value == pytest.approx(searched)


def test_votes_are_vote_values_of_each_label_share() -> None:
    shares = {" A": 0.5, " B": 0.3, " C": 0.2}

    def scores(prompt, labels):
        assert "Candidate steps:\nA: 4 + 6 = 10 (left: 10 13)\n" in prompt
        return {label: math.log(shares[label]) for label in labels}

    group = judge_states.Siblings(
        "Use 4 6 13 to make 24.", {"steps": [], "left": ["4", "6", "13"], "exprs": ["4", "6", "13"]},
        ["10 13", "4 19", "6 17"],
        ["4 + 6 = 10 (left: 10 13)", "6 + 13 = 19 (left: 4 19)", "4 + 13 = 17 (left: 6 17)"],
        members={"10 13", "6 17"},  # "4 19" was first reached elsewhere: it is a candidate, not a member
    )
    lone = judge_states.Siblings("q", {"left": ["1", "2"]}, ["3"], ["1 + 2 = 3 (left: 3)"], members={"3"})
    scripted = ScriptedBackend(scores=scores, clock=WatchedClock())
    votes = judge_scores.score_votes(scripted, make_task("game24"), [group, lone], Deadline(scripted.clock))
    assert votes == {"10 13": pytest.approx(vote_value(0.5, 3)), "6 17": pytest.approx(vote_value(0.2, 3))}
    assert len([kind for kind, _ in scripted.history if kind == "score"]) == 1  # a lone child gets no vote


# -- whole runs ------------------------------------------------------------------------------------------


def test_a_judge_that_knows_the_game_separates_perfectly(data: Path) -> None:
    scripted = backend()
    items = load("game24", data)
    with wall_clock_limit(30):
        result = judge.measure("game24", data, model=scripted, states=90, resamples=200)
    value = result["evaluators"]["value"]
    assert result["states"] == len(result["reached"]) == value["scored"]
    assert len({r["key"] for r in result["reached"]}) == result["states"]  # each state once
    overall = value["overall"]
    assert overall["good"] >= 10 and overall["bad"] >= 10
    assert overall["good"] + overall["bad"] == result["states"]
    assert overall["good"] == sum(ground_truth.solvable(r["key"].split()) for r in result["reached"])
    assert overall["auc"] == 1.0 and overall["low"] == 1.0
    assert set(value["depths"]) == {str(r["depth"]) for r in result["reached"]} <= {"1", "2"}
    assert sum(row["good"] + row["bad"] for row in value["depths"].values()) == result["states"]
    vote = result["evaluators"]["vote"]["overall"]
    assert vote["auc"] is not None and vote["auc"] > 0.6  # votes go to the solvable sibling
    assert not scripted.closed  # a backend passed in belongs to the caller
    assert 1 <= result["items"] <= len(items)
    # Collecting never asked the judge: every value prompt is the measurement's own.
    value_prompts = [p for kind, p in scripted.history if kind == "score" and "Judgement:" in p]
    assert len(value_prompts) == result["states"]


def test_collection_stops_once_enough_states_are_found(data: Path) -> None:
    scripted = backend()
    with wall_clock_limit(30):
        result = judge.measure("game24", data, model=scripted, states=12, evaluators=["value"], resamples=200)
    assert result["states"] == 12 and result["items"] == 1
    assert set(result["evaluators"]) == {"value"}
    lefts = {p.split("Input: ")[-1].split("\n")[0] for kind, p in scripted.history if kind == "generate"}
    assert {left for left in lefts if len(left.split()) == 4} == {"1 2 3 4"}  # no later item ran


def invoke(args: list[str], monkeypatch: pytest.MonkeyPatch, made: list[ScriptedBackend], scores=game24_scorer):
    def fake_open(model=None, **_):
        made.append(backend(scores))
        return made[-1]

    # The CLI takes no backend object, so the backend factory is swapped for the scripted one.
    monkeypatch.setattr("deliberate.backends.open_backend", fake_open)
    with wall_clock_limit(30):
        return CliRunner().invoke(app, ["bench", "judge", *args])


def test_the_cli_reports_and_writes_the_summary(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results" / "judge.json"  # its folder is made
    made: list[ScriptedBackend] = []
    run = invoke(["game24", "--data", str(data), "--states", "60", "--resamples", "200", "--out", str(out)], monkeypatch, made)
    assert run.exit_code == 0, run.output
    result = json.loads(out.read_text())
    assert result["states"] == 60 and result["evaluators"]["value"]["overall"]["auc"] == 1.0
    assert made and made[0].closed  # the one backend it opened is closed at the end
    assert "judge separation" in run.stderr and "1.00 [1.00, 1.00]" in run.stderr
    assert "solvable" in run.stderr and f"wrote {out}" in run.stderr
    counts = result["evaluators"]["value"]["overall"]
    cells = [line.replace("│", " ").replace("|", " ").split() for line in run.stderr.splitlines()]
    [row] = [words for words in cells if words[:2] == ["value", "all"]]
    assert row[2:4] == [str(counts["good"]), str(counts["bad"])]  # the class counts of the row
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temporary file left


def test_a_judge_that_knows_nothing_scores_one_half(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "judge.json"
    made: list[ScriptedBackend] = []
    args = ["game24", "--data", str(data), "--states", "60", "--resamples", "200", "--out", str(out)]
    run = invoke(args, monkeypatch, made, scores=uniform_scores)
    assert run.exit_code == 0, run.output
    result = json.loads(out.read_text())
    for name in ("value", "vote"):
        overall = result["evaluators"][name]["overall"]
        assert overall["auc"] == 0.5 and overall["low"] == overall["high"] == 0.5, name
    assert "0.50 [0.50, 0.50]" in run.stderr


def test_too_few_states_of_a_class_print_auc_na(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "judge.json"
    run = invoke(["game24", "--data", str(data), "--states", "12", "--evaluator", "value", "--out", str(out)], monkeypatch, [])
    assert run.exit_code == 0, run.output
    overall = json.loads(out.read_text())["evaluators"]["value"]["overall"]
    assert min(overall["good"], overall["bad"]) < 10 and overall["auc"] is None
    assert "AUC n/a" in run.stderr


def test_save_needs_a_model_file_and_refuses_before_searching(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIBERATE_PROFILES", str(tmp_path / "profiles.json"))
    made: list[ScriptedBackend] = []
    run = invoke(["game24", "--data", str(data), "--save", "--out", str(tmp_path / "j.json")], monkeypatch, made)
    assert isinstance(run.exception, UsageError) and run.exception.exit_code == 2
    assert "--save needs a local GGUF model" in str(run.exception) and "\n" not in str(run.exception)
    assert made[0].respond.calls == 0 and made[0].closed  # no search ran
    assert not (tmp_path / "profiles.json").exists() and not (tmp_path / "j.json").exists()


def test_save_writes_a_profile_the_search_can_read(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF fake weights")
    monkeypatch.setenv("DELIBERATE_CACHE", str(tmp_path / "cache"))  # model_hash remembers hashes there
    monkeypatch.setenv("DELIBERATE_PROFILES", str(tmp_path / "profiles.json"))
    made: list[ScriptedBackend] = []

    def with_file(model=None, **_):
        made.append(backend())
        made[-1].model = SimpleNamespace(path=gguf)  # as a llama.cpp backend names its file
        return made[-1]

    monkeypatch.setattr("deliberate.backends.open_backend", with_file)
    args = ["bench", "judge", "game24", "--data", str(data), "--states", "90", "--resamples", "200",
            "--evaluator", "value", "--out", str(tmp_path / "j.json"), "--save"]
    with wall_clock_limit(30):
        run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    profile = load_profile(sha, "game24")
    assert profile is not None and set(profile["evaluators"]) == {"value"}
    entry = profile["evaluators"]["value"]
    result = json.loads((tmp_path / "j.json").read_text())
    assert result["model"] == "tiny.gguf" and result["model_sha256"] == sha
    assert entry["overall"] == result["evaluators"]["value"]["overall"] and entry["measured"] == result["measured"]
    assert entry["depths"] == result["evaluators"]["value"]["depths"]
    assert entry["within"] == result["evaluators"]["value"]["within"] and entry["within"]["overall"]["questions"] == 5
    worth, why = judge_worth_asking(profile, 1)
    assert worth is True and "same-question AUC 1.00 [1.00, 1.00] lies above 0.5" in why
    assert "saved the judge profile" in run.stderr


def test_other_tasks_and_bad_evaluators_are_refused(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[ScriptedBackend] = []
    run = invoke(["math500", "--data", str(data), "--out", str(tmp_path / "j.json")], monkeypatch, made)
    assert isinstance(run.exception, UsageError) and "bench judge supports game24 and gsm8k" in str(run.exception)
    run = invoke(["game24", "--data", str(data), "--evaluator", "none", "--out", str(tmp_path / "j.json")], monkeypatch, made)
    assert isinstance(run.exception, UsageError) and "value, vote or both" in str(run.exception)
    with pytest.raises(UsageError, match="unknown strategy"):
        judge.measure("game24", data, model=backend(), strategy="nope")
    assert made == []  # nothing was opened


def test_gsm8k_states_are_labelled_by_rollouts_to_the_gold_answer(fake_clock) -> None:
    """A state is good when one of its sampled continuations reaches the gold answer."""
    from deliberate.benchmarks.datasets import Item

    question = "Natalia sold 48 clips in April and half as many in May. How many in all?"
    task = make_task("math", tools=False)  # continuations through the calculator: tests/test_tools.py

    def respond(prompt: str, request, seed: int) -> str:
        if "Step: May is 48 / 2" in prompt:  # on the right track: half the rollouts finish it
            return "Step: 48 + 24 = <<48+24=72>>72.\nAnswer: 72\n" if seed % 2 else "Answer: 70\n"
        return "Step: 48 * 2 = <<48*2=96>>96.\nAnswer: 96\n"

    scripted = ScriptedBackend(respond, clock=fake_clock)
    right = {"steps": ["May is 48 / 2 = <<48/2=24>>24 clips."], "answer": None}
    wrong = {"steps": ["May is 48 * 2 = <<48*2=96>>96 clips."], "answer": None}
    reached = [judge_states.Reached(f"k{i}", 1, "test:1", question, state, None) for i, state in enumerate([right, wrong, right])]
    items = {"test:1": Item("test:1", question, "72", "math")}
    ground_truth.label_by_rollouts(scripted, task, "gsm8k", reached, items, rollouts=4, batch=2)
    assert [r.good for r in reached] == [True, False, True]
    prompts = [p for kind, p in scripted.history if kind == "generate"]
    assert len(prompts) >= 2  # batched: two calls for three states, each asking 4 rollouts (more with tool rounds)
    with pytest.raises(UsageError, match="--rollouts"):
        judge.measure("gsm8k", "unused", model=scripted, rollouts=0)


@pytest.mark.parametrize("classes", [("solvable", "unsolvable"), ("reaches the gold answer", "does not")])
def test_the_table_fits_an_80_column_terminal_without_cutting_a_figure(data: Path, classes) -> None:
    from rich.console import Console

    from deliberate.benchmarks import judge_report

    with wall_clock_limit(30):
        result = judge.measure("game24", data, model=backend(), states=90, resamples=200)
    result["classes"] = list(classes)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(judge_report.render(result))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text  # nothing truncated
    overall = result["evaluators"]["vote"]["overall"]
    assert f"{overall['auc']:.2f} [{overall['low']:.2f}, {overall['high']:.2f}]" in text
