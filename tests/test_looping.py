"""Looping: a task raises ``signals.LOOP(result=...)`` to run again with that result.

Each iteration publishes ``Looped(loop_count=n)`` (message ``"Looped (iteration n)."`` unless the
signal gives one); the next iteration reads ``context.task_loop_count`` (``n + 1``) and
``context.task_loop_result``. Retries apply per iteration: a failure in the middle of a loop is
retried at the same iteration with the same loop result, and each iteration has its own
``max_retries``. Retry delays run on a ``FakeClock``.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from asyncflow import Flow, context, task
from asyncflow.engine import signals
from asyncflow.engine.state import (
    Failed,
    Looped,
    Mapped,
    Pending,
    Retrying,
    Running,
    State,
    Success,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from asyncflow import EventBus, Task
    from asyncflow.testing import EventRecorder, FakeClock

RUNNING = (Running, "Starting task run.")
SUCCEEDED = (Success, "Task run succeeded.")
FLOW_SUCCEEDED = (Success, "All reference tasks succeeded.")
DELAY = timedelta(minutes=10)


def shape(states: Iterable[State]) -> list[tuple[type[State], str | None]]:
    return [(type(s), s.message) for s in states]


def one(state: State) -> tuple[type[State], str | None]:
    return (type(state), state.message)


def looped(n: int) -> tuple[type[State], str]:
    return (Looped, f"Looped (iteration {n}).")


async def run(flow: Flow, bus: EventBus, **kw: Any) -> State:
    with anyio.fail_after(5):
        return await flow.run_async(bus=bus, **kw)


def loop_until(stop: int, is_async: bool, seen: list[tuple[Any, ...]]) -> Task:
    """A task summing 1..n over ``stop`` iterations, recording what context says each time."""

    def body() -> int:
        n = context.task_loop_count
        total = context.get("task_loop_result") or 0
        seen.append((n, context.get("task_loop_result"), context.task_run_count))
        if n < stop:
            raise signals.LOOP(result=total + n)
        return total + n

    if is_async:

        @task(name="summing")
        async def summing_async() -> int:
            await anyio.lowlevel.checkpoint()
            return body()

        return summing_async

    @task(name="summing")
    def summing() -> int:
        return body()

    return summing


class TestLoopSignal:
    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    async def test_each_iteration_publishes_looped_with_its_count_and_result(
        self, bus: EventBus, recorder: EventRecorder, is_async: bool
    ) -> None:
        seen: list[tuple[Any, ...]] = []
        with Flow("loop") as flow:
            t = loop_until(4, is_async, seen)()

        state = await run(flow, bus)

        assert one(state) == FLOW_SUCCEEDED
        assert one(state.result[t]) == SUCCEEDED
        assert state.result[t].result == 10
        events = [e for e in recorder.events if e.subject is t]
        assert shape(e.new_state for e in events) == [
            RUNNING,
            looped(1),
            RUNNING,
            looped(2),
            RUNNING,
            looped(3),
            RUNNING,
            SUCCEEDED,
        ]
        assert [
            (e.new_state.loop_count, e.new_state.result)
            for e in events
            if isinstance(e.new_state, Looped)
        ] == [(1, 1), (2, 3), (3, 6)]
        assert events[0].old_state == Pending()
        assert all(a.new_state is b.old_state for a, b in itertools.pairwise(events))

    async def test_context_gives_each_iteration_its_count_and_the_previous_result(
        self, bus: EventBus
    ) -> None:
        seen: list[tuple[Any, ...]] = []
        with Flow("loop-context") as flow:
            loop_until(4, False, seen)()

        await run(flow, bus)

        # (task_loop_count, task_loop_result, task_run_count)
        assert seen == [(1, None, 1), (2, 1, 1), (3, 3, 1), (4, 6, 1)]

    async def test_a_loop_signal_message_becomes_the_looped_message(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task
        def countdown() -> str:
            left = context.get("task_loop_result", 2)
            if left:
                raise signals.LOOP(f"{left} to go", result=left - 1)
            return "lift-off"

        with Flow("loop-message") as flow:
            t = countdown()

        state = await run(flow, bus)

        assert state.result[t].result == "lift-off"
        assert [
            (s.message, s.loop_count, s.result)
            for s in recorder.states("countdown")
            if isinstance(s, Looped)
        ] == [("2 to go", 1, 1), ("1 to go", 2, 0)]

    async def test_a_loop_without_a_result_passes_none_on(self, bus: EventBus) -> None:
        seen = []

        @task
        def twice() -> int:
            seen.append(context.get("task_loop_result", "unset"))
            if context.task_loop_count < 3:
                raise signals.LOOP(result=None)
            return context.task_loop_count

        with Flow("loop-none") as flow:
            t = twice()

        state = await run(flow, bus)

        assert seen == ["unset", None, None]
        assert state.result[t].result == 3

    async def test_downstream_starts_after_the_last_iteration_with_its_result(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        seen: list[tuple[Any, ...]] = []

        @task
        def after(total: int) -> str:
            return f"total {total}"

        with Flow("loop-downstream") as flow:
            t = loop_until(3, True, seen)()
            a = after(t)

        state = await run(flow, bus)

        assert state.result[a].result == "total 6"
        last_of_loop = [e for e in recorder.events if e.subject is t][-1]
        first_of_after = next(e for e in recorder.events if e.subject is a)
        assert last_of_loop.seq < first_of_after.seq

    async def test_state_handlers_see_every_iteration(self, bus: EventBus) -> None:
        moves: list[tuple[str, str]] = []

        def handler(t: Task, old: State, new: State) -> None:
            moves.append((type(old).__name__, type(new).__name__))

        @task(state_handlers=[handler])
        def loops_twice() -> None:
            if context.task_loop_count < 3:
                raise signals.LOOP()

        with Flow("loop-handlers") as flow:
            loops_twice()

        await run(flow, bus)

        assert moves == [
            ("Pending", "Running"),
            ("Running", "Looped"),
            ("Looped", "Running"),
            ("Running", "Looped"),
            ("Looped", "Running"),
            ("Running", "Success"),
        ]

    async def test_a_long_loop_runs_to_the_end(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        seen: list[tuple[Any, ...]] = []
        with Flow("long-loop") as flow:
            t = loop_until(300, True, seen)()

        state = await run(flow, bus)

        assert state.result[t].result == sum(range(1, 301))
        assert [s.loop_count for s in recorder.states("summing") if isinstance(s, Looped)] == list(
            range(1, 300)
        )


class TestRetriesInsideLoops:
    @pytest.mark.parametrize("how", ["an error", "the RETRY signal"])
    async def test_a_retry_in_the_middle_of_a_loop_resumes_at_the_same_iteration(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock, how: str
    ) -> None:
        seen = []

        @task(max_retries=1, retry_delay=DELAY)
        def flaky_loop() -> str:
            n, acc = context.task_loop_count, context.get("task_loop_result")
            seen.append((n, acc, context.task_run_count, clock.now()))
            if n == 2 and context.task_run_count == 1:
                if how == "an error":
                    raise ValueError("iteration 2 flaked")
                raise signals.RETRY("try iteration 2 again")
            if n < 3:
                raise signals.LOOP(result=n * 10)
            return f"done after {acc}"

        with Flow("loop-retry") as flow:
            t = flaky_loop()

        state = await run(flow, bus, clock=clock)

        assert state.result[t].result == "done after 20"
        # A bare RETRY is due now, as in Prefect 1.x; a failure waits for retry_delay.
        later = 600.0 if how == "an error" else 0.0
        assert seen == [(1, None, 1, 0.0), (2, 10, 1, 0.0), (2, 10, 2, later), (3, 20, 1, later)]
        if how == "an error":
            failure = [
                (Failed, "Error during execution of task: ValueError('iteration 2 flaked')"),
                (Retrying, "Retrying Task (after attempt 1 of 2)"),
            ]
        else:
            failure = [(Retrying, "try iteration 2 again")]
        assert shape(recorder.states("flaky_loop")) == [
            RUNNING,
            looped(1),
            RUNNING,
            *failure,
            RUNNING,
            looped(2),
            RUNNING,
            SUCCEEDED,
        ]

    async def test_each_iteration_gets_its_own_retries(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock
    ) -> None:
        @task(max_retries=1, retry_delay=DELAY)
        def flaky_every_time() -> int:
            n = context.task_loop_count
            if context.task_run_count == 1:
                raise ValueError(f"iteration {n} flaked")
            if n < 3:
                raise signals.LOOP(result=n)
            return n

        with Flow("loop-retries-per-iteration") as flow:
            t = flaky_every_time()

        state = await run(flow, bus, clock=clock)

        assert one(state.result[t]) == SUCCEEDED
        assert state.result[t].result == 3
        retries = [s for s in recorder.states("flaky_every_time") if isinstance(s, Retrying)]
        assert [s.message for s in retries] == ["Retrying Task (after attempt 1 of 2)"] * 3
        assert clock.now() == 3 * DELAY.total_seconds()

    async def test_an_iteration_out_of_retries_fails_the_task_and_keeps_no_later_iterations(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock
    ) -> None:
        @task(max_retries=1, retry_delay=DELAY)
        def breaks_at_two() -> int:
            n = context.task_loop_count
            if n == 2:
                raise ValueError("iteration 2 is broken")
            raise signals.LOOP(result=n)

        with Flow("loop-gives-up") as flow:
            t = breaks_at_two()

        state = await run(flow, bus, clock=clock)

        broken = (Failed, "Error during execution of task: ValueError('iteration 2 is broken')")
        assert one(state.result[t]) == broken
        assert shape(recorder.states("breaks_at_two")) == [
            RUNNING,
            looped(1),
            RUNNING,
            broken,
            (Retrying, "Retrying Task (after attempt 1 of 2)"),
            RUNNING,
            broken,
        ]


class TestLoopingMappedChildren:
    async def test_each_child_loops_on_its_own_with_its_own_count(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task
        def repeat(times: int) -> tuple[int, int]:
            n = context.task_loop_count
            if n < times:
                raise signals.LOOP(result=n)
            return (times, n)

        with Flow("mapped-loops") as flow:
            m = repeat.map([1, 3, 2])

        state = await run(flow, bus)

        assert state.result[m].result == [(1, 1), (3, 3), (2, 2)]
        loops = sorted(
            (e.map_index, e.new_state.loop_count)
            for e in recorder.events
            if e.subject is m and isinstance(e.new_state, Looped)
        )
        assert loops == [(1, 1), (1, 2), (2, 1)]
        assert one(state.result[m]) == (Mapped, "Ready to proceed with mapping.")
