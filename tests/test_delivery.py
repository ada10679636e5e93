"""Specification of event delivery: nothing hangs a run, nothing is lost, order holds.

Every event a subscription matches is either delivered to it or counted in its ``dropped``;
each subscriber sees a run's events in ``seq`` order, also when publishers wait for room; a
subscriber that never returns cannot hold up the end or the cancellation of a run; whatever a
subscriber raises stays with it.
"""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

from asyncflow import EventBus, Flow, StateChange, task
from asyncflow.engine import signals
from asyncflow.engine.state import Cancelled, Success
from asyncflow.testing import EventRecorder


@task
async def step(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x + 1


@task
async def nap(x: int) -> int:
    await anyio.sleep(0.002)
    return x


def chain(n: int, fn: object = step, name: str = "chain") -> Flow:
    with Flow(name) as flow:
        t = fn(0)  # type: ignore[operator]
        for _ in range(n - 1):
            t = fn(t)  # type: ignore[operator]
    return flow


def wide(n: int, name: str = "wide") -> Flow:
    with Flow(name) as flow:
        for i in range(n):
            step(i)
    return flow


class TestAStuckSubscriber:
    """A subscriber that never returns holds up neither the end nor the cancel of a run."""

    @pytest.mark.realtime
    async def test_cancelling_the_caller_returns_at_once(self) -> None:
        bus = EventBus(drain_timeout=60)

        async def stuck(event: StateChange) -> None:
            await anyio.sleep_forever()

        sub = bus.subscribe(stuck)
        started = time.monotonic()
        with anyio.fail_after(10), anyio.move_on_after(0.3) as scope:
            await chain(3).run_async(bus=bus)
        assert scope.cancelled_caught
        assert time.monotonic() - started < 2
        # One event was taken by the stuck handler, the others waited in its buffer.
        assert sub.delivered + sub.dropped == 8
        assert sub.dropped >= 7

    @pytest.mark.realtime
    async def test_the_end_of_a_run_waits_for_it_only_for_the_drain_timeout(self) -> None:
        bus = EventBus(drain_timeout=0.2)

        async def stuck(event: StateChange) -> None:
            await anyio.sleep_forever()

        sub = bus.subscribe(stuck)
        recorder = EventRecorder()
        fine = bus.subscribe(recorder)
        started = time.monotonic()
        with anyio.fail_after(10):
            state = await chain(3).run_async(bus=bus)
        assert state.is_successful()
        assert 0.2 <= time.monotonic() - started < 2
        assert (sub.delivered, sub.dropped) == (0, 8)
        assert (fine.delivered, fine.dropped) == (8, 0)

    @pytest.mark.realtime
    async def test_a_slow_subscriber_that_makes_progress_is_not_given_up(self) -> None:
        bus = EventBus(drain_timeout=0.1)
        got: list[int] = []

        async def slow(event: StateChange) -> None:
            await anyio.sleep(0.03)  # each event well within the drain timeout
            got.append(event.seq)

        sub = bus.subscribe(slow)
        await chain(5).run_async(bus=bus)
        assert got == list(range(1, 13))  # 0.36 s in all: more than the drain timeout
        assert sub.dropped == 0

    @pytest.mark.realtime
    async def test_a_runtime_cancels_and_shuts_down_despite_it(self) -> None:
        from asyncflow.integrations import Runtime

        bus = EventBus(drain_timeout=60)

        async def stuck(event: StateChange) -> None:
            await anyio.sleep_forever()

        bus.subscribe(stuck)

        @task
        async def forever() -> None:
            await anyio.sleep_forever()

        with Flow("forever") as flow:
            forever()
        with anyio.fail_after(5):
            async with Runtime({"forever": flow}, bus=bus) as runtime:
                record = await runtime.start("forever")
                await anyio.sleep(0.05)
                runtime.cancel(record.id)
                state = await record.wait()
                assert isinstance(state, Cancelled)
                await runtime.start("forever")  # left running: shutdown cancels it

    def test_the_drain_timeout_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="drain_timeout must be a positive"):
            EventBus(drain_timeout=0)


class TestBlockingSubscribers:
    """``overflow="block"``: back-pressure, without losing or reordering events."""

    @pytest.mark.realtime
    async def test_a_cancelled_run_delivers_or_counts_every_event(self) -> None:
        bus = EventBus()
        got: list[int] = []

        async def slow(event: StateChange) -> None:
            await anyio.sleep(0.005)
            got.append(event.seq)

        sub = bus.subscribe(slow, buffer=1, overflow="block")
        async with wide(50).start(bus=bus) as run:
            await anyio.sleep(0.05)
            run.cancel()
        history = [e async for e in run.events()]
        assert history[-1].new_state == Cancelled("Flow run was cancelled.", run.state.result)
        assert sub.delivered + sub.dropped == len(history)
        assert got == sorted(got)

    async def test_waiting_publishers_are_served_first_come_first_served(self) -> None:
        bus = EventBus()
        got: list[int] = []

        async def slow(event: StateChange) -> None:
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            got.append(event.seq)

        sub = bus.subscribe(slow, buffer=1, overflow="block")
        await wide(40).run_async(bus=bus)
        assert got == list(range(1, 83))
        assert sub.dropped == 0

    async def test_the_default_buffer_keeps_order_under_many_concurrent_runs(self) -> None:
        bus = EventBus()
        seqs: dict[str, list[int]] = {}

        async def subscriber(event: StateChange) -> None:
            await anyio.lowlevel.checkpoint()
            seqs.setdefault(event.run_id, []).append(event.seq)

        bus.subscribe(subscriber, buffer=4)
        flow = wide(30)
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(lambda: flow.run_async(bus=bus))
        assert len(seqs) == 20
        for got in seqs.values():
            assert got == list(range(1, 63))

    async def test_a_cancelled_publisher_leaves_its_event_queued_not_lost(self) -> None:
        bus = EventBus()
        recorder = EventRecorder()
        bus.subscribe(recorder)
        gate = anyio.Event()
        got: list[int] = []

        async def gated(event: StateChange) -> None:
            await gate.wait()
            got.append(event.seq)

        sub = bus.subscribe(gated, buffer=1, overflow="block")
        async with chain(2).start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()  # a publisher waits for room
            run.cancel()
            await anyio.lowlevel.checkpoint()
            gate.set()
        assert got == sorted(got)
        assert sub.delivered + sub.dropped == len(recorder.events)


class TestWhatSubscribersRaise:
    """Whatever a subscriber or filter raises is counted and logged; the run goes on."""

    @pytest.mark.parametrize(
        "raised",
        [signals.FAIL("no"), signals.SKIP("no"), signals.ENDRUN(Success()), KeyboardInterrupt()],
        ids=repr,
    )
    @pytest.mark.parametrize("kind", ["sync", "async"])
    async def test_a_subscriber_raising_it_is_isolated(
        self, raised: BaseException, kind: str
    ) -> None:
        bus = EventBus()
        recorder = EventRecorder()
        bus.subscribe(recorder)

        def sync_raises(event: StateChange) -> None:
            raise raised

        async def async_raises(event: StateChange) -> None:
            await anyio.lowlevel.checkpoint()
            raise raised

        sub = bus.subscribe(sync_raises if kind == "sync" else async_raises)
        state = await chain(3).run_async(bus=bus)
        assert state == Success("All reference tasks succeeded.", state.result)
        assert (sub.errors, sub.delivered) == (8, 8)
        assert len(recorder.events) == 8

    async def test_a_filter_raising_a_signal_is_isolated(self) -> None:
        bus = EventBus()

        def bad_filter(event: StateChange) -> bool:
            raise signals.FAIL("filter")

        sub = bus.subscribe(EventRecorder(), filter=bad_filter)
        state = await chain(2).run_async(bus=bus)
        assert state.is_successful()
        assert sub.errors == 6
