"""Clocks and the deadline: the one place where thinking time is measured.

Backends and the search never call ``time`` directly; they ask a ``Deadline``.
Tests swap in ``FakeClock`` so that budget checks are exact and instant.
"""

from __future__ import annotations

import math
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to (the scripted backend advances it per token)."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class _CancelSwitch:
    """When Ctrl-C (or any caller) cancelled, shared by a deadline and its ``sooner`` children."""

    def __init__(self) -> None:
        self.at: float | None = None


class Deadline:
    """An absolute point on a clock, plus a cancel switch for Ctrl-C.

    ``at=inf`` means no time limit (a node budget may still apply).
    """

    def __init__(self, clock: Clock, at: float = math.inf) -> None:
        self.clock = clock
        self.at = at
        self._switch = _CancelSwitch()

    @classmethod
    def after(cls, seconds: float | None, clock: Clock | None = None) -> Deadline:
        clock = clock or MonotonicClock()
        return cls(clock, math.inf if seconds is None else clock.now() + seconds)

    def remaining(self) -> float:
        if self.cancelled:
            return 0.0
        return max(0.0, self.at - self.clock.now())

    def expired(self) -> bool:
        return self.cancelled or self.clock.now() >= self.at

    def cancel(self) -> None:
        """Make the deadline expire now; safe to call from a signal handler."""
        if self._switch.at is None:  # the first cancel is the one that counts
            self._switch.at = self.clock.now()

    @property
    def cancelled(self) -> bool:
        return self._switch.at is not None

    @property
    def cancelled_at(self) -> float | None:
        """When ``cancel`` was first called, on this deadline's clock."""
        return self._switch.at

    def sooner(self, seconds: float) -> Deadline:
        """A deadline no later than this one and no later than ``seconds`` from now.

        It shares this deadline's cancel switch, so Ctrl-C reaches it too.
        """
        child = Deadline(self.clock, min(self.at, self.clock.now() + seconds))
        child._switch = self._switch
        return child

    def with_grace(self, grace: float) -> GraceDeadline:
        """A deadline that ends with this one, or ``grace`` seconds after its cancel.

        The greedy finish runs under it: a Ctrl-C that came before the finish, or one
        that arrives during it, leaves the finish ``grace`` seconds after the signal.
        """
        return GraceDeadline(self, grace)


class GraceDeadline(Deadline):
    """See ``Deadline.with_grace``. It reads the parent's cancel switch on every check,
    so a signal that arrives while it runs still ends it; it is never cancelled itself."""

    def __init__(self, parent: Deadline, grace: float) -> None:
        super().__init__(parent.clock, parent.at)
        self.parent = parent
        self.grace = grace

    @property
    def at(self) -> float:  # type: ignore[override]
        cancelled = self.parent.cancelled_at
        limit = self.parent.at
        return limit if cancelled is None else min(limit, cancelled + self.grace)

    @at.setter
    def at(self, value: float) -> None:
        pass  # always derived from the parent

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock.now())

    def expired(self) -> bool:
        return self.clock.now() >= self.at
