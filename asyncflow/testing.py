"""Test helpers shipped with asyncflow: a fake clock and an event recorder.

:class:`FakeClock` replaces the system clock in a run (``clock=``): every engine timer reads it,
and when every unfinished task of a run waits on a timer, the engine jumps it to the next
deadline, so a ten-minute retry finishes at once. :class:`EventRecorder` is a bus subscriber that
keeps what it got.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from .events import StateChange
    from .states import State

__all__ = ("EventRecorder", "FakeClock")


class FakeClock:
    """A clock that moves only when told to (or when the engine finds a run idle).

    Args:
        start: the reading to start from, in seconds.
    """

    autojump = True

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        """The current reading."""
        return self._now

    def monotonic(self) -> float:
        """The current reading too: a fake clock never steps back."""
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        """Wait until the clock reads ``deadline`` or later."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        entry = (deadline, next(self._counter), event)
        heapq.heappush(self._sleepers, entry)
        try:
            await event.wait()
        finally:
            if not event.is_set():  # cancelled: forget the entry
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    def next_deadline(self) -> float | None:
        """The earliest deadline anyone sleeps until, or ``None``."""
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``, waking every sleeper due by then."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        self.jump_to(self._now + seconds)

    def jump_to(self, when: float) -> None:
        """Move forward to ``when``, waking every sleeper due by then."""
        if when < self._now:
            raise ValueError(f"a clock cannot go back: {when} < {self._now}")
        self._now = float(when)
        while self._sleepers and self._sleepers[0][0] <= when:
            _, _, event = heapq.heappop(self._sleepers)
            event.set()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now}, sleepers={len(self._sleepers)})"


class EventRecorder:
    """A bus subscriber that records every event it receives.

    ``bus.subscribe(recorder)``; then ``recorder.events`` is the list of events in order.
    """

    def __init__(self) -> None:
        self.events: list[StateChange] = []

    def __call__(self, event: StateChange) -> None:
        self.events.append(event)

    def states(self, task_name: str | None = None) -> list[State]:
        """The new states recorded for ``task_name`` (``None``: the flow's own)."""
        return [e.new_state for e in self.events if e.task_name == task_name]

    def clear(self) -> None:
        """Forget what was recorded."""
        self.events.clear()
