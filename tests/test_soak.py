"""A short soak on the embedded model: twenty solves on one backend, no leaks.

The full version is ``python -m deliberate.benchmarks.soak`` (200 solves).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from deliberate.benchmarks.soak import soak

from helpers_real import THREADS, open_model

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def backend():
    backend = open_model()
    yield backend
    backend.close()


def test_twenty_solves_leak_neither_sequence_ids_nor_memory(backend) -> None:
    held: list[int] = []

    def after(i, result, live) -> None:
        held.append(live)
        assert result is not None, f"solve {i} failed"
        assert backend.cache.cells <= backend.cache_cells  # the prefix cache stays trimmed

    report = soak(backend, solves=20, think=0.5, warmup=5, on_solve=after)
    assert report.solves == 20
    assert not report.failures
    assert held == [0] * 20
    assert report.growth <= 0.10, f"RSS grew {report.growth:.1%} after warm-up"


def test_the_soak_script_reports_and_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deliberate.benchmarks.soak", "--solves", "7", "--warmup", "3", "--think", "0.3",
         "--threads", str(THREADS), "--quiet"],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("rss after warm-up", "rss at the end", "growth:", "max live sequence ids after a solve: 0"):
        assert line in done.stdout
    assert done.stdout.strip().endswith("ok")


def test_the_soak_script_rejects_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deliberate.benchmarks.soak", "--solves", "2", "--warmup", "5"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "--solves must be larger than --warmup" in done.stderr
