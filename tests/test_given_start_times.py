"""A task given a ``Scheduled`` or ``Retrying`` state with a start time waits for it, then runs.

As in Prefect 1.x, where ``flow.run(task_states=...)`` leaves such a task scheduled until its
start time and then runs it: here the wait is a timer on the run's clock, and the other tasks
go on meanwhile.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from asyncflow import EventBus, Flow, task
from asyncflow.states import Retrying, Scheduled, State
from asyncflow.testing import EventRecorder, FakeClock


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "given",
    [
        lambda: Scheduled("later", start_time=later(3600)),
        lambda: Retrying("later", start_time=later(3600), run_count=1),
    ],
    ids=["Scheduled", "Retrying"],
)
async def test_a_given_start_time_is_waited_for_on_the_runs_clock(given: object) -> None:
    clock = FakeClock(start=1_000.0)
    ran: list[tuple[str, float]] = []

    @task
    def waits() -> str:
        ran.append(("waits", clock.now()))
        return "done"

    @task
    def goes_on() -> None:
        ran.append(("goes_on", clock.now()))

    with Flow("given") as flow:
        w = waits()
        goes_on()
    state_given: State = given()  # type: ignore[operator]
    with anyio.fail_after(10):  # an hour on the fake clock, no time at all on the real one
        state = await flow.run_async(clock=clock, task_states={w: state_given})
    assert state.is_successful()
    assert state.result[w].result == "done"
    assert ran[0] == ("goes_on", 1_000.0)  # the others did not wait
    name, when = ran[1]
    assert name == "waits"
    assert 3_590 <= when - 1_000.0 <= 3_610


async def test_a_start_time_that_passed_runs_at_once_and_downstream_waits_for_it() -> None:
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)

    @task
    def first() -> int:
        return 1

    @task
    def second(x: int) -> int:
        return x + 1

    with Flow("passed") as flow:
        f = first()
        s = second(f)
    given = Scheduled("was due", start_time=datetime.now(UTC) - timedelta(hours=1))
    with anyio.fail_after(5):
        state = await flow.run_async(bus=bus, task_states={f: given})
    assert state.result[s].result == 2
    assert [type(x).__name__ for x in recorder.states("first")] == ["Running", "Success"]


async def test_a_short_wait_uses_the_real_clock_and_blocks_no_thread() -> None:
    started = anyio.current_time()

    @task
    async def soon() -> float:
        return anyio.current_time() - started

    with Flow("soon") as flow:
        t = soon()
    with anyio.fail_after(5):
        state = await flow.run_async(task_states={t: Scheduled(start_time=later(0.2))})
    assert 0.15 <= state.result[t].result < 2.0
