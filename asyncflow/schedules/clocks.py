"""Clocks: the sources of a schedule's candidate times.

A clock's :meth:`~Clock.events` yields :class:`ClockEvent`\\ s (a start time, and the parameter
defaults and labels of the runs it starts) strictly after a given time, in order. As in
Prefect 1.x: :class:`IntervalClock` adds a fixed interval to its start date (intervals of a day
or more keep the local wall-clock time across daylight-saving changes, shorter ones are exact
elapsed time), :class:`CronClock` follows a cron expression in its start date's time zone (an
hourly cron fires on every new wall-clock hour), and :class:`DatesClock` fires on given dates.
Times are pendulum ``DateTime``\\ s.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._deps import pendulum

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

__all__ = ("ClockEvent", "Clock", "IntervalClock", "CronClock", "DatesClock")

#: Where an IntervalClock without a start date counts from (Prefect 1.x's choice).
DEFAULT_START = pendulum.datetime(2019, 1, 1)


class ClockEvent:
    """One time a clock fires, with what the run it starts should get.

    Compares with other events (time, parameter defaults and labels) and with plain datetimes
    (time only), so events sort and merge like their times.

    Args:
        start_time: when the run starts.
        parameter_defaults: parameter values for that run.
        labels: labels for that run.
    """

    def __init__(
        self,
        start_time: datetime,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        self.start_time = start_time
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels = list(labels) if labels is not None else None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, datetime):
            return self.start_time == other
        if not isinstance(other, ClockEvent):
            return False
        return (self.start_time, self.parameter_defaults, self.labels) == (
            other.start_time,
            other.parameter_defaults,
            other.labels,
        )

    def __hash__(self) -> int:
        return hash(self.start_time)

    def _time_of(self, other: object, op: str) -> datetime:
        if isinstance(other, ClockEvent):
            return other.start_time
        if isinstance(other, datetime):
            return other
        raise TypeError(
            f"'{op}' not supported between instances of 'ClockEvent' and {type(other).__name__!r}"
        )

    def __lt__(self, other: object) -> bool:
        return self.start_time < self._time_of(other, "<")

    def __gt__(self, other: object) -> bool:
        return self.start_time > self._time_of(other, ">")

    def __repr__(self) -> str:
        return f"<ClockEvent {self.start_time}, {self.labels}, {self.parameter_defaults}>"


def _instance(value: datetime | None, name: str) -> pendulum.DateTime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    return pendulum.instance(value)


class Clock:
    """Base class of clocks.

    Args:
        start_date: no event before this time.
        end_date: no event after this time.
        parameter_defaults: parameter values for every run this clock starts.
        labels: labels for every run this clock starts.
    """

    def __init__(
        self,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        self.start_date = _instance(start_date, "start_date")
        self.end_date = _instance(end_date, "end_date")
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels = list(labels) if labels is not None else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: start={self.start_date}, end={self.end_date}>"

    def events(self, after: datetime | None = None) -> Iterable[ClockEvent]:
        """The clock's events after ``after`` (default: now), in order."""
        raise NotImplementedError("Clock subclasses implement events()")

    def _event(self, start_time: datetime) -> ClockEvent:
        return ClockEvent(start_time, self.parameter_defaults, self.labels)


class IntervalClock(Clock):
    """Fires every ``interval`` from ``start_date`` (default: 2019-01-01 00:00 UTC).

    An interval of whole days keeps the wall-clock time of the start date in its time zone
    across daylight-saving changes (a daily 9am clock stays at 9am); the rest of an interval
    is exact elapsed time (an hourly clock fires every UTC hour, so after clocks go back two
    runs both read 1am local time).

    Args:
        interval: the time between events (positive).
        start_date: the first event.
        end_date: no event after this time.
        parameter_defaults: parameter values for every run this clock starts.
        labels: labels for every run this clock starts.

    Raises:
        TypeError: ``interval`` is not a timedelta.
        ValueError: ``interval`` is not positive.
    """

    def __init__(
        self,
        interval: timedelta,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(interval, timedelta):
            raise TypeError(f"IntervalClock: interval must be a timedelta, got {interval!r}")
        if interval.total_seconds() <= 0:
            raise ValueError(f"IntervalClock: interval must be positive, got {interval}")
        self.interval = interval
        super().__init__(start_date, end_date, parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Every ``start_date + k * interval`` strictly after ``after`` (default: now)."""
        start = self.start_date or DEFAULT_START
        after_dt = pendulum.instance(after) if after is not None else pendulum.now("UTC")
        # Skip the intervals that end before ``after`` at once instead of walking them.
        skip = (after_dt - start).total_seconds() / self.interval.total_seconds()
        k = 0 if skip < 0 else int(skip) + 1
        while True:
            offset = self.interval * k
            # Days and seconds apart: pendulum adds days in local time (DST-aware).
            seconds = offset.total_seconds() - offset.days * 86400
            when = start.add(days=offset.days, seconds=seconds)
            k += 1
            if when <= after_dt:
                continue
            if self.end_date is not None and when > self.end_date:
                return
            yield self._event(when)


class CronClock(Clock):
    """Fires on a cron expression, read in the start date's time zone (default UTC).

    Cron follows wall-clock time: an hourly cron fires on each new local hour (when clocks go
    back, the repeated hour fires once), and a daily 9am cron stays at 9am across
    daylight-saving changes. Microseconds count: a start at 00:00:00.000001 makes a daily
    cron's first event the next midnight.

    Args:
        cron: a cron expression (five fields, as croniter reads them).
        start_date: no event before this time; its time zone is the cron's.
        end_date: no event after this time.
        parameter_defaults: parameter values for every run this clock starts.
        labels: labels for every run this clock starts.
        day_or: combine day-of-month and day-of-week with OR (cron's rule, the default) or,
            when ``False``, with AND (e.g. "the first Friday": ``0 0 1-7 * 5``).

    Raises:
        ValueError: the cron expression is invalid.
    """

    def __init__(
        self,
        cron: str,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
        day_or: bool | None = None,
    ) -> None:
        croniter = _croniter()
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ValueError(f"Invalid cron string: {cron!r}")
        self.cron = cron
        self.day_or = True if day_or is None else day_or
        super().__init__(start_date, end_date, parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """The cron's times strictly after ``after`` (default: now), from ``start_date`` on."""
        croniter = _croniter()
        tz: Any = pendulum.UTC
        if self.start_date is not None and self.start_date.tz is not None:
            tz = self.start_date.tz
        after_dt = pendulum.instance(after) if after is not None else pendulum.now(tz)
        after_dt = after_dt.in_tz(tz)
        if self.start_date is not None:
            # Just before the start date, so that the start date itself can be an event.
            after_dt = max(after_dt, self.start_date.subtract(seconds=1))
        if after_dt.microsecond:
            after_dt = after_dt.add(seconds=1).replace(microsecond=0)
        it = croniter(self.cron, after_dt, day_or=self.day_or)
        seen: set[datetime] = set()
        stuck = 0
        # A time already seen (or not after ``after``) is skipped; croniter has stalled on
        # such times at some DST boundaries, so a long run of them ends the clock instead of
        # looping forever (Prefect 1.x's escape hatch).
        while stuck < 1000:
            when = _standard_if_ambiguous(pendulum.instance(it.get_next(datetime)).in_tz(tz))
            if when <= after_dt or when in seen:
                stuck += 1
                continue
            if self.end_date is not None and when > self.end_date:
                return
            stuck = 0
            seen.add(when)
            yield self._event(when)


def _standard_if_ambiguous(when: pendulum.DateTime) -> pendulum.DateTime:
    """A wall time that occurs twice (clocks going back) is read as its second occurrence.

    That is the standard-time reading, the one Prefect 1.x's cron clock fires at.
    """
    later = when.replace(fold=1)
    return later if later.utcoffset() != when.utcoffset() else when


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        from ..exceptions import missing_dependency

        raise missing_dependency("croniter", "schedules", "CronClock") from None
    return croniter


class DatesClock(Clock):
    """Fires on the given dates.

    Args:
        dates: the times to fire at (at least one).
        parameter_defaults: parameter values for every run this clock starts.
        labels: labels for every run this clock starts.

    Raises:
        ValueError: ``dates`` is empty.
    """

    def __init__(
        self,
        dates: Sequence[datetime],
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        if not dates:
            raise ValueError("DatesClock needs at least one date")
        self.dates = sorted(pendulum.instance(d) for d in dates)
        super().__init__(self.dates[0], self.dates[-1], parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """The dates strictly after ``after`` (default: now), in order."""
        after_dt = pendulum.instance(after) if after is not None else pendulum.now("UTC")
        return (self._event(d) for d in self.dates if d > after_dt)
