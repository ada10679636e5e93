"""Schedule adjustments: ``datetime -> datetime`` functions applied to the times that pass.

Give them to :class:`~asyncflow.schedules.Schedule` as ``adjustments``; they apply in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._deps import pendulum
from .filters import is_weekday

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

__all__ = ("add", "next_weekday")


def add(interval: timedelta) -> Callable[[datetime], datetime]:
    """Move each time later by ``interval``."""

    def _add(dt: datetime) -> datetime:
        return pendulum.instance(dt) + interval

    return _add


def next_weekday(dt: datetime) -> datetime:
    """Move a Saturday or Sunday to the next Monday; weekdays stay as they are."""
    pdt = pendulum.instance(dt)
    while not is_weekday(pdt):
        pdt = pdt.add(days=1)
    return pdt
