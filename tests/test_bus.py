"""Specification of the event bus: StateChange events, subscribers, filters, streams, overflow."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from asyncflow import (
    EventBus,
    Flow,
    StateChange,
    Subscription,
    Task,
    by_flow,
    by_run,
    by_state,
    by_task,
    default_bus,
    task,
)
from asyncflow.engine.state import (
    Failed,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    Success,
    TriggerFailed,
)
from asyncflow.exceptions import BusOverflowError
from asyncflow.testing import EventRecorder, FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

# -- flows used throughout ------------------------------------------------------------------


@task
async def ok() -> int:
    return 1


@task
async def boom(x: int) -> int:
    raise ValueError("nope")


@task
async def after(x: int) -> int:
    return x


def pipeline() -> tuple[Flow, Task, Task, Task]:
    """``ok -> boom -> after``: a success, a failure and a trigger failure (7 events)."""
    with Flow("pipeline") as flow:
        a = ok()
        b = boom(a)
        c = after(b)
    return flow, a, b, c


PIPELINE_EVENTS: list[tuple[str | None, type[State]]] = [
    (None, Running),
    ("ok", Running),
    ("ok", Success),
    ("boom", Running),
    ("boom", Failed),
    ("after", TriggerFailed),
    (None, Failed),
]


def chain(n: int = 5, name: str = "chain") -> Flow:
    """``ok -> after -> after -> ...``: ``n`` successful tasks, ``2 * n + 2`` events."""
    with Flow(name) as flow:
        t = ok()
        for _ in range(n - 1):
            t = after(t)
    return flow


def kinds(events: list[StateChange]) -> list[tuple[str | None, type[State]]]:
    return [(e.task_name, type(e.new_state)) for e in events]


def is_final_flow_event(event: StateChange) -> bool:
    return event.is_flow_event and event.new_state.is_finished()


# -- the event ------------------------------------------------------------------------------


class TestStateChange:
    async def test_each_event_names_its_run_flow_and_task(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, a, b, c = pipeline()
        await flow.run_async(bus=bus, run_id="run-1")
        events = recorder.events
        assert kinds(events) == PIPELINE_EVENTS
        assert {e.run_id for e in events} == {"run-1"}
        assert {e.flow_name for e in events} == {"pipeline"}
        assert [e.task_run_id for e in events] == [
            None,
            f"run-1/{a.slug}",
            f"run-1/{a.slug}",
            f"run-1/{b.slug}",
            f"run-1/{b.slug}",
            f"run-1/{c.slug}",
            None,
        ]
        assert [e.map_index for e in events] == [None] * 7

    async def test_the_subject_is_the_task_or_the_flow_that_moved(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, a, b, c = pipeline()
        await flow.run_async(bus=bus)
        subjects = [e.subject for e in recorder.events]
        assert all(s is e for s, e in zip(subjects, [flow, a, a, b, b, c, flow], strict=True))

    async def test_only_the_flows_own_transitions_have_no_task_name(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, *_ = pipeline()
        await flow.run_async(bus=bus)
        flow_events = [e for e in recorder.events if e.is_flow_event]
        assert [e.seq for e in flow_events] == [1, 7]
        assert all(e.task_name is None and e.task_run_id is None for e in flow_events)
        assert all(e.task_name is not None for e in recorder.events if not e.is_flow_event)

    async def test_seq_counts_from_one_in_each_run(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, *_ = pipeline()
        await flow.run_async(bus=bus, run_id="first")
        await flow.run_async(bus=bus, run_id="second")
        assert [(e.run_id, e.seq) for e in recorder.events] == [
            *[("first", n) for n in range(1, 8)],
            *[("second", n) for n in range(1, 8)],
        ]

    async def test_concurrent_runs_on_one_bus_each_count_their_own_seq(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flows = {f"run-{i}": chain(4, name=f"chain-{i}") for i in range(3)}
        async with anyio.create_task_group() as tg:
            for run_id, flow in flows.items():
                tg.start_soon(lambda f=flow, r=run_id: f.run_async(bus=bus, run_id=r))
        for run_id in flows:
            seqs = [e.seq for e in recorder.events if e.run_id == run_id]
            assert seqs == list(range(1, 11))

    async def test_the_timestamp_is_read_from_the_runs_clock(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        attempts: list[int] = []

        @task(max_retries=1, retry_delay=timedelta(seconds=30))
        async def flaky() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise ValueError("first attempt fails")
            return "done"

        with Flow("clocked") as flow:
            flaky()
        clock = FakeClock(start=1_000)
        await flow.run_async(bus=bus, clock=clock)
        assert [(type(e.new_state), e.timestamp) for e in recorder.events] == [
            (Running, 1_000.0),
            (Running, 1_000.0),
            (Failed, 1_000.0),
            (Retrying, 1_000.0),
            (Running, 1_030.0),
            (Success, 1_030.0),
            (Success, 1_030.0),
        ]

    async def test_each_old_state_is_the_previous_new_state_of_the_same_subject(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        attempts: list[int] = []

        @task(max_retries=2, retry_delay=0)
        async def flaky(x: int) -> int:
            attempts.append(x)
            if len(attempts) < 3:
                raise ValueError("not yet")
            return x

        with Flow("chained") as flow:
            a = ok()
            b = flaky(a)
            boom(b)
        await flow.run_async(bus=bus, clock=FakeClock())
        by_subject: dict[int, list[StateChange]] = {}
        for event in recorder.events:
            by_subject.setdefault(id(event.subject), []).append(event)
        assert len(by_subject) == 4
        for events in by_subject.values():
            first = Scheduled if events[0].is_flow_event else Pending
            assert type(events[0].old_state) is first
            for previous, event in pairwise(events):
                assert event.old_state is previous.new_state
        flaky_events = [e for e in recorder.events if e.task_name == "flaky"]
        assert [type(e.new_state) for e in flaky_events] == [
            Running,
            Failed,
            Retrying,
            Running,
            Failed,
            Retrying,
            Running,
            Success,
        ]

    async def test_an_event_is_frozen(self, bus: EventBus, recorder: EventRecorder) -> None:
        flow, *_ = pipeline()
        await flow.run_async(bus=bus)
        event = recorder.events[0]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.seq = 99  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.new_state = Success()  # type: ignore[misc]
        assert event.seq == 1


class TestPublishing:
    async def test_every_transition_is_published_exactly_once(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        calls: list[tuple[Any, State, State]] = []

        def spy(obj: Any, old: State, new: State) -> None:
            calls.append((obj, old, new))

        @task(state_handlers=[spy])
        async def first() -> int:
            return 1

        @task(state_handlers=[spy], max_retries=1, retry_delay=0)
        async def second(x: int) -> int:
            raise ValueError("always")

        with Flow("spied", state_handlers=[spy]) as flow:
            second(first())
        await flow.run_async(bus=bus, clock=FakeClock())
        published = [(e.subject, e.old_state, e.new_state) for e in recorder.events]
        assert len(published) == len(calls) == 9
        for call, event in zip(calls, published, strict=True):
            assert all(x is y for x, y in zip(call, event, strict=True))

    async def test_an_event_carries_the_state_a_handler_replaced_it_with(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        rescued = Success("rescued", 42)

        def rescue(obj: Task, old: State, new: State) -> State | None:
            return rescued if new.is_failed() else None

        @task(state_handlers=[rescue])
        async def fragile(x: int) -> int:
            raise ValueError("nope")

        with Flow("rescued") as flow:
            result = after(fragile(ok()))
        state = await flow.run_async(bus=bus)
        assert state == Success("All reference tasks succeeded.", state.result)
        assert state.result[result] == Success("Task run succeeded.", 42)
        fragile_events = [e for e in recorder.events if e.task_name == "fragile"]
        assert [e.new_state for e in fragile_events] == [Running("Starting task run."), rescued]
        assert fragile_events[1].new_state is rescued
        assert not any(isinstance(e.new_state, Failed) for e in recorder.events)

    async def test_the_last_handler_settles_the_published_state(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        def first(obj: Task, old: State, new: State) -> State | None:
            return Failed("first") if isinstance(new, Success) else None

        async def second(obj: Task, old: State, new: State) -> State | None:
            await anyio.lowlevel.checkpoint()
            return Success("second", new.message) if isinstance(new, Failed) else None

        @task(state_handlers=[first, second])
        async def handled() -> int:
            return 1

        with Flow("handled") as flow:
            handled()
        await flow.run_async(bus=bus)
        assert recorder.states("handled") == [
            Running("Starting task run."),
            Success("second", "first"),
        ]


class TestSubscribers:
    async def test_sync_and_async_subscribers_get_every_event_in_seq_order(
        self, bus: EventBus
    ) -> None:
        sync_got: list[StateChange] = []
        async_got: list[StateChange] = []

        def sync_subscriber(event: StateChange) -> None:
            sync_got.append(event)

        async def async_subscriber(event: StateChange) -> None:
            await anyio.lowlevel.checkpoint()
            async_got.append(event)

        bus.subscribe(sync_subscriber)
        bus.subscribe(async_subscriber)
        await chain(5).run_async(bus=bus)
        assert [e.seq for e in sync_got] == list(range(1, 13))
        assert async_got == sync_got
        assert all(a is b for a, b in zip(async_got, sync_got, strict=True))

    async def test_an_async_callable_object_is_awaited(self, bus: EventBus) -> None:
        class Collector:
            def __init__(self) -> None:
                self.seqs: list[int] = []

            async def __call__(self, event: StateChange) -> None:
                await anyio.lowlevel.checkpoint()
                self.seqs.append(event.seq)

        collector = Collector()
        sub = bus.subscribe(collector)
        await chain(2).run_async(bus=bus)
        assert collector.seqs == [1, 2, 3, 4, 5, 6]
        assert sub.delivered == 6

    async def test_the_bus_lists_its_live_subscriptions(self, bus: EventBus) -> None:
        first = bus.subscribe(EventRecorder())
        second = bus.subscribe(EventRecorder())
        assert bus.subscriptions == (first, second)
        first.close()
        assert bus.subscriptions == (second,)

    async def test_a_subscriber_that_raises_is_isolated(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        def sync_raises(event: StateChange) -> None:
            raise RuntimeError("sync subscriber broke")

        async def async_raises(event: StateChange) -> None:
            await anyio.lowlevel.checkpoint()
            raise RuntimeError("async subscriber broke")

        sync_sub = bus.subscribe(sync_raises)
        async_sub = bus.subscribe(async_raises)
        state = await chain(3).run_async(bus=bus)
        assert state == Success("All reference tasks succeeded.", state.result)
        assert (sync_sub.errors, async_sub.errors) == (8, 8)
        assert (sync_sub.closed, async_sub.closed) == (False, False)
        assert [e.seq for e in recorder.events] == list(range(1, 9))

    async def test_a_subscriber_that_raises_once_still_gets_the_events_after(
        self, bus: EventBus
    ) -> None:
        got: list[int] = []

        def picky(event: StateChange) -> None:
            if event.seq == 2:
                raise KeyError("no second event")
            got.append(event.seq)

        sub = bus.subscribe(picky)
        await chain(2).run_async(bus=bus)
        assert got == [1, 3, 4, 5, 6]
        assert sub.errors == 1

    async def test_when_run_async_returns_a_slow_async_subscriber_has_every_event(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        got: list[StateChange] = []

        async def slow(event: StateChange) -> None:
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            got.append(event)

        bus.subscribe(slow)
        await chain(10).run_async(bus=bus)
        delivered = len(got)
        assert delivered == 22
        assert got == recorder.events

    async def test_runs_publish_to_the_default_bus_unless_given_one(self) -> None:
        assert default_bus() is default_bus()
        assert isinstance(default_bus(), EventBus)
        recorder = EventRecorder()
        flow, *_ = pipeline()
        with default_bus().subscribe(recorder, filter=by_run("on-the-default-bus")):
            await flow.run_async(run_id="on-the-default-bus")
            await flow.run_async(bus=EventBus(), run_id="on-the-default-bus")
        assert kinds(recorder.events) == PIPELINE_EVENTS
        assert [e.seq for e in recorder.events] == list(range(1, 8))


class TestFilters:
    @pytest.mark.parametrize(
        ("event_filter", "expected"),
        [
            (by_flow("pipeline"), PIPELINE_EVENTS),
            (by_flow("another"), []),
            (by_task("boom"), [("boom", Running), ("boom", Failed)]),
            (by_task("missing"), []),
            (by_state(Failed), [("boom", Failed), ("after", TriggerFailed), (None, Failed)]),
            (by_state(TriggerFailed), [("after", TriggerFailed)]),
            (by_state(Success, TriggerFailed), [("ok", Success), ("after", TriggerFailed)]),
            (
                by_task("ok") | by_task("after"),
                [("ok", Running), ("ok", Success), ("after", TriggerFailed)],
            ),
            (by_state(Failed) & by_task("boom"), [("boom", Failed)]),
            (by_state(Failed) & ~by_task("boom"), [("after", TriggerFailed), (None, Failed)]),
            (
                ~by_state(Running),
                [("ok", Success), ("boom", Failed), ("after", TriggerFailed), (None, Failed)],
            ),
            (
                by_state(Failed) & (lambda e: not e.is_flow_event),
                [("boom", Failed), ("after", TriggerFailed)],
            ),
            (
                by_task("ok") | (lambda e: e.seq == 7),
                [("ok", Running), ("ok", Success), (None, Failed)],
            ),
            (lambda e: e.is_flow_event, [(None, Running), (None, Failed)]),
            (by_run("filtered"), PIPELINE_EVENTS),
            (by_run("another"), []),
        ],
        ids=[
            "by_flow",
            "by_flow-other",
            "by_task",
            "by_task-missing",
            "by_state-Failed-counts-subclasses",
            "by_state-TriggerFailed",
            "by_state-several-classes",
            "or",
            "and",
            "and-not",
            "not",
            "and-lambda",
            "or-lambda",
            "plain-lambda",
            "by_run",
            "by_run-other",
        ],
    )
    async def test_a_subscriber_gets_only_the_events_its_filter_accepts(
        self,
        bus: EventBus,
        event_filter: Callable[[StateChange], bool],
        expected: list[tuple[str | None, type[State]]],
    ) -> None:
        got: list[StateChange] = []
        bus.subscribe(got.append, filter=event_filter)
        flow, *_ = pipeline()
        await flow.run_async(bus=bus, run_id="filtered")
        assert kinds(got) == expected

    async def test_by_run_separates_two_runs_on_one_bus(self, bus: EventBus) -> None:
        got: list[StateChange] = []
        bus.subscribe(got.append, filter=by_run("second"))
        flow, *_ = pipeline()
        await flow.run_async(bus=bus, run_id="first")
        await flow.run_async(bus=bus, run_id="second")
        assert [(e.run_id, e.seq) for e in got] == [("second", n) for n in range(1, 8)]

    def test_by_state_needs_a_state_class(self) -> None:
        with pytest.raises(TypeError, match="at least one State class"):
            by_state()

    def test_filters_have_a_readable_repr(self) -> None:
        combined = (by_task("a") | by_flow("f")) & ~by_state(Failed, TriggerFailed)
        assert repr(combined) == (
            "<EventFilter ((by_task('a') | by_flow('f')) & ~by_state(Failed, TriggerFailed))>"
        )

    async def test_a_filter_that_raises_counts_an_error_and_the_others_get_the_event(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        got: list[StateChange] = []

        def broken_on_flow_events(event: StateChange) -> bool:
            if event.is_flow_event:
                raise RuntimeError("filter broke")
            return True

        sub = bus.subscribe(got.append, filter=broken_on_flow_events)
        also: list[StateChange] = []
        bus.subscribe(also.append)
        flow, *_ = pipeline()
        state = await flow.run_async(bus=bus)
        assert state == Failed("Some reference tasks failed.", state.result)
        assert sub.errors == 2
        assert [e.seq for e in got] == [2, 3, 4, 5, 6]
        assert kinds(recorder.events) == PIPELINE_EVENTS
        assert also == recorder.events


class TestSubscription:
    async def test_the_decorator_form_returns_a_subscription(self, bus: EventBus) -> None:
        got: list[StateChange] = []

        @bus.subscribe(filter=by_task("boom"))
        def on_boom(event: StateChange) -> None:
            got.append(event)

        assert isinstance(on_boom, Subscription)
        assert bus.subscriptions == (on_boom,)
        assert on_boom.overflow == "block"
        flow, *_ = pipeline()
        await flow.run_async(bus=bus)
        assert kinds(got) == [("boom", Running), ("boom", Failed)]
        assert on_boom.delivered == 2

    async def test_the_decorator_form_takes_buffer_and_overflow(self, bus: EventBus) -> None:
        @bus.subscribe(buffer=3, overflow="drop_oldest")
        async def on_event(event: StateChange) -> None:
            pass

        assert (on_event.buffer, on_event.overflow) == (3, "drop_oldest")

    async def test_close_stops_delivery(self, bus: EventBus) -> None:
        got: list[StateChange] = []
        sub = bus.subscribe(got.append)
        flow, *_ = pipeline()
        await flow.run_async(bus=bus, run_id="before")
        sub.close()
        sub.close()  # closing twice is harmless
        await flow.run_async(bus=bus, run_id="after")
        assert sub.closed
        assert sub not in bus.subscriptions
        assert {e.run_id for e in got} == {"before"}
        assert len(got) == 7

    async def test_a_subscription_is_a_context_manager_that_closes_it(self, bus: EventBus) -> None:
        recorder = EventRecorder()
        flow, *_ = pipeline()
        with bus.subscribe(recorder) as sub:
            assert isinstance(sub, Subscription)
            await flow.run_async(bus=bus, run_id="inside")
        await flow.run_async(bus=bus, run_id="outside")
        assert sub.closed
        assert {e.run_id for e in recorder.events} == {"inside"}

    @pytest.mark.parametrize("handler", [42, "print", object()])
    def test_subscribing_something_not_callable_raises_type_error(
        self, bus: EventBus, handler: object
    ) -> None:
        with pytest.raises(TypeError, match="subscriber must be callable"):
            bus.subscribe(handler)  # type: ignore[call-overload]
        assert bus.subscriptions == ()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"buffer": 0}, "buffer must be at least 1"),
            ({"buffer": -5}, "buffer must be at least 1"),
            ({"overflow": "drop_newest"}, "overflow must be one of"),
            ({"overflow": "BLOCK"}, "overflow must be one of"),
        ],
    )
    def test_a_bad_buffer_or_overflow_raises_value_error(
        self, bus: EventBus, kwargs: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            bus.subscribe(print, **kwargs)
        assert bus.subscriptions == ()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"buffer": 0}, "buffer must be at least 1"),
            ({"overflow": "drop_newest"}, "overflow must be one of"),
        ],
    )
    async def test_a_stream_with_a_bad_buffer_or_overflow_raises_value_error(
        self, bus: EventBus, kwargs: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            async with bus.stream(**kwargs):
                pass
        assert bus.subscriptions == ()


class TestStream:
    async def test_a_stream_yields_the_events_of_a_run_while_it_goes(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        got: list[StateChange] = []

        async def consume(events: Any) -> None:
            async for event in events:
                got.append(event)
                if is_final_flow_event(event):
                    break

        flow, *_ = pipeline()
        async with (
            bus.stream(filter=by_flow("pipeline")) as events,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(consume, events)
            await flow.run_async(bus=bus)
        assert kinds(got) == PIPELINE_EVENTS
        assert got == recorder.events

    async def test_a_stream_applies_its_filter(self, bus: EventBus) -> None:
        got: list[StateChange] = []
        flow, *_ = pipeline()
        async with bus.stream(filter=by_state(Failed)) as events:
            async with anyio.create_task_group() as tg:
                tg.start_soon(flow.run_async, None)  # default bus: not this stream
                await flow.run_async(bus=bus)
            async for event in events:
                got.append(event)
                if is_final_flow_event(event):
                    break
        assert kinds(got) == [("boom", Failed), ("after", TriggerFailed), (None, Failed)]

    async def test_leaving_the_stream_block_ends_the_iteration(self, bus: EventBus) -> None:
        got: list[StateChange] = []

        async def consume_all(events: Any) -> None:
            async for event in events:
                got.append(event)

        async with anyio.create_task_group() as tg:
            async with bus.stream() as events:
                tg.start_soon(consume_all, events)
                await chain(2).run_async(bus=bus)
                await anyio.wait_all_tasks_blocked()
            # Leaving the stream ends consume_all's loop, so the task group can exit.
            assert bus.subscriptions == ()
        assert [e.seq for e in got] == [1, 2, 3, 4, 5, 6]
        assert bus.subscriptions == ()

    async def test_a_stream_that_overflows_with_error_raises_to_its_reader(
        self, bus: EventBus
    ) -> None:
        async with bus.stream(buffer=2, overflow="error") as events:
            state = await chain(3).run_async(bus=bus)
            assert state.is_successful()
            with pytest.raises(BusOverflowError, match="fell behind by more than 2 events"):
                async for _ in events:
                    pass
            assert events.subscription.closed
            assert events.subscription.errors == 1

    async def test_a_stream_that_overflows_with_drop_oldest_keeps_the_newest(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        async with bus.stream(buffer=2, overflow="drop_oldest") as events:
            await chain(3).run_async(bus=bus)
            newest = [await anext(events), await anext(events)]
        assert newest == recorder.events[-2:]
        assert events.subscription.dropped == 6


class TestOverflow:
    """A slow async subscriber (stuck until ``gate`` opens) with ``buffer=2``."""

    @staticmethod
    def gated(gate: anyio.Event, got: list[StateChange]) -> Callable[[StateChange], Any]:
        async def slow(event: StateChange) -> None:
            await gate.wait()
            got.append(event)

        return slow

    async def test_block_makes_the_run_wait_and_delivers_everything_in_order(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        got: list[StateChange] = []
        sub = bus.subscribe(self.gated(gate, got), buffer=2, overflow="block")
        async with chain(5).start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            # One event in the handler, two in the buffer, the run waits to publish the 4th.
            assert not run.done
            assert run.state == Running("Running flow.")
            assert [e.seq for e in recorder.events] == [1, 2, 3, 4]
            gate.set()
            final = await run.wait()
        assert final == Success("All reference tasks succeeded.", final.result)
        assert [e.seq for e in got] == list(range(1, 13))
        assert got == recorder.events
        assert (sub.dropped, sub.errors, sub.delivered) == (0, 0, 12)

    async def test_drop_oldest_lets_the_run_go_on_and_counts_what_it_dropped(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        got: list[StateChange] = []
        sub = bus.subscribe(self.gated(gate, got), buffer=2, overflow="drop_oldest")
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: chain(5).run_async(bus=bus))
            await anyio.wait_all_tasks_blocked()
            # The run published everything although the subscriber took nothing.
            assert len(recorder.events) == 12
            assert is_final_flow_event(recorder.events[-1])
            assert got == []
            gate.set()
        assert sub.dropped > 0
        assert len(got) + sub.dropped == 12
        assert got[-2:] == recorder.events[-2:]  # the newest survive
        assert [e.seq for e in got] == sorted(e.seq for e in got)
        assert sub.errors == 0

    async def test_error_closes_the_subscription_with_bus_overflow_error(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        got: list[StateChange] = []
        sub = bus.subscribe(self.gated(gate, got), buffer=2, overflow="error")
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: chain(5).run_async(bus=bus))
            await anyio.wait_all_tasks_blocked()
            assert len(recorder.events) == 12  # the run did not wait
            assert sub.closed
            assert sub not in bus.subscriptions
            assert isinstance(sub.error, BusOverflowError)
            assert str(sub.error) == f"{sub!r} fell behind by more than 2 events"
            assert sub.errors == 1
            gate.set()
        assert len(got) <= 1
        assert recorder.events[-1].new_state.is_successful()
