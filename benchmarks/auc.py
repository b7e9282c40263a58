"""The ROC AUC of a judge's scores, with a seeded 95 % bootstrap interval.

The AUC is the chance that a random good state scores above a random bad one, ties
counting half (the Mann-Whitney form). The interval resamples within each class from
a seeded generator, so a rerun gives the same interval. A row with fewer than
``MIN_CLASS`` states of either class has no AUC ("AUC n/a").

That pooled AUC also compares states of different questions, which a search never
does: it ranks the states of one question. A judge that values every state of an easy
question higher than every state of a hard one scores well pooled and guides no search.
``summarize_within`` counts only pairs of states of the same question at the same depth
(the states a search weighs against each other), and its interval resamples questions,
not states, because one question's states rise and fall together.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

MIN_CLASS = 10  # fewer states than this of either class: no AUC
MIN_QUESTIONS = 5  # fewer questions with states of both classes: no within-question AUC

Row = dict[str, Any]  # {"good", "bad", "auc", "low", "high"}


def auc(good: Sequence[float], bad: Sequence[float]) -> float | None:
    """P(a random good score > a random bad one), ties counting half; None if a class is empty.

    The Mann-Whitney form: the rank sum of the good scores among all, with tied scores
    sharing their average rank.
    """
    if not good or not bad:
        return None
    scores = sorted([(s, True) for s in good] + [(s, False) for s in bad], key=lambda p: p[0])
    rank_sum = 0.0
    i = 0
    while i < len(scores):
        j = i
        while j < len(scores) and scores[j][0] == scores[i][0]:
            j += 1
        average = (i + 1 + j) / 2  # ranks i+1 .. j share their mean
        rank_sum += average * sum(1 for _, is_good in scores[i:j] if is_good)
        i = j
    n_good, n_bad = len(good), len(bad)
    return (rank_sum - n_good * (n_good + 1) / 2) / (n_good * n_bad)


def bootstrap(good: Sequence[float], bad: Sequence[float], rng: random.Random, resamples: int = 1000) -> tuple[float, float]:
    """A 95 % percentile-bootstrap interval of ``auc``, resampling within each class."""
    if not good or not bad:
        raise ValueError("both classes need at least one score")
    aucs = sorted(
        auc(rng.choices(good, k=len(good)), rng.choices(bad, k=len(bad)))  # type: ignore[misc]
        for _ in range(resamples)
    )
    return aucs[int(0.025 * resamples)], aucs[min(resamples - 1, int(0.975 * resamples))]


def summarize(good: Sequence[float], bad: Sequence[float], *, seed: Any = 0, resamples: int = 1000) -> Row:
    """Class counts, AUC and interval; AUC n/a (None) below ``MIN_CLASS`` of either class."""
    row: Row = {"good": len(good), "bad": len(bad), "auc": None, "low": None, "high": None}
    if min(len(good), len(bad)) < MIN_CLASS:
        return row
    low, high = bootstrap(good, bad, random.Random(seed), resamples)
    row.update(auc=auc(good, bad), low=low, high=high)
    return row


def summarize_within(
    questions: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]], *, seed: Any = 0, resamples: int = 1000
) -> Row:
    """The AUC over pairs of states of one question and one stratum (a depth), from
    ``{question: [(good, bad), ...]}``; the interval resamples questions.

    Only strata with states of both classes have such pairs; ``good`` and ``bad`` count
    their states and ``questions`` the questions that have one. AUC n/a below
    ``MIN_CLASS`` states of either class or ``MIN_QUESTIONS`` questions.
    """
    tallies = []  # per question: pairs in order (ties half) and pairs, over its strata
    good = bad = 0
    for strata in questions.values():
        both = [(g, b) for g, b in strata if g and b]
        if both:
            won = sum(auc(g, b) * len(g) * len(b) for g, b in both)  # type: ignore[operator]
            tallies.append((won, sum(len(g) * len(b) for g, b in both)))
            good += sum(len(g) for g, _ in both)
            bad += sum(len(b) for _, b in both)
    row: Row = {"good": good, "bad": bad, "questions": len(tallies), "auc": None, "low": None, "high": None}
    if len(tallies) < MIN_QUESTIONS or min(good, bad) < MIN_CLASS:
        return row

    def ratio(sample: Sequence[tuple[float, int]]) -> float:
        return sum(won for won, _ in sample) / sum(pairs for _, pairs in sample)

    rng = random.Random(seed)
    aucs = sorted(ratio(rng.choices(tallies, k=len(tallies))) for _ in range(resamples))
    row.update(auc=ratio(tallies), low=aucs[int(0.025 * resamples)], high=aucs[min(resamples - 1, int(0.975 * resamples))])
    return row


def format_auc(row: Mapping[str, Any]) -> str:
    """"AUC 0.87 [0.80, 0.93]", or "AUC n/a" where a class had too few states."""
    if row.get("auc") is None:
        return "AUC n/a"
    return f"AUC {row['auc']:.2f} [{row['low']:.2f}, {row['high']:.2f}]"
