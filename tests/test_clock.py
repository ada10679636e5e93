"""Specification of the clock: timers wait on monotonic time, states carry wall-clock times."""

from __future__ import annotations

import time

import anyio
import pytest

from asyncflow import EventBus, Flow, StateChange, task
from asyncflow.clock import SYSTEM_CLOCK, Clock, SystemClock
from asyncflow.engine.state import Retrying
from asyncflow.testing import EventRecorder, FakeClock


class SteppingClock(SystemClock):
    """The system clock, whose wall-clock reading an NTP daemon may step (by ``offset``)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep(max(0.0, deadline - self.now()))


def step_when_retrying(clock: SteppingClock, offset: float) -> object:
    """A subscriber that steps the wall clock while a retry waits (as NTP would)."""

    def step(event: StateChange) -> None:
        if isinstance(event.new_state, Retrying):
            clock.offset = offset

    return step


class TestSystemClock:
    def test_it_reads_the_wall_clock_and_a_monotonic_one(self) -> None:
        assert abs(SYSTEM_CLOCK.now() - time.time()) < 1
        assert abs(SYSTEM_CLOCK.monotonic() - time.monotonic()) < 1

    def test_both_clocks_are_clocks(self) -> None:
        assert isinstance(SYSTEM_CLOCK, Clock)
        assert isinstance(FakeClock(), Clock)

    def test_a_fake_clocks_monotonic_reading_is_its_reading(self) -> None:
        clock = FakeClock(start=100)
        clock.advance(5)
        assert clock.monotonic() == clock.now() == 105


class TestAWallClockStep:
    """An NTP step of the wall clock while a retry waits changes nothing about the wait."""

    @pytest.mark.realtime
    @pytest.mark.parametrize("offset", [-5.0, 3600.0], ids=["back 5 s", "forward an hour"])
    async def test_a_step_neither_delays_nor_hurries_a_retry(
        self, recorder: EventRecorder, bus: EventBus, offset: float
    ) -> None:
        clock = SteppingClock()
        attempts: list[float] = []

        @task(max_retries=1, retry_delay=0.3)
        def flaky() -> str:
            attempts.append(time.monotonic())
            if len(attempts) == 1:
                raise ValueError("first attempt fails")
            return "ok"

        bus.subscribe(step_when_retrying(clock, offset))

        with Flow("stepped") as flow:
            flaky()
        with anyio.fail_after(4):
            state = await flow.run_async(bus=bus, clock=clock)  # type: ignore[arg-type]
        assert state.is_successful()
        assert 0.25 <= attempts[1] - attempts[0] < 1.5
        retrying = [s for s in recorder.states("flaky") if isinstance(s, Retrying)]
        assert len(retrying) == 1  # its start_time stays a wall-clock time
        assert retrying[0].start_time is not None
