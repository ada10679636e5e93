"""``Schedule``: clocks, filters and adjustments that produce the times a flow runs at.

Clocks emit candidate events; a candidate is kept when every ``filters`` function passes, at
least one ``or_filters`` function passes (if any are given) and no ``not_filters`` function
passes; the kept times then go through the ``adjustments`` in order. Events of several clocks
are merged in time order, and one time emitted by two clocks counts once. ``IntervalSchedule``
and ``CronSchedule`` build a one-clock schedule, as in Prefect 1.x.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any, Literal, overload

from .clocks import Clock, ClockEvent, CronClock, IntervalClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from datetime import datetime, timedelta

__all__ = ("Schedule", "IntervalSchedule", "CronSchedule", "MAX_EVENTS_CHECKED")

#: Clocks may be endless and filters strict: :meth:`Schedule.next` looks at no more events.
MAX_EVENTS_CHECKED = 10_000


class Schedule:
    """When a flow runs.

    Args:
        clocks: one or more clocks emitting candidate times.
        filters: ``datetime -> bool`` functions that must all pass.
        or_filters: functions of which at least one must pass (when any are given).
        not_filters: functions of which none may pass.
        adjustments: ``datetime -> datetime`` functions applied in order to kept times.

    Raises:
        TypeError: ``clocks`` is not a list of clocks, or a filter or adjustment is not
            callable.
    """

    def __init__(
        self,
        clocks: Iterable[Clock],
        filters: Iterable[Callable[[datetime], bool]] | None = None,
        or_filters: Iterable[Callable[[datetime], bool]] | None = None,
        not_filters: Iterable[Callable[[datetime], bool]] | None = None,
        adjustments: Iterable[Callable[[datetime], datetime]] | None = None,
    ) -> None:
        if isinstance(clocks, Clock) or not _iterable(clocks):
            raise TypeError(f"Schedule: clocks must be a list of clocks, got {clocks!r}")
        self.clocks = list(clocks)
        for clock in self.clocks:
            if not isinstance(clock, Clock):
                raise TypeError(f"Schedule: {clock!r} is not a Clock")
        self.filters = _callables("filters", filters)
        self.or_filters = _callables("or_filters", or_filters)
        self.not_filters = _callables("not_filters", not_filters)
        self.adjustments = _callables("adjustments", adjustments)

    def __repr__(self) -> str:
        return f"<Schedule: {len(self.clocks)} clock(s)>"

    @property
    def start_date(self) -> datetime | None:
        """The earliest start date of the clocks (``None`` if none has one)."""
        return min((c.start_date for c in self.clocks if c.start_date), default=None)

    @property
    def end_date(self) -> datetime | None:
        """The latest end date of the clocks (``None`` if none has one)."""
        return max((c.end_date for c in self.clocks if c.end_date), default=None)

    @overload
    def next(
        self, n: int, after: datetime | None = None, return_events: Literal[False] = False
    ) -> list[datetime]: ...

    @overload
    def next(
        self, n: int, after: datetime | None = None, *, return_events: Literal[True]
    ) -> list[ClockEvent]: ...

    def next(
        self, n: int, after: datetime | None = None, return_events: bool = False
    ) -> list[datetime] | list[ClockEvent]:
        """The next ``n`` times (or events) strictly after ``after`` (default: now).

        Stops after looking at :data:`MAX_EVENTS_CHECKED` candidates, so it may return fewer
        than ``n`` (an ended schedule returns ``[]``).

        Args:
            n: how many to return.
            after: the time to look after.
            return_events: return :class:`~asyncflow.schedules.clocks.ClockEvent`\\ s (with
                parameter defaults and labels) instead of times.
        """
        events: list[ClockEvent] = []
        if n <= 0:
            return []
        for checked, event in enumerate(self.emit_events(after), start=1):
            if self._passes(event.start_time):
                event.start_time = self._adjust(event.start_time)
                events.append(event)
            if len(events) >= n or checked >= MAX_EVENTS_CHECKED:
                break
        if return_events:
            return events
        return [e.start_time for e in events]

    def emit_events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Every clock's events after ``after``, merged in time order, unfiltered.

        Equal events from different clocks are emitted once; events at the same time with
        different parameter defaults or labels are each emitted.
        """
        merged = heapq.merge(*(clock.events(after=after) for clock in self.clocks))
        for _, equal in itertools.groupby(merged):
            yield next(equal)

    def _passes(self, dt: datetime) -> bool:
        return (
            all(f(dt) for f in self.filters)
            and (not self.or_filters or any(f(dt) for f in self.or_filters))
            and not any(f(dt) for f in self.not_filters)
        )

    def _adjust(self, dt: datetime) -> datetime:
        for adjust in self.adjustments:
            dt = adjust(dt)
        return dt


def _iterable(value: object) -> bool:
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return True


def _callables(name: str, values: Iterable[Any] | None) -> list[Any]:
    out = list(values or [])
    for f in out:
        if not callable(f):
            raise TypeError(f"Schedule: {name} must hold callables, got {f!r}")
    return out


def IntervalSchedule(  # Prefect 1.x spells this factory like a class
    start_date: datetime | None = None,
    interval: timedelta | None = None,
    end_date: datetime | None = None,
) -> Schedule:
    """A schedule of one :class:`~asyncflow.schedules.clocks.IntervalClock`.

    Raises:
        TypeError: ``interval`` is missing or not a timedelta.
        ValueError: ``interval`` is not positive.
    """
    return Schedule(
        clocks=[IntervalClock(interval=interval, start_date=start_date, end_date=end_date)]  # type: ignore[arg-type]
    )


def CronSchedule(  # Prefect 1.x spells this factory like a class
    cron: str,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    day_or: bool | None = None,
) -> Schedule:
    """A schedule of one :class:`~asyncflow.schedules.clocks.CronClock`.

    Raises:
        ValueError: the cron expression is invalid.
    """
    return Schedule(
        clocks=[CronClock(cron=cron, start_date=start_date, end_date=end_date, day_or=day_or)]
    )
