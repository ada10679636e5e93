"""Time, behind a tiny protocol.

Every timer of the engine (retry delays, timeouts, flow deadlines) reads a :class:`Clock`, so
that tests can substitute :class:`asyncflow.testing.FakeClock` and finish a ten-minute retry at
once. :class:`SystemClock` is the default: wall-clock ``now()`` for what states and events
carry (``start_time``, timestamps), a monotonic reading and event-loop sleeps for waiting, so
that an NTP step of the wall clock neither delays nor hurries a retry.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ("Clock", "SystemClock", "SYSTEM_CLOCK")


@runtime_checkable
class Clock(Protocol):
    """What the engine needs to know about time."""

    #: Whether the engine may jump this clock forward when every unfinished task is waiting on
    #: a timer (only fake clocks say yes).
    autojump: bool

    def now(self) -> float:
        """Wall-clock seconds since the epoch (or since the fake clock's start)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps; timers compare deadlines against it."""

    async def sleep_until(self, deadline: float) -> None:
        """Return after ``deadline - now()`` seconds (measured once, on monotonic time).

        Holds no thread while waiting.
        """

    def next_deadline(self) -> float | None:
        """The earliest deadline someone is sleeping until, or ``None`` (fakes only)."""

    def jump_to(self, when: float) -> None:
        """Move the clock forward to ``when`` and wake the sleepers due by then (fakes only)."""


class SystemClock:
    """The real clock: ``time.time()`` and event-loop timers."""

    autojump = False

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        # anyio.sleep is a loop timer (call_later) on the loop's monotonic clock: no thread
        # waits, and a step of the wall clock during the sleep changes nothing.
        await anyio.sleep(max(0.0, deadline - self.now()))

    def next_deadline(self) -> float | None:
        return None

    def jump_to(self, when: float) -> None:
        raise TypeError("the system clock cannot be moved")

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
