"""Running a flow on its schedule: one run at each scheduled time, waiting on the run's clock.

``flow.run()`` on a flow with a ``schedule`` comes here (Prefect 1.x's behaviour): ask the
schedule for the next event after the clock's now, wait for its time with a clock timer (no
thread waits; a :class:`~asyncflow.testing.FakeClock` is moved straight to it, as nothing else
runs in between), run the flow with the event's parameter defaults, and repeat until the
schedule has no next event. Times that pass while a run is going are skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._log import get_logger
from ._logsetup import ensure_logging
from .clock import SYSTEM_CLOCK
from .exceptions import ScheduleError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._running import RunsFlows
    from .clock import Clock
    from .states import State

__all__ = ("next_event", "run_scheduled", "wait_until")

_log = get_logger("asyncflow.engine")


def next_event(schedule: Any, clock: Clock) -> Any | None:
    """The schedule's next ``ClockEvent`` strictly after the clock's now, or ``None``."""
    after = datetime.fromtimestamp(clock.now(), UTC)
    events = schedule.next(1, after=after, return_events=True)
    return events[0] if events else None


async def wait_until(clock: Clock, when: datetime) -> None:
    """Sleep until ``when`` on ``clock``; a fake clock is moved there at once."""
    deadline = when.timestamp()
    if clock.autojump:
        if deadline > clock.now():
            clock.jump_to(deadline)
        return
    await clock.sleep_until(deadline)


async def run_scheduled(
    flow: RunsFlows,
    schedule: Any,
    parameters: Mapping[str, Any] | None,
    keywords: Mapping[str, Any],
) -> State:
    """Run ``flow`` at each time of ``schedule``; return the last run's final state.

    ``parameters`` and ``keywords`` are those of ``flow.run()`` (parameters by name, run
    options); ``task_states`` and ``state`` apply to the first run only, as in Prefect 1.x.

    Raises:
        ScheduleError: the schedule has no time left to run at.
        TypeError: ``run_id`` or ``resume`` was given (each scheduled run is a new run).
    """
    given, options = flow._split_keywords(parameters, keywords)
    run_context = options.get("context") or {}
    for name, value in (
        ("run_id", options.get("run_id")),
        ("resume", options.get("resume")),
        ("a context flow_run_id", run_context.get("flow_run_id")),
    ):
        if value is not None:
            raise TypeError(
                f"{flow!r}: {name} cannot be given to runs on a schedule (each is a new run); "
                "pass run_on_schedule=False to run once"
            )
    ensure_logging()
    clock = options.get("clock") or SYSTEM_CLOCK
    event = next_event(schedule, clock)
    if event is None:
        raise ScheduleError(f"{flow!r} has no more scheduled runs")
    later_options = {k: v for k, v in options.items() if k not in ("task_states", "state")}
    state: State | None = None
    while event is not None:
        if event.start_time.timestamp() > clock.now():
            _log.info("waiting for next scheduled run", start_time=str(event.start_time))
        await wait_until(clock, event.start_time)
        # As in Prefect 1.x, the clock's parameter defaults win over the ones given.
        run = flow._new_run(
            {**given, **event.parameter_defaults},
            options if state is None else later_options,
            keep_history=False,
            wait_for_resume=False,
            end_paused=True,
            scheduled_start_time=event.start_time,
        )
        state = await run.execute()
        event = next_event(schedule, clock)
    assert state is not None
    return state
