"""The schedules of a :class:`~asyncflow.integrations.Runtime`'s flows.

For each flow with a ``schedule``, one coroutine in the runtime's task group asks the schedule
for its next event after the runtime clock's now, sleeps until then on that clock (a timer: no
thread waits) and starts a run with the event's parameter defaults. Starting returns as soon as
the run is going, so a long run never delays the next one. Times that passed while no runtime
was running are skipped, as in Prefect 1.x. With a ``FakeClock`` nothing jumps by itself:
tests move the clock with ``advance``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .._log import get_logger
from .._logsetup import ensure_logging
from .._scheduled import next_event
from ..exceptions import AsyncflowError

if TYPE_CHECKING:
    from datetime import datetime

    from anyio.abc import TaskStatus

    from ..clock import Clock
    from .runtime import Runtime

__all__ = ("Schedules",)

_log = get_logger("asyncflow.integrations")


class Schedules:
    """Runs the schedules of a runtime's flows (created and driven by the Runtime).

    Attributes:
        next_runs: ``{flow name: next scheduled start or None}`` for the scheduled flows.
    """

    def __init__(self, runtime: Runtime, clock: Clock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.scheduled = {n: f.schedule for n, f in runtime.flows.items() if f.schedule}
        self.next_runs: dict[str, datetime | None] = {}
        self._scope: anyio.CancelScope | None = None  # made in run(): it needs a loop

    def next_run(self, name: str) -> datetime | None:
        """When flow ``name`` runs next on its schedule (``None``: no schedule, or it ended)."""
        if name in self.next_runs:
            return self.next_runs[name]
        schedule = self.scheduled.get(name)
        if schedule is None:
            return None
        event = next_event(schedule, self.clock)  # not started yet: what it would be
        return event.start_time if event is not None else None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every schedule until :meth:`stop` (or until every schedule has ended).

        The first event of each schedule is the first after the clock's reading when this is
        called (the runtime calls it as it enters): earlier times are skipped.
        """
        ensure_logging()  # what the schedules log is seen even before the first run
        first = {name: next_event(s, self.clock) for name, s in self.scheduled.items()}
        for name, event in first.items():
            self.next_runs[name] = event.start_time if event is not None else None
        # The runtime awaits this until started, so stop() always comes after this line.
        self._scope = scope = anyio.CancelScope()
        with scope:
            async with anyio.create_task_group() as tg:
                for name, schedule in self.scheduled.items():
                    tg.start_soon(self._follow, name, schedule, first[name])
                task_status.started()

    def stop(self) -> None:
        """Start no more scheduled runs (the runs already started are the runtime's)."""
        if self._scope is not None:
            self._scope.cancel()

    async def _follow(self, name: str, schedule: Any, event: Any) -> None:
        while True:
            self.next_runs[name] = event.start_time if event is not None else None
            if event is None:
                _log.info("schedule ended", flow=name)
                return
            # stop() cancels this sleep: no run starts once the runtime is shutting down.
            await self.clock.sleep_until(event.start_time.timestamp())
            try:
                await self.runtime.start(name, event.parameter_defaults or None)
            except AsyncflowError as exc:  # bad parameter defaults, a full registry
                _log.error(
                    "scheduled run not started",
                    flow=name,
                    start_time=str(event.start_time),
                    error=str(exc),
                )
            event = next_event(schedule, self.clock)
