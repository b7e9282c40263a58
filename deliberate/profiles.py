"""Judge profiles: how well a model's judge separated good states from bad ones, as
``deliberate bench judge --save`` measured it, and whether it is worth asking.

One JSON file holds every profile, keyed by the model file's sha256 and the task:

    {"format": "deliberate-judge-profiles/1",
     "profiles": {"<sha256>": {"game24": {"value": ENTRY, "vote": ENTRY}}}}

    ENTRY = {"evaluator": "value", "measured": "2025-01-01T12:00:00+00:00",
             "overall": ROW, "depths": {"1": ROW, "2": ROW},
             "within": {"overall": ROW, "depths": {"1": ROW, "2": ROW}}, ...}
    ROW   = {"good": 120, "bad": 80, "auc": 0.53, "low": 0.44, "high": 0.61}

``good`` and ``bad`` count the states of each class; ``auc`` (with its 95 % interval
``low`` to ``high``) is None where a class had too few states. ``within`` holds the
AUC over pairs of states of one question (its rows also count ``questions``), which
is what decides where it is measured; elsewhere (and in a profile saved before it
existed) the pooled rows decide. The file is
``$DELIBERATE_PROFILES`` if set, else ``judge-profiles.json`` in deliberate's cache
folder (``~/.cache/deliberate`` unless ``$DELIBERATE_CACHE`` or ``$XDG_CACHE_HOME`` say
otherwise). It is rewritten atomically under a lock, so saving one profile never loses
another; a file that is not a profile file is a one-line ``DatasetError``, like a
malformed results file.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from deliberate.errors import DatasetError, UsageError

FORMAT = "deliberate-judge-profiles/1"
ENV_VAR = "DELIBERATE_PROFILES"
FILE_NAME = "judge-profiles.json"
EVALUATORS = ("value", "vote")
MIN_DEPTH_STATES = 30  # states of each class a depth needs before its own AUC decides
_ROW_KEYS = ("good", "bad", "auc", "low", "high")


def profiles_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$DELIBERATE_PROFILES``, else ``judge-profiles.json`` in the cache folder."""
    from deliberate.models import cache_dir

    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return cache_dir() / FILE_NAME


def read_profiles(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The whole profile file (an empty one if it does not exist yet), checked."""
    source = profiles_path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"format": FORMAT, "profiles": {}}
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read judge profile file {source}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise DatasetError(f"judge profile file {source} is not valid JSON{where}: fix or delete it") from None
    problem = _problem(data)
    if problem:
        raise DatasetError(f"judge profile file {source} is not a deliberate judge profile file ({problem}): fix or delete it")
    return data


def load_profile(model_sha256: str, task: str, path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The profile of ``task`` on the model with this sha256, or None if none was saved.

    ``{"model_sha256", "task", "evaluators": {"value": ENTRY, "vote": ENTRY}}``, with
    only the evaluators that were measured.
    """
    tasks = read_profiles(path)["profiles"].get(model_sha256) or {}
    entries = tasks.get(task)
    if not entries:
        return None
    return {"model_sha256": model_sha256, "task": task, "evaluators": copy.deepcopy(entries)}


def save_profile(
    model_sha256: str,
    task: str,
    entries: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write (or replace) the entries of ``task`` on this model, per evaluator; every
    other model's, task's and evaluator's entry is kept. Returns the file's path."""
    from deliberate.trace import write_text_atomic

    if not isinstance(model_sha256, str) or not model_sha256:
        raise UsageError("a judge profile needs the model file's sha256")
    new = {}
    for evaluator, entry in entries.items():
        entry = {**copy.deepcopy(dict(entry)), "evaluator": evaluator}
        problem = _entry_problem(evaluator, entry)
        if problem:
            raise UsageError(f"cannot save the judge profile: {problem}")
        new[evaluator] = entry
    target = profiles_path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot write judge profile file {target}: {exc.strerror or exc}") from exc
    with _locked(target):
        data = read_profiles(target)
        data["profiles"].setdefault(model_sha256, {}).setdefault(task, {}).update(new)
        write_text_atomic(target, json.dumps(data, indent=1, ensure_ascii=False) + "\n", what="judge profile file ")
    return target


def judge_worth_asking(profile: Mapping[str, Any] | None, depth: int, evaluator: str = "value") -> tuple[bool | None, str]:
    """Whether the judge is worth asking about a state at ``depth``, and why.

    None when there is nothing to go by (no profile, no measurement of this evaluator,
    or too few states for any AUC): the caller judges as it always has. Otherwise the
    same-question AUC decides (a search only ever compares states of one question);
    the pooled one decides where that is n/a (too few questions, or a profile saved
    before it was measured), since it can only be as strict. Of either, the depth's
    own row decides where that depth had at least ``MIN_DEPTH_STATES`` states of each
    class, else the overall one. The judge is worth asking only where the 95 % interval
    lies wholly above 0.5: one that includes chance is not, and neither is one worse
    than chance.
    """
    if profile is None:
        return None, "no judge profile for this model and task"
    entry = (profile.get("evaluators") or {}).get(evaluator)
    if entry is None:
        return None, f"the judge profile has no {evaluator} measurement"
    within = entry.get("within")
    row, where = _deciding_row(within, depth) if within else (None, "")
    kind = "same-question AUC"
    if row is None or row["auc"] is None:
        row, where = _deciding_row(entry, depth)
        kind = "AUC, pooled (too few questions for the same-question AUC)" if within else "AUC"
    if row["auc"] is None:
        return None, f"{where}: AUC n/a ({row['good']} good, {row['bad']} bad states)"
    measured = f"{where}: {kind} {row['auc']:.2f} [{row['low']:.2f}, {row['high']:.2f}]"
    if row["low"] > 0.5:
        return True, f"{measured} lies above 0.5"
    if row["high"] < 0.5:
        return False, f"{measured} lies below 0.5: worse than chance"
    return False, f"{measured} includes 0.5"


def _deciding_row(rows: Mapping[str, Any], depth: int) -> tuple[Mapping[str, Any], str]:
    """The depth's own row where it had ``MIN_DEPTH_STATES`` of each class, else the overall one."""
    row = (rows.get("depths") or {}).get(str(depth))
    if row is not None and row.get("auc") is not None and min(row["good"], row["bad"]) >= MIN_DEPTH_STATES:
        return row, f"depth {depth}"
    return rows["overall"], f"overall (depth {depth} had fewer than {MIN_DEPTH_STATES} states of a class)"


# -- checks ------------------------------------------------------------------------------------


def _problem(data: Any) -> str | None:
    """What makes ``data`` not a profile file, or None."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"expected format {FORMAT!r}"
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        return "'profiles' is not an object"
    for sha, tasks in profiles.items():
        if not isinstance(tasks, dict):
            return f"model {sha[:12]} is not an object"
        for task, entries in tasks.items():
            if not isinstance(entries, dict):
                return f"{task} of model {sha[:12]} is not an object"
            for evaluator, entry in entries.items():
                problem = _entry_problem(evaluator, entry)
                if problem:
                    return f"{task} of model {sha[:12]}: {problem}"
    return None


def _entry_problem(evaluator: str, entry: Any) -> str | None:
    if evaluator not in EVALUATORS:
        return f"unknown evaluator {evaluator!r}"
    if not isinstance(entry, dict):
        return f"the {evaluator} entry is not an object"
    if not isinstance(entry.get("measured"), str):
        return f"the {evaluator} entry has no 'measured' time"
    depths = entry.get("depths")
    if not isinstance(depths, dict):
        return f"the {evaluator} entry has no 'depths'"
    for name, row in _named_rows(entry):
        if not _row_ok(row):
            return f"the {evaluator} entry's {name} row is malformed"
    within = entry.get("within")
    if within is None:
        return None  # saved before the same-question AUC was measured
    if not isinstance(within, dict) or not isinstance(within.get("depths"), dict):
        return f"the {evaluator} entry's 'within' is malformed"
    for name, row in _named_rows(within):
        if not _row_ok(row) or not _count_ok(row.get("questions")):
            return f"the {evaluator} entry's same-question {name} row is malformed"
    return None


def _named_rows(rows: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """("overall", row), then ("depth N", row) for each depth of an entry or its ``within``."""
    return [("overall", rows.get("overall")), *((f"depth {d}", r) for d, r in rows["depths"].items())]


def _row_ok(row: Any) -> bool:
    if not isinstance(row, dict) or any(key not in row for key in _ROW_KEYS):
        return False
    counts = all(_count_ok(row[k]) for k in ("good", "bad"))
    numbers = [row[k] for k in ("auc", "low", "high")]
    if all(n is None for n in numbers):
        return counts
    return counts and all(isinstance(n, (int, float)) and not isinstance(n, bool) and 0 <= n <= 1 for n in numbers)


def _count_ok(count: Any) -> bool:
    return isinstance(count, int) and not isinstance(count, bool) and count >= 0


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``target`` while it is read and rewritten, so two
    saves at once cannot drop each other's entries (where the platform has flock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    lock = target.with_name(f".{target.name}.lock")
    try:
        handle = lock.open("a")
    except OSError as exc:
        raise DatasetError(f"cannot write judge profile file {target}: {exc.strerror or exc}") from exc
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
