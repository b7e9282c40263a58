"""A soak test: many short solves on one loaded model, watching for leaks.

    python -m deliberate.benchmarks.soak --solves 200 --think 0.5

Each solve thinks for ``--think`` on a question from a fixed rotation (Game of 24
puzzles and free-form questions) with the next strategy in the registry. After every
solve the backend must hold no sequence ids. The process's resident memory is taken
after ``--warmup`` solves, once the llama.cpp buffers and caches have reached their
size, and again at the end; growth beyond ``--max-growth`` (10 %) counts as a leak.
The exit status is 1 on any leak or failed solve, else 0.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUESTIONS = [
    "Use 4 9 10 13 to make 24.",
    "Use 1 1 5 13 to make 24.",  # no solution: the search runs to its deadline
    "What is 17 * 3?",
    "Use 2 3 4 6 to make 24.",
    "Use 3 3 8 8 to make 24.",
    "Anna has 5 apples and buys 7 more. How many does she have?",
    "Use 1 2 3 4 to make 24.",
]


@dataclass
class SoakReport:
    solves: int = 0
    warmup_rss: int = 0  # bytes, after the warm-up solves
    final_rss: int = 0  # bytes, after the last solve
    max_live: int = 0  # the most sequence ids held after any solve (0 when nothing leaks)
    answers: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def growth(self) -> float:
        """Resident memory growth from the warm-up to the end, as a fraction."""
        return (self.final_rss - self.warmup_rss) / self.warmup_rss if self.warmup_rss else 0.0

    def ok(self, max_growth: float = 0.10) -> bool:
        return not self.failures and self.max_live == 0 and self.growth <= max_growth


def rss() -> int:
    """This process's resident memory in bytes, after a garbage collection."""
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def live_sequences(backend: Any) -> int:
    # Only the llama.cpp backend holds sequence ids; others count as holding none.
    count = getattr(backend, "live_sequences", None)
    return count() if count is not None else 0


def soak(
    backend: Any,
    *,
    solves: int = 200,
    think: float = 0.5,
    warmup: int = 5,
    on_solve: Callable[[int, Any, int], None] | None = None,
) -> SoakReport:
    """Run ``solves`` short solves on ``backend``; ``on_solve(i, result, live)`` sees each."""
    from deliberate import strategies
    from deliberate.api import think as run_think
    from deliberate.errors import DeliberateError

    names = strategies.names()
    report = SoakReport()
    started = time.perf_counter()
    report.warmup_rss = rss()  # replaced after the warm-up, when there is one
    for i in range(solves):
        question = QUESTIONS[i % len(QUESTIONS)]
        strategy = names[i % len(names)]
        result = None
        try:
            result = run_think(question, strategy=strategy, model=backend, think=think, seed=i)
            report.answers += result.answer is not None
        except DeliberateError as error:
            report.failures.append(f"solve {i} ({strategy}, {question!r}): {error}")
        live = live_sequences(backend)
        report.max_live = max(report.max_live, live)
        report.solves += 1
        if on_solve is not None:
            on_solve(i, result, live)
        del result
        if i + 1 == warmup:
            report.warmup_rss = rss()
    report.final_rss = rss()
    report.seconds = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deliberate.benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--solves", type=int, default=200, help="solves to run [200]")
    parser.add_argument("--think", type=float, default=0.5, help="seconds of thinking per solve [0.5]")
    parser.add_argument("--warmup", type=int, default=5, help="solves before the baseline memory reading [5]")
    parser.add_argument("--max-growth", type=float, default=0.10, help="allowed memory growth after warm-up [0.10]")
    parser.add_argument("--model", default=None, help="GGUF path or server URL [the embedded model]")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads [physical cores]")
    parser.add_argument("--quiet", action="store_true", help="no line per solve")
    args = parser.parse_args(argv)
    if args.solves <= args.warmup:
        parser.error("--solves must be larger than --warmup")

    from deliberate.backends import open_backend
    from deliberate.errors import DeliberateError

    try:
        backend = open_backend(args.model, **({"n_threads": args.threads} if args.threads else {}))
    except DeliberateError as error:
        print(f"soak: error: {error}", file=sys.stderr)
        return 1

    def progress(i: int, result: Any, live: int) -> None:
        if not args.quiet:
            answer = "-" if result is None or result.answer is None else result.answer
            print(f"solve {i + 1:4d}  live ids {live}  rss {rss() / 2**20:7.1f} MiB  {answer}", file=sys.stderr)

    try:
        report = soak(backend, solves=args.solves, think=args.think, warmup=args.warmup, on_solve=progress)
    finally:
        backend.close()
    mib = 2**20
    print(f"solves: {report.solves} in {report.seconds:.1f}s ({report.answers} answered)")
    print(f"rss after warm-up ({args.warmup} solves): {report.warmup_rss / mib:.1f} MiB")
    print(f"rss at the end: {report.final_rss / mib:.1f} MiB")
    print(f"growth: {report.growth * 100:+.1f}% (allowed {args.max_growth * 100:.0f}%)")
    print(f"max live sequence ids after a solve: {report.max_live}")
    for failure in report.failures:
        print(f"failed: {failure}")
    ok = report.ok(args.max_growth)
    print("ok" if ok else "LEAK" if report.max_live or report.growth > args.max_growth else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
