"""Schedule filters: ``datetime -> bool`` functions that keep or drop a candidate time.

Give them to :class:`~asyncflow.schedules.Schedule` as ``filters`` (all must pass),
``or_filters`` (one must pass) or ``not_filters`` (none may pass). Times are compared in their
own time zone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._deps import pendulum

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, time

__all__ = (
    "on_datetime",
    "on_date",
    "at_time",
    "between_datetimes",
    "between_dates",
    "between_times",
    "is_weekday",
    "is_weekend",
    "is_month_end",
    "is_month_start",
    "is_day_of_week",
)


def on_datetime(dt: datetime) -> Callable[[datetime], bool]:
    """Keep exactly ``dt``."""

    def _on_datetime(candidate: datetime) -> bool:
        return candidate == dt

    return _on_datetime


def on_date(month: int, day: int) -> Callable[[datetime], bool]:
    """Keep times on ``month``/``day`` of any year."""

    def _on_date(candidate: datetime) -> bool:
        return (candidate.month, candidate.day) == (month, day)

    return _on_date


def at_time(t: time) -> Callable[[datetime], bool]:
    """Keep times whose time of day is ``t`` (e.g. ``at_time(time(4))``: 4am)."""

    def _at_time(candidate: datetime) -> bool:
        return candidate.time() == t

    return _at_time


def between_datetimes(start: datetime, end: datetime) -> Callable[[datetime], bool]:
    """Keep times from ``start`` to ``end``, both included."""

    def _between_datetimes(candidate: datetime) -> bool:
        return start <= candidate <= end

    return _between_datetimes


def between_dates(
    start_month: int, start_day: int, end_month: int, end_day: int
) -> Callable[[datetime], bool]:
    """Keep days from one date to another in every year, wrapping around the new year.

    ``between_dates(10, 15, 3, 31)`` keeps October 15 to March 31.
    """
    start, end = (start_month, start_day), (end_month, end_day)

    def _between_dates(candidate: datetime) -> bool:
        date = (candidate.month, candidate.day)
        if start <= end:
            return start <= date <= end
        return date >= start or date <= end

    return _between_dates


def between_times(start: time, end: time) -> Callable[[datetime], bool]:
    """Keep times of day from ``start`` to ``end``, wrapping around midnight."""

    def _between_times(candidate: datetime) -> bool:
        t = candidate.time()
        if start <= end:
            return start <= t <= end
        return t >= start or t <= end

    return _between_times


def is_weekday(dt: datetime) -> bool:
    """Keep Monday to Friday."""
    return dt.weekday() < 5


def is_weekend(dt: datetime) -> bool:
    """Keep Saturday and Sunday."""
    return dt.weekday() > 4


def is_month_end(dt: datetime) -> bool:
    """Keep the last day of each month."""
    return pendulum.instance(dt).add(days=1).month != dt.month


def is_month_start(dt: datetime) -> bool:
    """Keep the first day of each month."""
    return dt.day == 1


def is_day_of_week(day_of_week: int) -> Callable[[datetime], bool]:
    """Keep one day of the week (Monday is 0, Sunday 6)."""

    def _is_day_of_week(candidate: datetime) -> bool:
        return candidate.weekday() == day_of_week

    return _is_day_of_week
