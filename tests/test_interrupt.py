"""Ctrl-C and SIGTERM end a real solve at once, with the best answer so far and a whole trace.

The solve runs in a child process whose stderr is a pseudo-terminal, so the CLI shows
its live progress line ("thinking 4.1s · ..."); the test reads that line to know that
the model is loaded and thinking has gone on for a few seconds before it signals.
The puzzle has no solution, so the search cannot end on its own first.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers_real import THREADS, assert_trace_complete, cli_command, cli_env, read_json

pytestmark = pytest.mark.model

PUZZLE = "Use 1 1 5 13 to make 24."  # no solution: the search runs until it is stopped
THINKING_BEFORE_SIGNAL = 4.0
EXIT_WITHIN = 1.0  # seconds from the signal to the process having exited
PROGRESS = re.compile(r"thinking\s+(\d+(?:\.\d+)?)s")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # rich colours the numbers


class Terminal:
    """The parent side of a pseudo-terminal, drained by a thread so the child never blocks."""

    def __init__(self) -> None:
        self.parent, self.child = pty.openpty()
        self.text = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def start(self) -> None:
        os.close(self.child)  # the child process holds its own copy
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.parent, 4096)
            except OSError:  # EIO once the child side is closed
                break
            if not chunk:
                break
            with self._lock:
                self.text += chunk.decode("utf-8", errors="replace")

    def thinking_seconds(self) -> float | None:
        """The latest elapsed time the progress line showed, if any."""
        with self._lock:
            found = PROGRESS.findall(ANSI.sub("", self.text))
        return float(found[-1]) if found else None

    def close(self) -> str:
        self._thread.join(timeout=5)
        os.close(self.parent)
        return self.text


def interrupt(tmp_path: Path, signum: int) -> tuple[subprocess.Popen, float, str, str, Path]:
    trace = tmp_path / "t.json"
    terminal = Terminal()
    process = subprocess.Popen(
        cli_command("solve", PUZZLE, "--think", "60s", "--strategy", "bfs", "--threads", str(THREADS), "--trace", str(trace)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal.child,
        env=cli_env({"COLUMNS": "120"}),
        cwd=tmp_path,
        start_new_session=True,  # a signal meant for pytest's group must not reach it
    )
    terminal.start()
    try:
        # Wait for the first progress line: the model is loaded and thinking has begun.
        limit = time.monotonic() + 60
        while terminal.thinking_seconds() is None:
            assert process.poll() is None, f"the solve ended early: {terminal.text[-500:]}"
            assert time.monotonic() < limit, "no progress line within 60 s"
            time.sleep(0.05)
        shown, seen_at = terminal.thinking_seconds(), time.monotonic()
        time.sleep(max(0.0, THINKING_BEFORE_SIGNAL - shown - (time.monotonic() - seen_at)))
        assert process.poll() is None, "the unsolvable puzzle ended before the signal"
        process.send_signal(signum)
        sent = time.monotonic()
        stdout, _ = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process, took, stdout.decode(), terminal.close(), trace


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    return {name: interrupt(tmp_path_factory.mktemp(name), signum) for name, signum in SIGNALS.items()}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_ends_the_solve_with_a_whole_trace(runs, name: str) -> None:
    process, took, stdout, stderr, trace = runs[name]
    # Generous: what matters here is that the search stops, not how fast (see below).
    assert took <= EXIT_WITHIN + 0.5, f"exited {took:.2f} s after the signal"
    # The CLI's contract: the best answer so far (exit 0), or none (exit 3).
    assert process.returncode in (0, 3), (process.returncode, stderr[-500:])
    assert "Traceback" not in stderr
    assert (stdout.strip() != "") == (process.returncode == 0)
    data = read_json(trace)  # complete JSON: written whole or not at all
    assert_trace_complete(data)
    assert data["meta"]["stop_reason"] == "interrupted"
    assert data["events"][-1]["reason"] == "interrupted"
    assert data["meta"]["timings"]["thinking_seconds"] >= THINKING_BEFORE_SIGNAL - 0.5
    assert "stop: interrupted" in stderr
    assert [p.name for p in trace.parent.iterdir()] == ["t.json"], "a temporary file was left behind"


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_signal_ends_the_solve_within_one_second(runs, name: str) -> None:
    _, took, _, _, _ = runs[name]
    assert took <= EXIT_WITHIN, f"exited {took:.2f} s after the signal"
