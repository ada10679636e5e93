"""Specification of cancellation: of ``run_async``'s caller, by ``run.cancel()``, at any moment.

Every task that has not finished ends ``Cancelled`` (running ones with "Task run was
cancelled.", the others with the flow's message), its transition and handlers still run, the
flow ends ``Cancelled("Flow run was cancelled.")`` last, and subscribers get the whole history.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
from hypothesis import event as hypothesis_event
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncflow import EventBus, Flow, FlowRun, Task, task
from asyncflow.engine.state import (
    Cancelled,
    Failed,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    Success,
)
from asyncflow.testing import EventRecorder

if TYPE_CHECKING:
    from asyncflow import StateChange

TASK_CANCELLED = Cancelled("Task run was cancelled.")
FLOW_CANCELLED_MESSAGE = "Flow run was cancelled."

#: Which state classes may follow which (exact classes) in one subject's history.
LEGAL_MOVES: dict[type[State], set[type[State]]] = {
    Scheduled: {Running},
    Pending: {Running, Cancelled},
    Running: {Success, Failed, Cancelled},
    Failed: {Retrying},
    Retrying: {Running, Cancelled},
}


def assert_complete_history(events: list[StateChange]) -> None:
    """Seqs 1..n; per subject a legal chain from its first state to one final state."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    histories: dict[int, list[StateChange]] = defaultdict(list)
    for event in events:
        histories[id(event.subject)].append(event)
    for history in histories.values():
        first = Scheduled if history[0].is_flow_event else Pending
        assert type(history[0].old_state) is first
        for previous, event in pairwise(history):
            assert event.old_state is previous.new_state
        for event in history:
            assert type(event.new_state) in LEGAL_MOVES[type(event.old_state)], event
        assert history[-1].new_state.is_finished()
    final = events[-1]
    assert final.is_flow_event
    assert final.new_state.is_finished()
    assert sum(e.is_flow_event and e.new_state.is_finished() for e in events) == 1


def last_states(events: list[StateChange]) -> dict[str | None, State]:
    """The last new state of each task name (``None``: the flow)."""
    return {e.task_name: e.new_state for e in events}


@task
async def blocked_forever() -> None:
    await anyio.Event().wait()


@task
async def downstream(x: Any) -> Any:
    return x


@task
async def quick() -> str:
    return "quick"


def blocking_flow() -> tuple[Flow, Task, Task, Task, Task]:
    """Two tasks blocked forever, one downstream of them, one that finishes at once."""
    with Flow("blocking") as flow:
        first = blocked_forever(task_args={"name": "first"})
        second = blocked_forever(task_args={"name": "second"})
        waiting = downstream(first, upstream_tasks=[second])
        done = quick()
    return flow, first, second, waiting, done


class TestCancellingTheCaller:
    async def test_every_unfinished_task_and_the_flow_end_cancelled(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        slow_got: list[StateChange] = []

        async def slow(event: StateChange) -> None:
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            slow_got.append(event)

        bus.subscribe(slow, buffer=2)
        flow, *_ = blocking_flow()
        returned = False

        async def cancel_when_blocked(scope: anyio.CancelScope) -> None:
            await anyio.wait_all_tasks_blocked()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            with anyio.move_on_after(10) as scope:
                tg.start_soon(cancel_when_blocked, scope)
                await flow.run_async(bus=bus)
                returned = True
        assert scope.cancelled_caught
        assert not returned

        events = recorder.events
        assert_complete_history(events)
        final = events[-1].new_state
        assert final == Cancelled(FLOW_CANCELLED_MESSAGE, final.result)
        assert last_states(events) == {
            None: final,
            "first": TASK_CANCELLED,
            "second": TASK_CANCELLED,
            "downstream": Cancelled(FLOW_CANCELLED_MESSAGE),
            "quick": Success("Task run succeeded.", "quick"),
        }
        assert recorder.states("downstream") == [Cancelled(FLOW_CANCELLED_MESSAGE)]
        assert slow_got == events

    async def test_the_cancellation_reaches_the_caller_after_the_run_is_recorded(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, *_ = blocking_flow()
        seen_at_cancel: list[int] = []

        async def cancel_when_blocked(scope: anyio.CancelScope) -> None:
            await anyio.wait_all_tasks_blocked()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(cancel_when_blocked, scope)
                try:
                    await flow.run_async(bus=bus)
                except anyio.get_cancelled_exc_class():
                    seen_at_cancel.append(len(recorder.events))
                    raise
        assert scope.cancelled_caught
        # When the cancellation reaches the caller, every event has been delivered.
        assert seen_at_cancel == [len(recorder.events)]
        assert recorder.events[-1].new_state.message == FLOW_CANCELLED_MESSAGE


class TestRunCancel:
    async def test_wait_returns_cancelled_without_raising(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, first, second, waiting, done = blocking_flow()
        async with flow.start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            run.cancel()
            final = await run.wait()
        assert final == Cancelled(FLOW_CANCELLED_MESSAGE, final.result)
        assert final is run.state
        assert run.task_states == {
            first: TASK_CANCELLED,
            second: TASK_CANCELLED,
            waiting: Cancelled(FLOW_CANCELLED_MESSAGE),
            done: Success("Task run succeeded.", "quick"),
        }
        assert final.result == run.task_states
        history = [event async for event in run.events()]
        assert history == recorder.events
        assert_complete_history(history)

    async def test_cancelling_twice_is_harmless(self, bus: EventBus) -> None:
        flow, *_ = blocking_flow()
        async with flow.start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            run.cancel()
            run.cancel()
        assert run.state == Cancelled(FLOW_CANCELLED_MESSAGE, run.state.result)

    async def test_cancelling_a_finished_run_changes_nothing(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("finished") as flow:
            downstream(quick())
        async with flow.start(bus=bus) as run:
            final = await run.wait()
            run.cancel()
        assert run.state is final
        assert final == Success("All reference tasks succeeded.", final.result)
        assert len(recorder.events) == 6

    async def test_a_task_waiting_for_a_retry_is_dropped_as_cancelled(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task(max_retries=3, retry_delay=timedelta(hours=1))
        async def flaky() -> None:
            raise ValueError("nope")

        with Flow("retry-dropped") as flow:
            waiting = flaky()
            after_it = downstream(waiting)
        started = time.perf_counter()
        async with flow.start(bus=bus) as run:  # the real clock: an hour, if nobody cancels
            await anyio.wait_all_tasks_blocked()
            assert isinstance(run.task_states[waiting], Retrying)
            run.cancel()
        assert time.perf_counter() - started < 1
        assert run.task_states == {
            waiting: Cancelled(FLOW_CANCELLED_MESSAGE),
            after_it: Cancelled(FLOW_CANCELLED_MESSAGE),
        }
        assert [type(s) for s in recorder.states("flaky")] == [
            Running,
            Failed,
            Retrying,
            Cancelled,
        ]
        assert_complete_history(recorder.events)

    async def test_state_handlers_run_for_the_cancelled_transitions(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        calls: list[tuple[str, type[State], State]] = []

        def on_task(obj: Task, old: State, new: State) -> None:
            calls.append((obj.name, type(old), new))

        async def on_flow(obj: Flow, old: State, new: State) -> None:
            await anyio.lowlevel.checkpoint()  # an async handler may await during a cancellation
            await anyio.lowlevel.checkpoint()
            calls.append(("flow", type(old), new))

        @task(state_handlers=[on_task])
        async def handled() -> None:
            await anyio.Event().wait()

        with Flow("handled", state_handlers=[on_flow]) as flow:
            handled()
        async with flow.start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            run.cancel()
        assert calls == [
            ("flow", Scheduled, Running("Running flow.")),
            ("handled", Pending, Running("Starting task run.")),
            ("handled", Running, TASK_CANCELLED),
            ("flow", Running, run.state),
        ]
        assert run.state == Cancelled(FLOW_CANCELLED_MESSAGE, run.state.result)

    async def test_an_async_task_handler_may_await_and_replace_the_cancelled_state(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        stopped = Cancelled("Stopped by the user.")

        async def explain(obj: Task, old: State, new: State) -> State | None:
            if isinstance(new, Cancelled):
                for _ in range(3):
                    await anyio.lowlevel.checkpoint()
                return stopped
            return None

        @task(state_handlers=[explain])
        async def handled() -> None:
            await anyio.Event().wait()

        with Flow("replaced") as flow:
            t = handled()
        async with flow.start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            run.cancel()
        assert run.task_states == {t: stopped}
        assert recorder.states("handled") == [Running("Starting task run."), stopped]
        assert recorder.states("handled")[-1] is stopped


class Arrivals:
    """Sync tasks in worker threads report here; the test waits until ``n`` have started."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.all_started = anyio.Event()

    def arrive(self) -> None:
        """Called from a task's worker thread."""
        anyio.from_thread.run_sync(self._arrived)

    def _arrived(self) -> None:
        self.count += 1
        if self.count == self.n:
            self.all_started.set()


class TestSyncTasksInThreads:
    @pytest.mark.realtime
    async def test_no_worker_thread_outlives_a_cancelled_run(self, bus: EventBus) -> None:
        arrivals = Arrivals(3)

        @task
        def sleepy(i: int) -> int:
            arrivals.arrive()
            time.sleep(0.05)
            return i

        with Flow("threads") as flow:
            for i in range(3):
                sleepy(i)
        await flow.run_async(bus=bus)  # warm this loop's worker-thread pool for 3 tasks
        warm = set(threading.enumerate())
        arrivals = Arrivals(3)
        async with flow.start(bus=bus) as run:
            await arrivals.all_started.wait()
            assert set(threading.enumerate()) <= warm  # the pool's threads run them
            run.cancel()
        assert run.state == Cancelled(FLOW_CANCELLED_MESSAGE, run.state.result)
        await anyio.sleep(0.1)
        assert set(threading.enumerate()) <= warm

    @pytest.mark.realtime
    async def test_a_sync_task_cancelled_mid_call_ends_cancelled(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        arrivals = Arrivals(1)

        @task
        def sleepy() -> str:
            arrivals.arrive()
            time.sleep(0.05)
            return "slept"

        with Flow("sync-cancelled") as flow:
            t = sleepy()
        async with flow.start(bus=bus) as run:
            await arrivals.all_started.wait()
            run.cancel()
        assert run.state == Cancelled(FLOW_CANCELLED_MESSAGE, run.state.result)
        assert run.task_states == {t: TASK_CANCELLED}

    @pytest.mark.realtime
    async def test_no_task_starts_after_the_run_is_cancelled(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        arrivals = Arrivals(1)

        @task
        def sleepy() -> str:
            arrivals.arrive()
            time.sleep(0.05)
            return "slept"

        with Flow("nothing-after-cancel") as flow:
            downstream(sleepy())
        async with flow.start(bus=bus) as run:
            await arrivals.all_started.wait()
            run.cancel()
        assert recorder.states("downstream") == [Cancelled(FLOW_CANCELLED_MESSAGE)]
        assert_complete_history(recorder.events)


@task
async def busy(n: int) -> int:
    for _ in range(n):
        await anyio.lowlevel.checkpoint()
    return n


@st.composite
def layered_flows(draw: st.DrawFn) -> Flow:
    """A random DAG of ``busy`` tasks: 1-4 layers of 1-4, each on some of the layer above."""
    depth = draw(st.integers(1, 4))
    with Flow("random") as flow:
        above: list[Task] = []
        for _ in range(depth):
            width = draw(st.integers(1, 4))
            layer = []
            for _ in range(width):
                upstream = draw(st.lists(st.sampled_from(above), unique=True)) if above else []
                layer.append(busy(draw(st.integers(0, 6)), upstream_tasks=upstream))
            above = layer
    return flow


class TestCancellingAtRandomMoments:
    @settings(max_examples=25, deadline=None)
    @given(flow=layered_flows(), checkpoints=st.integers(0, 60))
    async def test_every_task_ends_finished_with_a_legal_history(
        self, flow: Flow, checkpoints: int
    ) -> None:
        bus = EventBus()
        recorder = EventRecorder()
        bus.subscribe(recorder)
        run: FlowRun
        async with flow.start(bus=bus) as run:
            for _ in range(checkpoints):
                await anyio.lowlevel.checkpoint()
            run.cancel()
        final = run.state
        hypothesis_event(f"the flow ended {type(final).__name__}")
        assert final in (
            Cancelled(FLOW_CANCELLED_MESSAGE, final.result),
            Success("All reference tasks succeeded.", final.result),
        )
        states = run.task_states
        assert all(isinstance(s, Cancelled | Success) for s in states.values()), states
        if final.is_successful():
            assert all(s.is_successful() for s in states.values())
        history = [event async for event in run.events()]
        assert history == recorder.events
        assert_complete_history(history)
        finished = [e for e in history if not e.is_flow_event and e.new_state.is_finished()]
        assert sorted(id(e.subject) for e in finished) == sorted(id(t) for t in states)


class TestAStuckSubscriber:
    """A subscriber that never returns cannot hang a cancellation (bounded waits)."""

    @pytest.mark.realtime
    async def test_a_cancelled_run_stops_despite_a_stuck_blocking_subscriber(
        self, bus: EventBus
    ) -> None:
        release = anyio.Event()

        async def stuck(event: StateChange) -> None:
            await release.wait()  # never set: this subscriber is stuck for good

        sub = bus.subscribe(stuck, buffer=1, overflow="block")

        @task
        async def forever() -> None:
            await anyio.Event().wait()

        with Flow("stuck-subscriber") as flow:
            forever()

        started = time.monotonic()
        with anyio.fail_after(5):
            with anyio.move_on_after(0.05) as scope:
                await flow.run_async(bus=bus)
        assert scope.cancelled_caught
        assert time.monotonic() - started < 2
        assert sub.dropped >= 1  # what could not be delivered is counted, not lost silently


class TestAnEngineError:
    """A bug inside the engine ends the run visibly: an exception, a Failed flow, no hang."""

    async def test_an_error_while_scheduling_fails_the_run_and_reaches_the_caller(
        self, bus: EventBus, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from asyncflow.runtime import scheduler

        def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("engine bug")

        monkeypatch.setattr(scheduler.Scheduler, "route", broken)
        got: list[StateChange] = []

        async def slow(event: StateChange) -> None:  # a pump is alive when the error hits
            await anyio.lowlevel.checkpoint()
            got.append(event)

        bus.subscribe(slow)

        @task
        async def one() -> int:
            return 1

        with Flow("engine-bug") as flow:
            one()
        with anyio.fail_after(5), pytest.RaisesGroup(RuntimeError, flatten_subgroups=True):
            async with flow.start(bus=bus) as run:
                pass
        assert isinstance(run.state, Failed)
        assert run.state.message == "Unexpected error in the engine: RuntimeError('engine bug')"
        assert got[-1].new_state == run.state  # the final event was delivered

    async def test_an_error_while_finishing_does_not_hang(
        self, bus: EventBus, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from asyncflow.runtime import pipeline

        def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("final state bug")

        monkeypatch.setattr(pipeline, "final_flow_state", broken)
        bus.subscribe(lambda event: None)

        @task
        async def one() -> int:
            return 1

        with Flow("finish-bug") as flow:
            one()
        with anyio.fail_after(5), pytest.raises(BaseException) as info:  # noqa: PT011
            await flow.run_async(bus=bus)
        assert "final state bug" in repr(info.value)


class TestAKeyboardInterruptInATask:
    """Ctrl-C inside task code ends the run with every state recorded, then propagates."""

    @pytest.mark.parametrize("kind", ["sync", "async"])
    def test_final_states_are_recorded_before_it_propagates(self, kind: str) -> None:
        bus = EventBus()
        recorder = EventRecorder()
        bus.subscribe(recorder)
        started = threading.Event()

        @task
        def interrupt_sync() -> None:
            started.wait(5)
            raise KeyboardInterrupt

        @task
        async def interrupt_async() -> None:
            await anyio.sleep(0.01)
            raise KeyboardInterrupt

        @task
        async def sibling() -> None:
            started.set()
            await anyio.sleep(5)

        @task
        def downstream(x: Any) -> None:
            return None

        with Flow("interrupted") as flow:
            i = (interrupt_sync if kind == "sync" else interrupt_async)()
            sibling()
            downstream(i)
        with pytest.raises(KeyboardInterrupt):
            flow.run(bus=bus)
        last = last_states(recorder.events)
        assert all(s.is_finished() for s in last.values()), last
        name = f"interrupt_{kind}"
        assert last[name] == Cancelled(
            "Task run was interrupted: KeyboardInterrupt().", last[name].result
        )
        assert isinstance(last[name].result, KeyboardInterrupt)
        assert type(last["sibling"]) is Cancelled
        assert type(last["downstream"]) is Cancelled
        assert last[None] == Cancelled(
            "Flow run was interrupted: KeyboardInterrupt().", last[None].result
        )
        assert_complete_history(recorder.events)
