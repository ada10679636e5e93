"""Specification of the test helpers shipped in ``asyncflow.testing``: FakeClock, EventRecorder."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from asyncflow import EventBus, Flow, task
from asyncflow.clock import Clock
from asyncflow.engine.state import Pending, Running, Scheduled, Success
from asyncflow.testing import EventRecorder, FakeClock


async def settle() -> None:
    """Let every task woken so far run until it blocks again."""
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


class TestFakeClock:
    def test_it_starts_at_zero_by_default(self) -> None:
        assert FakeClock().now() == 0.0

    def test_it_starts_at_the_given_reading(self) -> None:
        clock = FakeClock(start=1_700_000_000)
        assert clock.now() == 1_700_000_000.0
        assert isinstance(clock.now(), float)

    def test_it_is_a_clock_the_engine_may_jump(self) -> None:
        clock = FakeClock()
        assert isinstance(clock, Clock)
        assert clock.autojump is True

    def test_advance_moves_it_forward_by_the_given_seconds(self) -> None:
        clock = FakeClock(start=10)
        clock.advance(5)
        clock.advance(0.5)
        assert clock.now() == 15.5

    def test_advance_by_a_negative_amount_raises_value_error(self) -> None:
        clock = FakeClock(start=10)
        with pytest.raises(ValueError, match="cannot go back"):
            clock.advance(-1)
        assert clock.now() == 10.0

    def test_jump_to_moves_it_to_the_given_reading(self) -> None:
        clock = FakeClock(start=10)
        clock.jump_to(42)
        assert clock.now() == 42.0

    def test_jump_to_the_current_reading_is_allowed(self) -> None:
        clock = FakeClock(start=10)
        clock.jump_to(10)
        assert clock.now() == 10.0

    def test_jump_to_an_earlier_reading_raises_value_error(self) -> None:
        clock = FakeClock(start=10)
        with pytest.raises(ValueError, match="cannot go back"):
            clock.jump_to(9.5)
        assert clock.now() == 10.0

    def test_its_repr_shows_the_reading_and_the_sleepers(self) -> None:
        assert repr(FakeClock(start=3)) == "FakeClock(now=3.0, sleepers=0)"

    def test_next_deadline_is_none_without_sleepers(self) -> None:
        assert FakeClock().next_deadline() is None

    async def test_next_deadline_is_the_earliest_deadline_anyone_sleeps_until(self) -> None:
        clock = FakeClock()
        async with anyio.create_task_group() as tg:
            for deadline in (30, 10, 20):
                tg.start_soon(clock.sleep_until, deadline)
            await settle()
            assert clock.next_deadline() == 10
            assert repr(clock) == "FakeClock(now=0.0, sleepers=3)"
            clock.jump_to(15)
            await settle()
            assert clock.next_deadline() == 20
            clock.jump_to(30)
        assert clock.next_deadline() is None

    async def test_sleep_until_a_past_deadline_returns_at_once(self) -> None:
        clock = FakeClock(start=100)
        await clock.sleep_until(50)
        await clock.sleep_until(100)
        assert clock.now() == 100.0
        assert clock.next_deadline() is None

    async def test_sleepers_stay_asleep_until_their_deadline(self) -> None:
        clock = FakeClock()
        woke: list[float] = []

        async def sleeper(deadline: float) -> None:
            await clock.sleep_until(deadline)
            woke.append(deadline)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, 10)
            await settle()
            clock.advance(9.5)
            await settle()
            assert woke == []
            clock.advance(0.5)
            await settle()
            assert woke == [10]

    async def test_sleepers_wake_in_deadline_order(self) -> None:
        clock = FakeClock()
        woke: list[str] = []

        async def sleeper(name: str, deadline: float) -> None:
            await clock.sleep_until(deadline)
            woke.append(name)

        async with anyio.create_task_group() as tg:
            for name, deadline in [("c", 30), ("a", 10), ("d", 40), ("b", 20), ("b2", 20)]:
                tg.start_soon(sleeper, name, deadline)
            await settle()
            clock.jump_to(25)
            await settle()
            assert woke == ["a", "b", "b2"]
            clock.jump_to(100)
        assert woke == ["a", "b", "b2", "c", "d"]

    async def test_a_cancelled_sleeper_is_forgotten(self) -> None:
        clock = FakeClock()
        woke: list[float] = []

        async def sleeper(deadline: float) -> None:
            await clock.sleep_until(deadline)
            woke.append(deadline)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, 20)
            with anyio.CancelScope() as scope:
                tg.start_soon(clock.sleep_until, 5)  # not in scope: kept
                await settle()
                assert clock.next_deadline() == 5
                scope.cancel()
                await clock.sleep_until(10)  # cancelled at once
            await settle()
            assert clock.next_deadline() == 5
            clock.jump_to(5.0)
            await settle()
            assert clock.next_deadline() == 20
            assert repr(clock) == "FakeClock(now=5.0, sleepers=1)"
            tg.cancel_scope.cancel()
        assert woke == []
        assert clock.next_deadline() is None
        assert repr(clock) == "FakeClock(now=5.0, sleepers=0)"


@task
async def one() -> int:
    return 1


@task
async def plus_one(x: int) -> int:
    return x + 1


class TestEventRecorder:
    def test_it_starts_empty(self) -> None:
        recorder = EventRecorder()
        assert recorder.events == []
        assert recorder.states() == []
        assert recorder.states("anything") == []

    async def test_it_records_every_event_of_a_run_in_order(self) -> None:
        bus = EventBus()
        recorder = EventRecorder()
        bus.subscribe(recorder)
        with Flow("recorded") as flow:
            plus_one(one())
        await flow.run_async(bus=bus)
        assert [e.seq for e in recorder.events] == [1, 2, 3, 4, 5, 6]
        assert [(e.task_name, type(e.new_state)) for e in recorder.events] == [
            (None, Running),
            ("one", Running),
            ("one", Success),
            ("plus_one", Running),
            ("plus_one", Success),
            (None, Success),
        ]

    async def test_states_gives_the_new_states_of_one_task(self, bus: EventBus) -> None:
        recorder = EventRecorder()
        bus.subscribe(recorder)
        with Flow("recorded") as flow:
            plus_one(one())
        await flow.run_async(bus=bus)
        assert recorder.states("plus_one") == [
            Running("Starting task run."),
            Success("Task run succeeded.", 2),
        ]
        assert recorder.states("unknown") == []

    async def test_states_without_a_name_gives_the_flow_states(self, bus: EventBus) -> None:
        recorder = EventRecorder()
        bus.subscribe(recorder)
        with Flow("recorded") as flow:
            one()
        await flow.run_async(bus=bus)
        assert recorder.states() == recorder.states(None)
        assert [type(s) for s in recorder.states()] == [Running, Success]
        assert recorder.states()[0] == Running("Running flow.")
        assert recorder.states()[1].message == "All reference tasks succeeded."
        assert type(recorder.events[0].old_state) is Scheduled
        assert recorder.events[1].old_state == Pending()

    async def test_clear_forgets_what_was_recorded(self, bus: EventBus) -> None:
        recorder = EventRecorder()
        bus.subscribe(recorder)
        with Flow("recorded") as flow:
            one()
        await flow.run_async(bus=bus, run_id="first")
        recorder.clear()
        assert recorder.events == []
        await flow.run_async(bus=bus, run_id="second")
        assert [e.run_id for e in recorder.events] == ["second"] * 4
        assert [e.seq for e in recorder.events] == [1, 2, 3, 4]
