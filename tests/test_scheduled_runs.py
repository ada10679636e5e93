"""Running schedules: ``flow.run()`` at each scheduled time, and a Runtime's schedules.

Every test reads a FakeClock: ``flow.run`` moves it to each scheduled time at once (a week of
daily runs takes milliseconds), while a Runtime's schedules wait for the test to advance it.
One ``realtime`` test proves the real event-loop timers fire.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pendulum
import pytest
from integration_scenarios import until

from asyncflow import Flow, Parameter, context, task
from asyncflow.engine.state import Failed, Success
from asyncflow.exceptions import AsyncflowError, ScheduleError
from asyncflow.integrations import Runtime, serialize
from asyncflow.schedules import IntervalSchedule, Schedule
from asyncflow.schedules.clocks import DatesClock, IntervalClock
from asyncflow.testing import FakeClock

START = pendulum.datetime(2024, 1, 1)


def days(n: int) -> list[pendulum.DateTime]:
    return [START.add(days=i) for i in range(n)]


class Journal:
    """A flow that notes the scheduled time, the date and the parameter of each run."""

    def __init__(self, schedule: Any) -> None:
        self.runs: list[tuple[str, str, Any]] = []

        @task
        def note(x: Any) -> None:
            self.runs.append((str(context.scheduled_start_time), context.today, x))

        with Flow("journal", schedule=schedule) as self.flow:
            note(Parameter("x", default="given"))


def daily(n: int, **clock_kwargs: Any) -> Schedule:
    clock = IntervalClock(
        timedelta(days=1), start_date=START, end_date=START.add(days=n - 1), **clock_kwargs
    )
    return Schedule([clock])


class TestRunOnSchedule:
    def test_a_week_of_daily_runs_happens_at_once_on_a_fake_clock(self) -> None:
        journal = Journal(daily(7))
        clock = FakeClock(START.timestamp() - 3600)
        began = time.perf_counter()
        state = journal.flow.run(clock=clock)
        assert time.perf_counter() - began < 5
        assert isinstance(state, Success)
        assert [r[:2] for r in journal.runs] == [(str(d), d.strftime("%Y-%m-%d")) for d in days(7)]
        assert clock.now() == START.add(days=6).timestamp()

    def test_each_run_gets_its_events_parameter_defaults(self) -> None:
        schedule = Schedule(
            [
                DatesClock([START], parameter_defaults={"x": "from clock"}),
                DatesClock([START.add(hours=1)]),
            ]
        )
        journal = Journal(schedule)
        journal.flow.run(parameters={"x": "given"}, clock=FakeClock(START.timestamp() - 1))
        assert [r[2] for r in journal.runs] == ["from clock", "given"]

    def test_parameters_by_keyword_reach_every_run(self) -> None:
        journal = Journal(daily(2))
        journal.flow.run(x="by keyword", clock=FakeClock(START.timestamp() - 1))
        assert [r[2] for r in journal.runs] == ["by keyword", "by keyword"]

    def test_a_context_flow_run_id_cannot_name_every_scheduled_run(self) -> None:
        with pytest.raises(TypeError, match="a context flow_run_id cannot be given"):
            Journal(daily(2)).flow.run(
                context={"flow_run_id": "x"}, clock=FakeClock(START.timestamp())
            )

    def test_run_on_schedule_false_runs_once_now(self) -> None:
        journal = Journal(daily(7))
        clock = FakeClock(START.timestamp() - 3600)
        journal.flow.run(run_on_schedule=False, clock=clock)
        assert journal.runs == [(str(START.subtract(hours=1)), "2023-12-31", "given")]

    def test_times_that_pass_during_a_run_are_skipped(self) -> None:
        attempts: list[float] = []
        clock = FakeClock(START.timestamp() - 1)

        @task(max_retries=1, retry_delay=timedelta(days=2, hours=1))
        def slow_once() -> None:
            attempts.append(clock.now())
            if len(attempts) == 1:
                raise ValueError("first attempt fails")

        with Flow("slow", schedule=daily(5)) as flow:
            slow_once()
        flow.run(clock=clock)
        starts = [datetime.fromtimestamp(t, UTC) for t in attempts]
        # day 1 runs (and retries on day 3, 01:00); days 2 and 3 are gone; 4 and 5 run
        assert starts == [START, START.add(days=2, hours=1), START.add(days=3), START.add(days=4)]

    def test_a_failed_run_does_not_stop_the_schedule_and_the_last_state_is_returned(
        self,
    ) -> None:
        seen: list[int] = []

        @task
        def fails_on_the_second_day() -> None:
            seen.append(len(seen))
            if len(seen) == 2:
                raise ValueError("bad day")

        with Flow("f", schedule=daily(3)) as flow:
            fails_on_the_second_day()
        assert isinstance(flow.run(clock=FakeClock(START.timestamp() - 1)), Success)
        assert seen == [0, 1, 2]
        with Flow("g", schedule=daily(2)) as flow2:
            fails_on_the_second_day()
        seen.clear()
        assert isinstance(flow2.run(clock=FakeClock(START.timestamp() - 1)), Failed)

    def test_a_schedule_with_no_time_left_is_an_error_naming_the_flow(self) -> None:
        journal = Journal(daily(2))
        with pytest.raises(ScheduleError, match="<Flow: name=journal> has no more scheduled runs"):
            journal.flow.run(clock=FakeClock(START.add(days=5).timestamp()))
        assert issubclass(ScheduleError, AsyncflowError)
        assert issubclass(ScheduleError, ValueError)

    @pytest.mark.parametrize("option", ["run_id", "resume"])
    def test_a_run_id_or_resume_cannot_name_every_scheduled_run(self, option: str) -> None:
        with pytest.raises(TypeError, match=f"{option} cannot be given to runs on a schedule"):
            Journal(daily(2)).flow.run(clock=FakeClock(START.timestamp()), **{option: "x"})

    def test_task_states_apply_to_the_first_run_only(self) -> None:
        journal = Journal(daily(2))
        (note,) = [t for t in journal.flow.tasks if t.name == "note"]
        journal.flow.run(
            task_states={note: Success("given", None)}, clock=FakeClock(START.timestamp() - 1)
        )
        assert [r[0] for r in journal.runs] == [str(START.add(days=1))]

    def test_a_schedule_must_be_a_schedule(self) -> None:
        with pytest.raises(TypeError, match="schedule must be a Schedule"):
            Flow("f", schedule="daily")

    @pytest.mark.realtime
    def test_real_timers_start_the_runs_on_time(self) -> None:
        # A second ahead: even a loaded machine reaches flow.run() before the first time.
        first = pendulum.now("UTC").add(seconds=1)
        woke: list[float] = []
        schedule = IntervalSchedule(first, timedelta(seconds=0.3), first.add(seconds=0.3))
        with Flow("timed", schedule=schedule) as flow:
            task(lambda: woke.append(time.time()), name="wake")()
        flow.run()
        assert len(woke) == 2
        assert woke[0] >= first.timestamp()
        assert woke[1] >= first.add(seconds=0.3).timestamp()


class TestRuntimeSchedules:
    async def test_runs_start_at_each_time_as_the_clock_moves(self) -> None:
        journal = Journal(daily(3, parameter_defaults={"x": "clock"}))
        clock = FakeClock(START.timestamp() - 60)
        async with Runtime([journal.flow], clock=clock) as runtime:
            assert runtime.next_run("journal") == START
            await settle()
            assert runtime.runs() == []
            for day in range(3):
                clock.jump_to(START.add(days=day).timestamp())
                await until(lambda n=day + 1: len(finished(runtime)) == n)
            assert runtime.next_run("journal") is None
        assert [r[0] for r in journal.runs] == [str(d) for d in days(3)]
        assert {r[2] for r in journal.runs} == {"clock"}

    async def test_a_run_still_going_does_not_hold_back_the_next(self) -> None:
        gate = anyio.Event()

        @task
        async def wait() -> None:
            await gate.wait()

        with Flow("slow", schedule=daily(2)) as flow:
            wait()
        clock = FakeClock(START.timestamp() - 1)
        async with Runtime([flow], clock=clock) as runtime:
            clock.jump_to(START.timestamp())
            await until(lambda: len(runtime.active()) == 1)
            clock.jump_to(START.add(days=1).timestamp())
            await until(lambda: len(runtime.active()) == 2)
            gate.set()
            await until(lambda: len(finished(runtime)) == 2)

    async def test_times_passed_before_the_runtime_started_are_skipped(self) -> None:
        journal = Journal(daily(5))
        clock = FakeClock(START.add(days=2, hours=1).timestamp())
        async with Runtime([journal.flow], clock=clock) as runtime:
            assert runtime.next_run("journal") == START.add(days=3)
            assert serialize.flows_json(runtime)[0]["next_run"] == "2024-01-04T00:00:00+00:00"

    def test_before_it_runs_a_runtime_tells_the_next_run_from_its_clock(self) -> None:
        runtime = Runtime([Journal(daily(5)).flow], clock=FakeClock(START.timestamp() + 1))
        assert runtime.next_run("journal") == START.add(days=1)

    async def test_unscheduled_flows_have_no_next_run(self) -> None:
        async with Runtime([Journal(None).flow]) as runtime:
            assert runtime.next_run("journal") is None
            assert runtime.schedules.scheduled == {}

    async def test_a_scheduled_run_that_cannot_start_is_logged_and_the_schedule_goes_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        @task
        def needs(y: Any) -> None:
            return None

        schedule = Schedule([DatesClock(days(2), parameter_defaults={})])
        with Flow("strict", schedule=schedule) as flow:
            needs(Parameter("y"))
        clock = FakeClock(START.timestamp() - 1)
        async with Runtime([flow], clock=clock) as runtime:
            clock.jump_to(START.timestamp())
            await until(lambda: runtime.next_run("strict") == START.add(days=1))
            assert runtime.runs() == []
        assert "scheduled run not started" in caplog.text
        assert "missing required parameter(s) ['y']" in caplog.text

    async def test_shutdown_stops_the_schedules(self) -> None:
        journal = Journal(daily(100))
        clock = FakeClock(START.timestamp() - 1)
        async with Runtime([journal.flow], clock=clock) as runtime:
            pass
        clock.jump_to(START.add(days=5).timestamp())
        await settle()
        assert runtime.runs() == []


def finished(runtime: Runtime) -> list[Any]:
    return [r for r in runtime.runs() if r.done]


async def settle() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()
