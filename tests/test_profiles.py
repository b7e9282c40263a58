"""Judge profiles: saving and loading them, a broken file, and when the judge is worth asking."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from deliberate import profiles
from deliberate.errors import DatasetError, UsageError
from deliberate.profiles import judge_worth_asking, load_profile, save_profile

SHA_A = "a" * 64
SHA_B = "b" * 64


def row(good: int, bad: int, auc: float | None, low: float | None = None, high: float | None = None) -> dict:
    return {"good": good, "bad": bad, "auc": auc, "low": low, "high": high}


def entry(overall: dict, depths: dict | None = None, measured: str = "2025-01-01T00:00:00+00:00") -> dict:
    return {"measured": measured, "overall": overall, "depths": depths or {}}


GOOD = entry(row(120, 80, 0.81, 0.75, 0.87), {"1": row(60, 40, 0.83, 0.75, 0.9), "2": row(60, 40, 0.79, 0.7, 0.88)})


def test_a_saved_profile_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    assert load_profile(SHA_A, "game24", path) is None  # no file yet
    assert save_profile(SHA_A, "game24", {"value": GOOD}, path) == path
    profile = load_profile(SHA_A, "game24", path)
    assert profile == {"model_sha256": SHA_A, "task": "game24", "evaluators": {"value": {**GOOD, "evaluator": "value"}}}
    assert load_profile(SHA_B, "game24", path) is None and load_profile(SHA_A, "math", path) is None
    assert json.loads(path.read_text())["format"] == profiles.FORMAT
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write leaves no temporary file


def test_saving_keeps_every_other_entry(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    save_profile(SHA_A, "game24", {"value": GOOD}, path)
    save_profile(SHA_B, "game24", {"value": GOOD, "vote": GOOD}, path)
    save_profile(SHA_A, "math", {"vote": GOOD}, path)
    save_profile(SHA_A, "game24", {"vote": GOOD}, path)  # adds vote; the earlier value stays
    newer = entry(row(30, 30, 0.52, 0.4, 0.64), measured="2025-02-01T00:00:00+00:00")
    save_profile(SHA_A, "game24", {"value": newer}, path)  # replaces value only
    a24 = load_profile(SHA_A, "game24", path)
    assert a24 is not None and set(a24["evaluators"]) == {"value", "vote"}
    assert a24["evaluators"]["value"]["overall"]["auc"] == 0.52 and a24["evaluators"]["vote"]["overall"]["auc"] == 0.81
    b24 = load_profile(SHA_B, "game24", path)
    assert b24 is not None and set(b24["evaluators"]) == {"value", "vote"}
    assert set(load_profile(SHA_A, "math", path)["evaluators"]) == {"vote"}  # type: ignore[index]


def test_saves_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    tasks = [f"task{i}" for i in range(12)]
    threads = [threading.Thread(target=save_profile, args=(SHA_A, t, {"value": GOOD}, path)) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(json.loads(path.read_text())["profiles"][SHA_A]) == set(tasks)


def test_where_the_file_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DELIBERATE_PROFILES", raising=False)
    monkeypatch.setenv("DELIBERATE_CACHE", str(tmp_path / "cache"))
    assert profiles.profiles_path() == tmp_path / "cache" / "judge-profiles.json"
    save_profile(SHA_A, "game24", {"value": GOOD})
    assert (tmp_path / "cache" / "judge-profiles.json").is_file()
    monkeypatch.setenv("DELIBERATE_PROFILES", str(tmp_path / "elsewhere.json"))
    assert profiles.profiles_path() == tmp_path / "elsewhere.json"
    assert load_profile(SHA_A, "game24") is None  # the environment's file, not the cache's
    save_profile(SHA_A, "game24", {"vote": GOOD})
    assert set(json.loads((tmp_path / "elsewhere.json").read_text())["profiles"][SHA_A]["game24"]) == {"vote"}


@pytest.mark.parametrize(
    "text, says",
    [
        ("{oops", "is not valid JSON (line 1)"),
        ('{"profiles": {}}', "expected format"),
        (json.dumps({"format": profiles.FORMAT, "profiles": {SHA_A: {"game24": {"value": {"measured": "t"}}}}}), "has no 'depths'"),
        (json.dumps({"format": profiles.FORMAT, "profiles": {SHA_A: {"game24": {"value": entry({"good": 1})}}}}), "overall row is malformed"),
        (json.dumps({"format": profiles.FORMAT, "profiles": {SHA_A: {"game24": {"guess": GOOD}}}}), "unknown evaluator"),
    ],
)
def test_a_broken_file_is_a_one_line_error_and_is_left_alone(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(DatasetError) as caught:
        load_profile(SHA_A, "game24", path)
    message = str(caught.value)
    assert says in message and str(path) in message and "\n" not in message
    with pytest.raises(DatasetError):
        save_profile(SHA_B, "game24", {"value": GOOD}, path)
    assert path.read_text() == text  # never overwritten


def test_a_malformed_entry_is_not_saved(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    save_profile(SHA_A, "game24", {"value": GOOD}, path)
    before = path.read_text()
    with pytest.raises(UsageError, match="row is malformed"):
        save_profile(SHA_A, "game24", {"value": entry(row(10, 10, 1.7, 0.2, 0.3))}, path)
    with pytest.raises(UsageError, match="unknown evaluator"):
        save_profile(SHA_A, "game24", {"none": GOOD}, path)
    with pytest.raises(UsageError, match="sha256"):
        save_profile("", "game24", {"value": GOOD}, path)
    assert path.read_text() == before


# -- is the judge worth asking? ------------------------------------------------------------------


def profile_of(value: dict | None = None, vote: dict | None = None) -> dict:
    evaluators = {k: v for k, v in (("value", value), ("vote", vote)) if v is not None}
    return {"model_sha256": SHA_A, "task": "game24", "evaluators": evaluators}


def test_no_profile_means_judge_as_today() -> None:
    assert judge_worth_asking(None, 1) == (None, "no judge profile for this model and task")
    worth, why = judge_worth_asking(profile_of(value=GOOD), 1, "vote")
    assert worth is None and "no vote measurement" in why


def test_a_depth_with_enough_states_decides_for_itself() -> None:
    mixed = entry(
        row(120, 90, 0.7, 0.62, 0.78),
        {"1": row(50, 40, 0.8, 0.7, 0.9), "2": row(40, 30, 0.53, 0.44, 0.61), "3": row(29, 60, 0.9, 0.8, 0.97)},
    )
    profile = profile_of(value=mixed)
    assert judge_worth_asking(profile, 1) == (True, "depth 1: AUC 0.80 [0.70, 0.90] lies above 0.5")
    assert judge_worth_asking(profile, 2) == (False, "depth 2: AUC 0.53 [0.44, 0.61] includes 0.5")
    # Depth 3 has only 29 good states: the overall AUC decides, not its own 0.9.
    worth, why = judge_worth_asking(profile, 3)
    assert worth is True and why.startswith("overall") and "0.70 [0.62, 0.78]" in why
    # A depth never measured falls back to the overall AUC too.
    assert judge_worth_asking(profile, 4)[0] is True


def test_a_judge_worse_than_chance_is_not_asked() -> None:
    backwards = entry(row(100, 100, 0.3, 0.22, 0.38), {"1": row(50, 50, 0.31, 0.2, 0.42)})
    worth, why = judge_worth_asking(profile_of(vote=backwards), 1, "vote")
    assert worth is False and why == "depth 1: AUC 0.31 [0.20, 0.42] lies below 0.5: worse than chance"
    worth, why = judge_worth_asking(profile_of(vote=backwards), 2, "vote")
    assert worth is False and why.startswith("overall") and "worse than chance" in why


def test_chance_overall_with_too_few_states_gives_no_verdict() -> None:
    scarce = entry(row(8, 40, None), {"1": row(8, 40, None)})
    worth, why = judge_worth_asking(profile_of(value=scarce), 1)
    assert worth is None and "AUC n/a" in why
    flat = entry(row(100, 100, 0.5, 0.45, 0.55))
    assert judge_worth_asking(profile_of(value=flat), 2) == (
        False, "overall (depth 2 had fewer than 30 states of a class): AUC 0.50 [0.45, 0.55] includes 0.5"
    )


def within_row(good: int, bad: int, questions: int, auc: float | None, low=None, high=None) -> dict:
    return {**row(good, bad, auc, low, high), "questions": questions}


def test_the_same_question_auc_decides_where_the_profile_has_it() -> None:
    # Pooled, the judge looks good; over pairs of one question it is at chance.
    measured = {**GOOD, "within": {"overall": within_row(100, 70, 18, 0.52, 0.41, 0.63),
                                   "depths": {"1": within_row(50, 35, 15, 0.7, 0.6, 0.8)}}}
    profile = profile_of(value=measured)
    assert judge_worth_asking(profile, 1) == (True, "depth 1: same-question AUC 0.70 [0.60, 0.80] lies above 0.5")
    assert judge_worth_asking(profile, 2) == (
        False, "overall (depth 2 had fewer than 30 states of a class): same-question AUC 0.52 [0.41, 0.63] includes 0.5"
    )
    # Too few questions for the same-question AUC: the pooled rows decide, no more loosely.
    scarce = {"within": {"overall": within_row(8, 20, 3, None), "depths": {}}}
    worth, why = judge_worth_asking(profile_of(value={**GOOD, **scarce}), 1)
    assert worth is True and why == (
        "depth 1: AUC, pooled (too few questions for the same-question AUC) 0.83 [0.75, 0.90] lies above 0.5"
    )
    flat = entry(row(100, 100, 0.56, 0.47, 0.65))
    worth, why = judge_worth_asking(profile_of(value={**flat, **scarce}), 1)
    assert worth is False and why.endswith("0.56 [0.47, 0.65] includes 0.5")
    none_at_all = entry(row(8, 100, None))
    worth, why = judge_worth_asking(profile_of(value={**none_at_all, **scarce}), 1)
    assert worth is None and "AUC n/a (8 good, 100 bad states)" in why


def test_a_malformed_same_question_row_is_not_saved(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    for within, says in (
        ({"overall": row(10, 10, 0.5, 0.4, 0.6), "depths": {}}, "same-question overall row is malformed"),  # no questions
        ({"overall": within_row(10, 10, 5, 0.5, 0.4, 0.6)}, "'within' is malformed"),
        ({"overall": within_row(10, 10, -1, 0.5, 0.4, 0.6), "depths": {}}, "same-question overall row is malformed"),
    ):
        with pytest.raises(UsageError, match=says):
            save_profile(SHA_A, "game24", {"value": {**GOOD, "within": within}}, path)
    assert not path.exists()


def test_the_profile_a_bench_run_saves_is_read_back_for_the_search(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    save_profile(SHA_A, "game24", {"value": entry(row(60, 60, 0.55, 0.46, 0.64), {"2": row(35, 31, 0.9, 0.82, 0.96)})}, path)
    profile = load_profile(SHA_A, "game24", path)
    assert judge_worth_asking(profile, 2) == (True, "depth 2: AUC 0.90 [0.82, 0.96] lies above 0.5")
    assert judge_worth_asking(profile, 1)[0] is False
