"""Schedules: when a flow runs, at Prefect 1.x's paths.

``Flow(schedule=...)`` takes a :class:`Schedule` built from clocks
(:mod:`asyncflow.schedules.clocks`), filters (:mod:`.filters`) and adjustments
(:mod:`.adjustments`), or the one-clock shortcuts :func:`IntervalSchedule` and
:func:`CronSchedule`. ``flow.run()`` then runs at each scheduled time, and an
``asyncflow.integrations.Runtime`` runs the schedules of its flows. Times are pendulum
``DateTime``\\ s; this package needs the ``schedules`` extra (``pip install
'asyncflow[schedules]'``: pendulum and croniter).
"""

from . import adjustments as adjustments
from . import clocks as clocks
from . import filters as filters
from .schedule import CronSchedule as CronSchedule
from .schedule import IntervalSchedule as IntervalSchedule
from .schedule import Schedule as Schedule

__all__ = (
    "Schedule",
    "IntervalSchedule",
    "CronSchedule",
    "clocks",
    "filters",
    "adjustments",
)
