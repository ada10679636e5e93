"""Specification of a flow run: the ``flow.start()`` handle, retries on the clock, flow timeouts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from asyncflow import EventBus, Flow, FlowRun, Task, context, exponential_backoff, signals, task
from asyncflow.engine.state import (
    Cancelled,
    Failed,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    Success,
    TimedOut,
)
from asyncflow.testing import EventRecorder, FakeClock

if TYPE_CHECKING:
    from asyncflow import StateChange

T0 = 1_700_000_000.0  # a fake clock reading in 2023, so that datetimes are realistic


def at(seconds: float) -> datetime:
    """The aware UTC datetime of a clock reading."""
    return datetime.fromtimestamp(seconds, UTC)


@task
async def ok() -> int:
    return 1


@task
async def after(x: Any) -> Any:
    return x


def gated_flow(gate: anyio.Event) -> tuple[Flow, Task, Task]:
    """``waits -> after``; ``waits`` runs until ``gate`` is set, then returns "opened"."""

    @task
    async def waits() -> str:
        await gate.wait()
        return "opened"

    with Flow("gated") as flow:
        w = waits()
        a = after(w)
    return flow, w, a


class TestStart:
    async def test_the_run_uses_the_given_run_id(self, bus: EventBus) -> None:
        with Flow("named") as flow:
            ok()
        async with flow.start(bus=bus, run_id="my-run") as run:
            assert isinstance(run, FlowRun)
            assert run.id == "my-run"
        assert {e.run_id async for e in run.events()} == {"my-run"}

    async def test_without_a_run_id_each_run_gets_a_fresh_one(self, bus: EventBus) -> None:
        with Flow("anonymous") as flow:
            ok()
        async with flow.start(bus=bus) as first, flow.start(bus=bus) as second:
            pass
        assert first.id != second.id
        assert all(len(run.id) == 32 and int(run.id, 16) >= 0 for run in (first, second))

    async def test_the_handle_is_given_before_the_run_begins(self, bus: EventBus) -> None:
        with Flow("not-yet") as flow:
            t = ok()
        async with flow.start(bus=bus) as run:
            assert type(run.state) is Scheduled  # start_time: now, as in Prefect 1.x
            assert run.task_states == {t: Pending()}
            assert not run.done

    async def test_state_and_task_states_show_the_run_as_it_is_now(self, bus: EventBus) -> None:
        gate = anyio.Event()
        flow, waits, then = gated_flow(gate)
        async with flow.start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            assert run.state == Running("Running flow.")
            assert run.task_states == {waits: Running("Starting task run."), then: Pending()}
            assert not run.done
            gate.set()
            await run.wait()
            assert run.task_states == {
                waits: Success("Task run succeeded.", "opened"),
                then: Success("Task run succeeded.", "opened"),
            }
            assert run.done

    async def test_wait_returns_the_final_flow_state(self, bus: EventBus) -> None:
        gate = anyio.Event()
        flow, *_ = gated_flow(gate)
        async with flow.start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            gate.set()
            final = await run.wait()
            assert final is run.state
            assert final == Success("All reference tasks succeeded.", final.result)
            assert final.result == run.task_states
            assert await run.wait() is final  # waiting again returns at once

    async def test_leaving_the_block_waits_for_the_run(self, bus: EventBus) -> None:
        ran: list[str] = []

        @task
        async def slow() -> None:
            for _ in range(50):
                await anyio.lowlevel.checkpoint()
            ran.append("slow")

        with Flow("waited") as flow:
            after(slow())
        async with flow.start(bus=bus) as run:
            pass
        assert run.done
        assert ran == ["slow"]
        assert run.state == Success("All reference tasks succeeded.", run.state.result)

    async def test_events_streams_the_run_while_it_goes(self, bus: EventBus) -> None:
        gate = anyio.Event()
        flow, *_ = gated_flow(gate)
        seen: list[StateChange] = []

        async def watch(run: FlowRun) -> None:
            async for event in run.events():
                seen.append(event)
                if event.task_name == "waits" and event.new_state.is_running():
                    gate.set()  # the consumer sees the task start before it finishes

        async with flow.start(bus=bus) as run, anyio.create_task_group() as tg:
            tg.start_soon(watch, run)
        assert [e.seq for e in seen] == [1, 2, 3, 4, 5, 6]
        assert [(e.task_name, type(e.new_state)) for e in seen] == [
            (None, Running),
            ("waits", Running),
            ("waits", Success),
            ("after", Running),
            ("after", Success),
            (None, Success),
        ]

    async def test_events_called_mid_run_starts_at_seq_one(self, bus: EventBus) -> None:
        gate = anyio.Event()
        flow, *_ = gated_flow(gate)
        seen: list[int] = []

        async def watch(run: FlowRun) -> None:
            async for event in run.events():
                seen.append(event.seq)

        async with flow.start(bus=bus) as run:
            await anyio.wait_all_tasks_blocked()
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, run)
                await anyio.wait_all_tasks_blocked()
                assert seen == [1, 2]
                gate.set()
        assert seen == [1, 2, 3, 4, 5, 6]

    async def test_events_called_after_the_run_finished_replays_it_all(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("replayed") as flow:
            after(ok())
        async with flow.start(bus=bus) as run:
            pass
        late = [event async for event in run.events()]
        again = [event async for event in run.events()]
        assert [e.seq for e in late] == [1, 2, 3, 4, 5, 6]
        assert late == again == recorder.events

    async def test_events_hold_only_the_runs_own_events(self, bus: EventBus) -> None:
        with Flow("twice") as flow:
            after(ok())
        async with flow.start(bus=bus, run_id="a") as a, flow.start(bus=bus, run_id="b") as b:
            pass
        for run in (a, b):
            events = [event async for event in run.events()]
            assert [(e.run_id, e.seq) for e in events] == [(run.id, n) for n in range(1, 7)]

    async def test_an_exception_raised_in_the_block_cancels_the_run(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        flow, waits, then = gated_flow(gate)
        # The exception comes out of the run's task group; it may arrive in an ExceptionGroup.
        with pytest.RaisesGroup(
            pytest.RaisesExc(RuntimeError, match="client went away"), allow_unwrapped=True
        ):
            async with flow.start(bus=bus) as run:
                await anyio.wait_all_tasks_blocked()
                raise RuntimeError("client went away")
        assert run.done
        assert run.state == Cancelled("Flow run was cancelled.", run.state.result)
        assert run.task_states == {
            waits: Cancelled("Task run was cancelled."),
            then: Cancelled("Flow run was cancelled."),
        }
        assert recorder.events[-1].new_state is run.state


def always_failing(max_retries: int, retry_delay: Any) -> Flow:
    @task(max_retries=max_retries, retry_delay=retry_delay)
    async def unreliable() -> None:
        raise ValueError("nope")

    with Flow("retries") as flow:
        unreliable()
    return flow


class TestRetryDelays:
    @pytest.mark.parametrize(
        ("retry_delay", "max_retries", "delays"),
        [
            (timedelta(minutes=10), 2, [600, 600]),
            (45, 2, [45, 45]),
            (2.5, 1, [2.5]),
            ([5, 50], 2, [5, 50]),
            ([5, 50], 4, [5, 50, 50, 50]),
            ([timedelta(seconds=1), timedelta(minutes=1)], 2, [1, 60]),
            (lambda attempt: 7 * attempt, 3, [7, 14, 21]),
            (lambda attempt: timedelta(hours=attempt), 2, [3600, 7200]),
            (exponential_backoff(10, 2), 4, [10, 20, 40, 80]),
            (exponential_backoff(10, 3, max=50), 3, [10, 30, 50]),
        ],
        ids=[
            "timedelta",
            "seconds",
            "float-seconds",
            "list",
            "list-last-repeats",
            "list-of-timedeltas",
            "callable",
            "callable-timedelta",
            "exponential_backoff",
            "exponential_backoff-max",
        ],
    )
    async def test_each_retry_starts_after_its_delay_on_the_runs_clock(
        self,
        bus: EventBus,
        recorder: EventRecorder,
        retry_delay: Any,
        max_retries: int,
        delays: list[float],
    ) -> None:
        clock = FakeClock(start=T0)
        state = await always_failing(max_retries, retry_delay).run_async(bus=bus, clock=clock)
        assert state == Failed("Some reference tasks failed.", state.result)
        starts = [T0 + sum(delays[:k]) for k in range(1, len(delays) + 1)]
        retrying = [e.new_state for e in recorder.events if isinstance(e.new_state, Retrying)]
        assert [s.start_time for s in retrying] == [at(t) for t in starts]
        assert all(s.start_time is not None and s.start_time.tzinfo is UTC for s in retrying)
        assert [s.run_count for s in retrying] == list(range(1, max_retries + 1))
        assert [s.message for s in retrying] == [
            f"Retrying Task (after attempt {k} of {max_retries + 1})"
            for k in range(1, max_retries + 1)
        ]
        running = [e.timestamp for e in recorder.events if e.task_name and e.new_state.is_running()]
        assert running == [T0, *starts]
        assert clock.now() == T0 + sum(delays)
        final = recorder.states("unreliable")[-1]
        assert final == Failed("Error during execution of task: ValueError('nope')", final.result)

    async def test_a_task_goes_failed_retrying_running_on_each_retry(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        await always_failing(1, 30).run_async(bus=bus, clock=FakeClock(start=T0))
        states = recorder.states("unreliable")
        first_error, second_error = states[1].result, states[4].result
        assert isinstance(first_error, ValueError)
        assert isinstance(second_error, ValueError)
        assert states == [
            Running("Starting task run."),
            Failed("Error during execution of task: ValueError('nope')", first_error),
            Retrying("Retrying Task (after attempt 1 of 2)", start_time=at(T0 + 30), run_count=1),
            Running("Starting task run."),
            Failed("Error during execution of task: ValueError('nope')", second_error),
        ]

    async def test_a_ten_minute_retry_finishes_at_once_in_wall_time(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        attempts: list[float] = []
        clock = FakeClock(start=T0)

        @task(max_retries=1, retry_delay=timedelta(minutes=10))
        async def flaky() -> str:
            attempts.append(clock.now())
            if len(attempts) == 1:
                raise ConnectionError("try later")
            return "done"

        with Flow("ten-minutes") as flow:
            flaky()
        started = time.perf_counter()
        state = await flow.run_async(bus=bus, clock=clock)
        elapsed = time.perf_counter() - started
        assert state == Success("All reference tasks succeeded.", state.result)
        assert attempts == [T0, T0 + 600]
        assert clock.now() == T0 + 600
        assert elapsed < 0.5

    async def test_the_retry_signal_retries_even_without_max_retries(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        attempts: list[int] = []

        @task
        async def asks_again() -> str:
            attempts.append(1)
            if len(attempts) < 3:
                raise signals.RETRY("try again")
            return "third time lucky"

        with Flow("retry-signal") as flow:
            asks_again()
        state = await flow.run_async(bus=bus, clock=FakeClock(start=T0))
        assert state == Success("All reference tasks succeeded.", state.result)
        states = recorder.states("asks_again")
        assert [type(s) for s in states] == [Running, Retrying, Running, Retrying, Running, Success]
        retrying = [s for s in states if isinstance(s, Retrying)]
        assert [(s.message, s.run_count, s.start_time) for s in retrying] == [
            ("try again", 1, at(T0)),
            ("try again", 2, at(T0)),
        ]
        assert all(isinstance(s.result, signals.RETRY) for s in retrying)
        assert states[-1] == Success("Task run succeeded.", "third time lucky")

    async def test_the_retry_signal_honours_its_start_time(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        clock = FakeClock(start=T0)
        runs: list[float] = []

        @task
        async def later() -> str:
            runs.append(clock.now())
            if len(runs) == 1:
                raise signals.RETRY("in five minutes", start_time=at(T0 + 300))
            return "done"

        with Flow("retry-at") as flow:
            later()
        await flow.run_async(bus=bus, clock=clock)
        assert runs == [T0, T0 + 300]
        retrying = recorder.states("later")[1]
        assert isinstance(retrying, Retrying)
        assert retrying.start_time == at(T0 + 300)

    async def test_the_rest_of_the_flow_runs_while_a_task_waits_for_its_retry(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        retry_waiting = anyio.Event()

        def note_retry(obj: Task, old: State, new: State) -> None:
            if isinstance(new, Retrying):
                retry_waiting.set()

        @task(max_retries=1, retry_delay=60, state_handlers=[note_retry])
        async def flaky() -> str:
            if not retry_waiting.is_set():
                raise ValueError("first attempt fails")
            return "retried"

        @task
        async def independent() -> str:
            await retry_waiting.wait()  # still running while flaky waits for its retry
            return "finished meanwhile"

        with Flow("meanwhile") as flow:
            flaky()
            independent()
        state = await flow.run_async(bus=bus, clock=FakeClock(start=T0))
        assert state == Success("All reference tasks succeeded.", state.result)
        done = next(
            e for e in recorder.events if e.task_name == "independent" and e.new_state.is_finished()
        )
        assert done.new_state == Success("Task run succeeded.", "finished meanwhile")
        assert done.timestamp == T0
        flaky_runs = [
            e for e in recorder.events if e.task_name == "flaky" and e.new_state.is_running()
        ]
        assert [e.timestamp for e in flaky_runs] == [T0, T0 + 60]
        assert done.seq < flaky_runs[1].seq

    @pytest.mark.realtime
    async def test_a_thousand_retries_wait_on_timers_not_threads(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        before = set(threading.enumerate())
        baseline = len(before)
        peak = [baseline]
        failed_once: set[int] = set()

        @task(max_retries=1, retry_delay=0.2)
        async def flaky(i: int) -> int:
            peak[0] = max(peak[0], threading.active_count())
            if i not in failed_once:
                failed_once.add(i)
                raise ValueError(f"task {i} fails once")
            return i

        with Flow("a-thousand") as flow:
            for i in range(1000):
                flaky(i)
        started = time.perf_counter()
        state = await flow.run_async(bus=bus)
        elapsed = time.perf_counter() - started
        assert state == Success("All reference tasks succeeded.", state.result)
        assert sorted(s.result for s in state.result.values()) == list(range(1000))
        # One after another, the retries alone would take 200 s; the bound is loose for busy CI.
        assert 0.2 <= elapsed < 5.0
        assert peak[0] <= baseline + 40
        # Async tasks need no thread at all: none was started and left behind. (Compared by
        # identity, so that a thread of an earlier test ending meanwhile does not count.)
        assert set(threading.enumerate()) <= before
        assert len(recorder.events) == 2 + 5 * 1000


class TestFlowTimeout:
    @pytest.mark.parametrize(
        ("timeout", "message"),
        [
            (100, "Flow run timed out after 100 seconds."),
            (2.5, "Flow run timed out after 2.5 seconds."),
            (timedelta(minutes=2), "Flow run timed out after 120 seconds."),
        ],
    )
    async def test_a_flow_past_its_deadline_ends_timed_out(
        self, bus: EventBus, recorder: EventRecorder, timeout: Any, message: str
    ) -> None:
        @task(max_retries=5, retry_delay=timedelta(hours=1))
        async def unreliable() -> None:
            raise ValueError("nope")

        with Flow("deadline") as flow:
            done = ok()
            retrying = unreliable()
            blocked = after(retrying)
        clock = FakeClock(start=T0)
        started = time.perf_counter()
        state = await flow.run_async(bus=bus, clock=clock, timeout=timeout)
        assert time.perf_counter() - started < 0.5
        assert state == TimedOut(message, state.result)
        assert state.is_failed()
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        assert clock.now() == T0 + seconds
        assert state.result == {
            done: Success("Task run succeeded.", 1),
            retrying: Cancelled("Flow run timed out."),
            blocked: Cancelled("Flow run timed out."),
        }
        assert recorder.events[-1].new_state is state
        assert [type(s) for s in recorder.states("unreliable")] == [
            Running,
            Failed,
            Retrying,
            Cancelled,
        ]
        assert recorder.states("after") == [Cancelled("Flow run timed out.")]

    async def test_a_flow_done_before_its_deadline_is_not_timed_out(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        clock = FakeClock(start=T0)
        attempts: list[float] = []

        @task(max_retries=1, retry_delay=10)
        async def flaky() -> str:
            attempts.append(clock.now())
            if len(attempts) == 1:
                raise ValueError("first attempt fails")
            return "done"

        with Flow("in-time") as flow:
            flaky()
        state = await flow.run_async(bus=bus, clock=clock, timeout=100)
        assert state == Success("All reference tasks succeeded.", state.result)
        assert attempts == [T0, T0 + 10]
        assert clock.now() == T0 + 10  # the deadline's timer did not move the clock
        assert clock.next_deadline() is None

    async def test_a_started_run_times_out_the_same_way(self, bus: EventBus) -> None:
        @task(max_retries=1, retry_delay=3600)
        async def unreliable() -> None:
            raise ValueError("nope")

        with Flow("started-deadline") as flow:
            t = unreliable()
        async with flow.start(bus=bus, clock=FakeClock(start=T0), timeout=30) as run:
            final = await run.wait()
        assert final == TimedOut("Flow run timed out after 30 seconds.", final.result)
        assert run.task_states == {t: Cancelled("Flow run timed out.")}

    @pytest.mark.parametrize("timeout", [0, -1, timedelta(0)])
    async def test_a_timeout_that_is_not_positive_is_refused(
        self, bus: EventBus, timeout: Any
    ) -> None:
        with Flow("refused") as flow:
            ok()
        with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
            await flow.run_async(bus=bus, timeout=timeout)


class TestWaitingRetriesCostNoTask:
    async def test_two_hundred_waiting_retries_hold_one_timer_not_a_task_each(
        self, bus: EventBus
    ) -> None:
        from asyncflow import context

        release = anyio.Event()

        @task
        async def holder() -> None:
            await release.wait()  # keeps the run busy, so the fake clock does not jump yet

        @task(max_retries=1, retry_delay=timedelta(minutes=10))
        async def flaky(i: int) -> int:
            if context.task_run_count == 1:
                raise ValueError(i)
            return i

        with Flow("many-retries") as flow:
            holder()
            results = flaky.map(list(range(200)))
        retrying = 0
        with anyio.fail_after(10):
            async with flow.start(bus=bus, clock=FakeClock()) as run:
                async for event in run.events():
                    if isinstance(event.new_state, Retrying):
                        retrying += 1
                        if retrying == 200:
                            assert len(anyio.get_running_tasks()) < 20
                            release.set()
        assert run.state.is_successful()
        assert run.task_states[results].result == list(range(200))


@task
def loop_n(n: int) -> int:
    count = context.get("task_loop_count", 1)
    if count < n:
        raise signals.LOOP(result=count)
    return count


class TestBoundedHistory:
    """``flow.start(max_events=N)``: a live run keeps only its last N events."""

    async def test_events_yields_the_last_max_events_of_a_long_run(self, bus: EventBus) -> None:
        with Flow("loops") as flow:
            loop_n(1000)
        async with flow.start(bus=bus, max_events=100) as run:
            pass
        kept = [e.seq async for e in run.events()]
        assert kept == list(range(1903, 2003))  # 2 * 1000 task events + 2 flow events

    async def test_a_reader_that_keeps_up_sees_every_event(self, bus: EventBus) -> None:
        with Flow("loops") as flow:
            loop_n(300)
        seen: list[int] = []
        async with flow.start(bus=bus, max_events=10) as run:
            async for event in run.events():
                seen.append(event.seq)
        assert seen == list(range(1, 603))

    async def test_while_it_runs_it_never_holds_more(self, bus: EventBus) -> None:
        held: list[int] = []

        @task
        def watch(n: int) -> None:
            held.append(len(run._history))  # type: ignore[arg-type]
            count = context.get("task_loop_count", 1)
            if count < n:
                raise signals.LOOP(result=count)

        with Flow("loops") as flow:
            watch(500)
        async with flow.start(bus=bus, max_events=50) as run:
            pass
        assert max(held) == 50

    @pytest.mark.parametrize("bad", [0, -5])
    def test_fewer_than_one_event_is_refused(self, bad: int) -> None:
        with Flow("f") as flow:
            loop_n(1)

        async def main() -> None:
            async with flow.start(max_events=bad):
                pass

        with pytest.raises(ValueError, match=f"max_events must be at least 1, got {bad}"):
            anyio.run(main)
