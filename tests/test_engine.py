"""The engine, end to end: how a flow run moves its tasks through the Prefect 1.x states.

Each class is one behaviour of ``Flow.run_async`` (and ``flow.run`` / ``flow.start``); the
messages and sequences are those of DESIGN.md's "Messages and sequences" table, word for word.
"""

from __future__ import annotations

import threading
import time
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from asyncflow import Flow, Task, context, task, triggers
from asyncflow.engine import signals
from asyncflow.engine.state import (
    Cancelled,
    Failed,
    Looped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
    ValidationFailed,
)
from asyncflow.exceptions import RunStateError
from asyncflow.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from asyncflow import EventBus
    from asyncflow.testing import EventRecorder

RUNNING = (Running, "Starting task run.")
SUCCEEDED = (Success, "Task run succeeded.")
TRIGGER_FAILED = (
    TriggerFailed,
    'Trigger was "all_successful" but some of the upstream tasks failed.',
)
UPSTREAM_SKIPPED = (
    Skipped,
    "Upstream task was skipped; if this was not the intended behavior, consider changing "
    "`skip_on_upstream_skip=False` for this task.",
)
NOPE_FAILED = (Failed, "Error during execution of task: ValueError('nope')")
FLOW_SUCCEEDED = (Success, "All reference tasks succeeded.")
FLOW_FAILED = (Failed, "Some reference tasks failed.")
NOT_ALL_FINISHED = (Running, "Not all reference tasks finished.")
TIMED_OUT = (TimedOut, "Task timed out during execution.")


def shape(states: Iterable[State]) -> list[tuple[type[State], str | None]]:
    """States as (exact class, message) pairs: results (exceptions) compare by identity."""
    return [(type(s), s.message) for s in states]


def one(state: State) -> tuple[type[State], str | None]:
    return (type(state), state.message)


class TestResults:
    async def test_sync_and_async_tasks_mixed_in_one_flow_pass_results_along(
        self, bus: EventBus
    ) -> None:
        @task
        def start() -> int:
            return 1

        @task
        async def double(x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return x * 2

        @task
        def add(x: int, y: int) -> int:
            return x + y

        @task
        async def show(total: int) -> str:
            return f"total={total}"

        with Flow("mixed") as flow:
            one_ = start()
            two = double(one_)
            three = add(one_, two)
            shown = show(three)

        state = await flow.run_async(bus=bus)

        assert one(state) == FLOW_SUCCEEDED
        assert [state.result[t].result for t in (one_, two, three, shown)] == [1, 2, 3, "total=3"]

    async def test_the_flow_result_maps_every_task_to_its_final_state(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task
        def ok() -> int:
            return 1

        @task
        def bad(x: int) -> None:
            raise ValueError("nope")

        @task
        def after(x: Any) -> None:
            return None

        with Flow("result-map") as flow:
            a = ok()
            b = bad(a)
            c = after(b)

        state = await flow.run_async(bus=bus)

        assert set(state.result) == flow.tasks == {a, b, c}
        for t in (a, b, c):
            assert state.result[t] is recorder.states(t.name)[-1]
        assert shape(state.result[t] for t in (a, b, c)) == [SUCCEEDED, NOPE_FAILED, TRIGGER_FAILED]

    async def test_an_empty_flow_succeeds_with_an_empty_result(self, bus: EventBus) -> None:
        state = await Flow("empty").run_async(bus=bus)

        assert one(state) == FLOW_SUCCEEDED
        assert state.result == {}

    def test_flow_run_is_the_sync_front_door(self, bus: EventBus) -> None:
        @task
        def ok() -> str:
            return "done"

        with Flow("sync-door") as flow:
            t = ok()

        state = flow.run(bus=bus)

        assert one(state) == FLOW_SUCCEEDED
        assert state.result[t].result == "done"

    async def test_flow_run_inside_a_running_loop_raises_and_names_run_async(
        self, bus: EventBus
    ) -> None:
        with Flow("in-loop") as flow:
            Task(name="t")()

        with pytest.raises(RuntimeError, match="run_async"):
            flow.run(bus=bus)


class TestMessages:
    """DESIGN.md's table of messages and sequences."""

    async def test_a_task_raising_an_error_fails_with_the_exception_as_result(
        self, bus: EventBus
    ) -> None:
        error = ValueError("nope")

        @task
        def bad() -> None:
            raise error

        with Flow("raises") as flow:
            t = bad()

        state = (await flow.run_async(bus=bus)).result[t]

        assert one(state) == NOPE_FAILED
        assert state.result is error

    async def test_a_failed_upstream_fails_the_default_trigger(self, bus: EventBus) -> None:
        @task
        def bad() -> None:
            raise ValueError("nope")

        @task
        def after(x: Any) -> str:
            return "ran"

        with Flow("trigger") as flow:
            t = after(bad())

        state = await flow.run_async(bus=bus)

        assert one(state.result[t]) == TRIGGER_FAILED
        assert one(state) == FLOW_FAILED

    async def test_a_skipped_upstream_skips_the_task(self, bus: EventBus) -> None:
        ran = []

        @task
        def skipper() -> None:
            raise signals.SKIP("not today")

        @task
        def after(x: Any) -> None:
            ran.append(x)

        with Flow("skip") as flow:
            t = after(skipper())

        state = await flow.run_async(bus=bus)

        assert one(state.result[t]) == UPSTREAM_SKIPPED
        assert ran == []
        assert one(state) == FLOW_SUCCEEDED

    async def test_skip_on_upstream_skip_false_runs_the_task(self, bus: EventBus) -> None:
        @task
        def skipper() -> None:
            raise signals.SKIP("not today")

        @task(skip_on_upstream_skip=False)
        def after() -> str:
            return "ran anyway"

        with Flow("no-skip") as flow:
            t = after(upstream_tasks=[skipper()])

        state = await flow.run_async(bus=bus)

        assert one(state.result[t]) == SUCCEEDED
        assert state.result[t].result == "ran anyway"

    async def test_a_first_failure_with_retries_left_goes_through_retrying(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        clock = FakeClock()

        @task(max_retries=2, retry_delay=timedelta(minutes=10))
        def flaky() -> None:
            raise ValueError("nope")

        with Flow("retries") as flow:
            flaky()

        state = await flow.run_async(bus=bus, clock=clock)

        assert shape(recorder.states("flaky")) == [
            RUNNING,
            NOPE_FAILED,
            (Retrying, "Retrying Task (after attempt 1 of 3)"),
            RUNNING,
            NOPE_FAILED,
            (Retrying, "Retrying Task (after attempt 2 of 3)"),
            RUNNING,
            NOPE_FAILED,
        ]
        retrying = [s for s in recorder.states("flaky") if isinstance(s, Retrying)]
        assert [(s.run_count, s.start_time) for s in retrying] == [
            (1, datetime.fromtimestamp(600, UTC)),
            (2, datetime.fromtimestamp(1200, UTC)),
        ]
        assert clock.now() == 1200
        assert one(state) == FLOW_FAILED

    async def test_a_retry_that_succeeds_ends_in_success(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task(max_retries=3, retry_delay=30)
        def flaky() -> str:
            if context.task_run_count == 1:
                raise ValueError("nope")
            return "second time lucky"

        with Flow("retry-success") as flow:
            t = flaky()

        state = await flow.run_async(bus=bus, clock=FakeClock())

        assert shape(recorder.states("flaky")) == [
            RUNNING,
            NOPE_FAILED,
            (Retrying, "Retrying Task (after attempt 1 of 4)"),
            RUNNING,
            SUCCEEDED,
        ]
        assert state.result[t].result == "second time lucky"

    async def test_a_failed_reference_task_fails_the_flow(self, bus: EventBus) -> None:
        @task
        def bad() -> None:
            raise ValueError("nope")

        with Flow("fails") as flow:
            bad()

        assert one(await flow.run_async(bus=bus)) == FLOW_FAILED

    async def test_all_reference_tasks_succeeding_succeeds_the_flow(self, bus: EventBus) -> None:
        @task
        def ok() -> None:
            return None

        with Flow("succeeds") as flow:
            ok()
            ok()

        assert one(await flow.run_async(bus=bus)) == FLOW_SUCCEEDED

    async def test_reference_tasks_decide_even_when_another_task_fails(self, bus: EventBus) -> None:
        @task
        def bad() -> None:
            raise ValueError("nope")

        @task
        def ok() -> int:
            return 1

        with Flow("reference") as flow:
            failing = bad()
            good = ok()
        flow.set_reference_tasks([good])

        state = await flow.run_async(bus=bus)

        assert one(state.result[failing]) == NOPE_FAILED
        assert one(state) == FLOW_SUCCEEDED


class TestRetryOn:
    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            pytest.param(
                KeyError("k"),
                [
                    RUNNING,
                    (Failed, "Error during execution of task: KeyError('k')"),
                    (Retrying, "Retrying Task (after attempt 1 of 2)"),
                    RUNNING,
                    (Failed, "Error during execution of task: KeyError('k')"),
                ],
                id="matching-is-retried",
            ),
            pytest.param(
                ValueError("nope"),
                [RUNNING, NOPE_FAILED],
                id="other-is-not-retried",
            ),
        ],
    )
    async def test_only_matching_exceptions_are_retried(
        self,
        bus: EventBus,
        recorder: EventRecorder,
        error: Exception,
        expected: list[tuple[type[State], str]],
    ) -> None:
        @task(max_retries=1, retry_delay=0, retry_on=KeyError)
        def picky() -> None:
            raise error

        with Flow("retry-on") as flow:
            picky()

        await flow.run_async(bus=bus, clock=FakeClock())

        assert shape(recorder.states("picky")) == expected


# Each signal is raised on the first attempt of the first iteration only; later attempts
# return "done". Columns: the signal, the task's transitions, the downstream task's final state.
SIGNAL_TABLE = [
    pytest.param(
        lambda: signals.FAIL("no"),
        [RUNNING, (Failed, "no")],
        TRIGGER_FAILED,
        id="FAIL",
    ),
    pytest.param(
        lambda: signals.SUCCESS("yes"),
        [RUNNING, (Success, "yes")],
        SUCCEEDED,
        id="SUCCESS",
    ),
    pytest.param(
        lambda: signals.SKIP("skip"),
        [RUNNING, (Skipped, "skip")],
        UPSTREAM_SKIPPED,
        id="SKIP",
    ),
    pytest.param(
        lambda: signals.RETRY("again"),
        [RUNNING, (Retrying, "again"), RUNNING, SUCCEEDED],
        SUCCEEDED,
        id="RETRY",
    ),
    pytest.param(
        lambda: signals.LOOP("again"),
        [RUNNING, (Looped, "again"), RUNNING, SUCCEEDED],
        SUCCEEDED,
        id="LOOP",
    ),
    pytest.param(
        lambda: signals.ENDRUN(Cancelled("stopped")),
        [RUNNING, (Cancelled, "stopped")],
        TRIGGER_FAILED,
        id="ENDRUN",
    ),
    pytest.param(
        lambda: signals.TRIGGERFAIL("trigger"),
        [RUNNING, (TriggerFailed, "trigger")],
        TRIGGER_FAILED,
        id="TRIGGERFAIL",
    ),
    pytest.param(
        lambda: signals.VALIDATIONFAIL("invalid"),
        [RUNNING, (ValidationFailed, "invalid")],
        TRIGGER_FAILED,
        id="VALIDATIONFAIL",
    ),
]


class TestSignals:
    @pytest.mark.parametrize(("make_signal", "expected", "downstream"), SIGNAL_TABLE)
    async def test_a_signal_raised_in_a_task_decides_its_state_and_its_downstream(
        self,
        bus: EventBus,
        recorder: EventRecorder,
        make_signal: Callable[[], BaseException],
        expected: list[tuple[type[State], str]],
        downstream: tuple[type[State], str],
    ) -> None:
        @task
        def signaller() -> str:
            if context.get("task_loop_count", 1) == 1 and context.task_run_count == 1:
                raise make_signal()
            return "done"

        @task
        def after() -> str:
            return "ran"

        with Flow("signals") as flow:
            s = signaller()
            d = after(upstream_tasks=[s])

        state = await flow.run_async(bus=bus, clock=FakeClock())

        assert shape(recorder.states("signaller")) == expected
        assert one(state.result[d]) == downstream

    @pytest.mark.parametrize(
        "make_signal",
        [signals.FAIL, signals.SUCCESS, signals.SKIP, signals.TRIGGERFAIL, signals.VALIDATIONFAIL],
    )
    async def test_a_signal_state_carries_the_signal_as_result(
        self, bus: EventBus, make_signal: Callable[[str], BaseException]
    ) -> None:
        sig = make_signal("message")

        @task
        def signaller() -> None:
            raise sig

        with Flow("signal-result") as flow:
            s = signaller()

        state = (await flow.run_async(bus=bus)).result[s]

        assert state.message == "message"
        assert state.result is sig

    async def test_endrun_ends_the_task_in_exactly_its_state(self, bus: EventBus) -> None:
        given = Success("ended early", result=5)

        @task
        def ender() -> None:
            raise signals.ENDRUN(given)

        @task
        def after(x: int) -> int:
            return x + 1

        with Flow("endrun") as flow:
            e = ender()
            a = after(e)

        state = await flow.run_async(bus=bus)

        assert state.result[e] is given
        assert state.result[a].result == 6

    async def test_endrun_with_a_failed_state_is_not_retried(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task(max_retries=2, retry_delay=0)
        def ender() -> None:
            raise signals.ENDRUN(Failed("final"))

        with Flow("endrun-no-retry") as flow:
            ender()

        await flow.run_async(bus=bus, clock=FakeClock())

        assert shape(recorder.states("ender")) == [RUNNING, (Failed, "final")]

    async def test_retry_retries_even_without_max_retries(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task
        def again() -> int:
            if context.task_run_count < 3:
                raise signals.RETRY()
            return context.task_run_count

        with Flow("retry-signal") as flow:
            t = again()

        state = await flow.run_async(bus=bus, clock=FakeClock())

        assert shape(recorder.states("again")) == [
            RUNNING,
            (Retrying, "Retrying Task (after attempt 1)"),
            RUNNING,
            (Retrying, "Retrying Task (after attempt 2)"),
            RUNNING,
            SUCCEEDED,
        ]
        assert state.result[t].result == 3


class TestLooping:
    async def test_loop_runs_again_with_the_loop_count_and_result_in_context(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        seen = []

        @task
        def fib() -> int:
            n = context.get("task_loop_count", 1)
            acc = context.get("task_loop_result", 0)
            seen.append((n, context.get("task_loop_result")))
            if n < 4:
                raise signals.LOOP(result=acc + n)
            return acc + n

        with Flow("loop") as flow:
            t = fib()

        state = await flow.run_async(bus=bus)

        assert seen == [(1, None), (2, 1), (3, 3), (4, 6)]
        assert state.result[t].result == 10
        looped = [s for s in recorder.states("fib") if isinstance(s, Looped)]
        assert [(s.loop_count, s.result, s.message) for s in looped] == [
            (1, 1, "Looped (iteration 1)."),
            (2, 3, "Looped (iteration 2)."),
            (3, 6, "Looped (iteration 3)."),
        ]
        assert shape(recorder.states("fib")) == [
            RUNNING,
            (Looped, "Looped (iteration 1)."),
            RUNNING,
            (Looped, "Looped (iteration 2)."),
            RUNNING,
            (Looped, "Looped (iteration 3)."),
            RUNNING,
            SUCCEEDED,
        ]

    async def test_downstream_receives_the_result_of_the_last_iteration(
        self, bus: EventBus
    ) -> None:
        @task
        def count() -> int:
            n = context.get("task_loop_count", 1)
            if n < 3:
                raise signals.LOOP(result=n)
            return n * 100

        @task
        def after(x: int) -> int:
            return x + 1

        with Flow("loop-downstream") as flow:
            a = after(count())

        state = await flow.run_async(bus=bus)

        assert state.result[a].result == 301


class TestInjectedStates:
    async def test_a_finished_injected_state_is_not_rerun_and_feeds_downstream(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        calls = []
        given = Success("from an earlier run", result=41)

        @task
        def expensive() -> int:
            calls.append("ran")
            return 0

        @task
        def inc(x: int) -> int:
            return x + 1

        with Flow("inject") as flow:
            e = expensive()
            i = inc(e)

        state = await flow.run_async(bus=bus, task_states={e: given})

        assert calls == []
        assert state.result[e] is given
        assert state.result[i].result == 42
        assert recorder.states("expensive") == []

    async def test_an_unknown_task_in_task_states_is_refused(self, bus: EventBus) -> None:
        with Flow("inject-unknown") as flow:
            Task(name="known")()

        with pytest.raises(ValueError, match="stranger"):
            await flow.run_async(bus=bus, task_states={Task(name="stranger"): Success()})


class TestScale:
    async def test_a_wide_flow_of_a_thousand_tasks_succeeds(self, bus: EventBus) -> None:
        @task
        async def noop(i: int) -> int:
            return i

        with Flow("wide") as flow:
            for i in range(1000):
                noop(i)

        state = await flow.run_async(bus=bus)

        assert one(state) == FLOW_SUCCEEDED
        assert len(state.result) == 1000
        assert sorted(s.result for s in state.result.values()) == list(range(1000))

    async def test_a_chain_of_a_thousand_tasks_succeeds(self, bus: EventBus) -> None:
        @task
        async def inc(x: int) -> int:
            return x + 1

        with Flow("chain") as flow:
            last = inc(0)
            for _ in range(999):
                last = inc(last)

        state = await flow.run_async(bus=bus)

        assert one(state) == FLOW_SUCCEEDED
        assert len(state.result) == 1000
        assert state.result[last].result == 1000


class TestScheduling:
    async def test_a_slow_branch_does_not_hold_back_an_independent_fast_branch(
        self, bus: EventBus
    ) -> None:
        fast_branch_done = anyio.Event()

        @task
        async def slow() -> str:
            await fast_branch_done.wait()
            return "slow"

        @task
        async def slow_child(x: str) -> str:
            return x + "-child"

        @task
        async def fast(x: int) -> int:
            return x + 1

        @task
        async def fast_end(x: int) -> int:
            fast_branch_done.set()
            return x

        with Flow("branches") as flow:
            s = slow_child(slow())
            f = fast_end(fast(fast(fast(0))))

        # With level-by-level barriers, fast_end (level 3) would wait for slow (level 0),
        # which waits for fast_end: a deadlock, caught by the deadline.
        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert state.result[f].result == 3
        assert state.result[s].result == "slow-child"

    @pytest.mark.parametrize("limit", [1, 3])
    async def test_max_concurrency_caps_the_tasks_running_at_once(
        self, bus: EventBus, limit: int
    ) -> None:
        running = 0
        peak = 0

        @task
        async def work(i: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            running -= 1
            return i

        with Flow("limited") as flow:
            for i in range(10):
                work(i)

        state = await flow.run_async(bus=bus, max_concurrency=limit)

        assert one(state) == FLOW_SUCCEEDED
        assert peak == limit

    async def test_a_tag_limit_caps_the_tagged_tasks_running_at_once(self, bus: EventBus) -> None:
        running = {"db": 0, "cpu": 0}
        peak = {"db": 0, "cpu": 0}

        @task
        async def work(kind: str) -> None:
            running[kind] += 1
            peak[kind] = max(peak[kind], running[kind])
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            running[kind] -= 1

        with Flow("tagged") as flow:
            for _ in range(6):
                work("db", task_args={"tags": {"db"}})
                work("cpu")

        state = await flow.run_async(bus=bus, tag_limits={"db": 2})

        assert one(state) == FLOW_SUCCEEDED
        assert peak["db"] == 2
        assert peak["cpu"] > 2

    async def test_sync_tasks_run_in_worker_threads_and_async_tasks_on_the_loop(
        self, bus: EventBus
    ) -> None:
        loop_thread = threading.get_ident()

        @task
        def in_sync() -> int:
            return threading.get_ident()

        @task
        async def in_async() -> int:
            return threading.get_ident()

        with Flow("threads") as flow:
            s = in_sync()
            a = in_async()

        state = await flow.run_async(bus=bus)

        assert state.result[s].result != loop_thread
        assert state.result[a].result == loop_thread


@pytest.mark.realtime
class TestTimeouts:
    async def test_an_async_task_past_its_timeout_ends_timed_out(self, bus: EventBus) -> None:
        @task(timeout=0.05)
        async def sleepy() -> None:
            await anyio.sleep(5)

        @task
        def after() -> None:
            return None

        with Flow("timeout-async") as flow:
            s = sleepy()
            a = after(upstream_tasks=[s])

        with anyio.fail_after(2):
            state = await flow.run_async(bus=bus)

        assert one(state.result[s]) == TIMED_OUT
        assert isinstance(state.result[s].result, TimeoutError)
        assert one(state.result[a]) == TRIGGER_FAILED
        assert one(state) == FLOW_FAILED

    async def test_a_sync_task_past_its_timeout_is_abandoned_and_ends_timed_out(
        self, bus: EventBus
    ) -> None:
        release = threading.Event()

        @task(timeout=0.5)  # long enough for its thread to start, even on a busy machine
        def blocking() -> str:
            release.wait(5)
            return "too late"

        try:
            with Flow("timeout-sync") as flow:
                b = blocking()
            with anyio.fail_after(5):
                state = await flow.run_async(bus=bus)
        finally:
            release.set()  # let the abandoned thread finish

        timed_out = state.result[b]
        assert type(timed_out) is TimedOut
        assert timed_out.message == (
            "Task timed out during execution. Its thread could not be interrupted and was "
            "abandoned: task 'blocking' keeps one of the 40 threads of "
            "LocalExecutor(max_threads=40) until its call returns."
        )
        assert one(state) == FLOW_FAILED

    async def test_a_task_within_its_timeout_succeeds(self, bus: EventBus) -> None:
        @task(timeout=1)
        async def quick() -> str:
            await anyio.sleep(0.01)
            return "in time"

        with Flow("timeout-ok") as flow:
            q = quick()

        state = await flow.run_async(bus=bus)

        assert one(state.result[q]) == SUCCEEDED
        assert state.result[q].result == "in time"


def pausing_flow(how: str) -> tuple[Flow, Task, Task, Task]:
    """``first -> gate -> last``, where ``gate`` pauses (trigger or signal)."""

    @task
    def first() -> int:
        return 1

    if how == "manual_only":

        @task(trigger=triggers.manual_only)
        def gate(x: int) -> int:
            return x + 1

    else:

        @task
        def gate(x: int) -> int:
            raise signals.PAUSE("wait for me")

    @task
    def last(x: int) -> int:
        return x + 1

    with Flow(f"pause-{how}") as flow:
        f = first()
        g = gate(f)
        la = last(g)
    return flow, f, g, la


class TestPausing:
    @pytest.mark.parametrize(
        ("how", "message"),
        [("manual_only", 'Trigger function is "manual_only"'), ("signal", "wait for me")],
    )
    async def test_without_a_handle_a_paused_task_stays_paused_and_the_flow_running(
        self, bus: EventBus, how: str, message: str
    ) -> None:
        flow, first, gate, last = pausing_flow(how)

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert one(state.result[first]) == SUCCEEDED
        assert one(state.result[gate]) == (Paused, message)
        assert one(state.result[last]) == (Pending, None)
        assert one(state) == NOT_ALL_FINISHED

    async def test_with_a_handle_the_run_waits_for_resume_then_succeeds(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, _, gate, last = pausing_flow("manual_only")

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                async with aclosing(run.events()) as events:
                    async for event in events:
                        if event.subject is gate and isinstance(event.new_state, Paused):
                            break
                assert one(run.task_states[last]) == (Pending, None)
                assert not run.done
                run.resume(gate)

        assert one(run.state) == FLOW_SUCCEEDED
        assert run.state.result[last].result == 3
        assert [type(s) for s in recorder.states("gate")] == [
            Paused,
            Resume,
            Running,
            Success,
        ]

    async def test_resuming_a_task_that_is_not_paused_is_refused(self, bus: EventBus) -> None:
        flow, first, gate, _ = pausing_flow("manual_only")

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                async with aclosing(run.events()) as events:
                    async for event in events:
                        if event.subject is gate and isinstance(event.new_state, Paused):
                            break
                with pytest.raises(RunStateError):
                    run.resume(first)
                with pytest.raises(ValueError, match="stranger"):
                    run.resume(Task(name="stranger"))
                run.resume(gate)

        assert one(run.state) == FLOW_SUCCEEDED


class TestTimeoutsOnAFakeClock:
    """A task's timeout reads the run's clock: with a FakeClock, moving it times the task out."""

    @staticmethod
    async def run_until_deadline(flow: Flow, clock: FakeClock, bus: Any, advance: float) -> State:
        outcome: list[State] = []

        async def run() -> None:
            outcome.append(await flow.run_async(bus=bus, clock=clock))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(5):
                while clock.next_deadline() is None:  # the timeout's watcher is asleep
                    await anyio.lowlevel.checkpoint()
            clock.advance(advance)
        return outcome[0]

    async def test_an_async_task_past_its_deadline_ends_timed_out(
        self, clock: FakeClock, bus: Any
    ) -> None:
        @task(timeout=10)
        async def stuck() -> None:
            await anyio.Event().wait()

        with Flow("fake-timeout") as flow:
            t = stuck()
        state = await self.run_until_deadline(flow, clock, bus, advance=10)
        assert type(state.result[t]) is TimedOut
        assert state.result[t].message == "Task timed out during execution."
        assert isinstance(state.result[t].result, TimeoutError)
        assert "'stuck'" in str(state.result[t].result)

    async def test_a_task_that_ends_before_its_deadline_keeps_its_outcome(
        self, clock: FakeClock, bus: Any
    ) -> None:
        @task(timeout=10)
        async def quick() -> int:
            return 7

        @task(timeout=10)
        async def failing() -> None:
            raise ValueError("early")

        @task(timeout=10)
        async def ending() -> None:
            raise signals.ENDRUN(Success("ended early"))

        with Flow("fake-in-time") as flow:
            q, f, e = quick(), failing(), ending()
        state = await flow.run_async(bus=bus, clock=clock)
        assert state.result[q] == Success("Task run succeeded.", 7)
        assert type(state.result[f]) is Failed
        assert state.result[e] == Success("ended early")
        assert clock.now() == 0  # nothing waited on the clock

    async def test_endrun_inside_a_real_timeout_is_kept(self, bus: Any) -> None:
        @task(timeout=5, max_retries=2, retry_delay=0)
        async def ending() -> None:
            raise signals.ENDRUN(Failed("final"))

        with Flow("real-in-time") as flow:
            e = ending()
        state = await flow.run_async(bus=bus)
        assert state.result[e] == Failed("final")  # ENDRUN: no retry, even with retries left


class TestWorkersForSyncTasks:
    async def test_sync_tasks_start_no_more_workers_than_threads(self, bus: Any) -> None:
        """Ten times more sync tasks than threads: workers beyond the threads would only queue."""
        from asyncflow.executors import LocalExecutor

        seen: list[int] = []
        holder: dict[str, Any] = {}

        class Blocking(Task):
            def run(self) -> None:
                seen.append(holder["run"]._scheduler.workers)
                time.sleep(0.001)

        flow = Flow("threads", tasks=[Blocking(name=f"b{i}") for i in range(40)])
        async with flow.start(bus=bus, executor=LocalExecutor(max_threads=4)) as run:
            holder["run"] = run
        assert run.state.is_successful()
        assert max(seen) <= 4 + 1  # the threads' workers, and at most one spare

    def test_many_tasks_of_one_name_get_sequential_slugs(self) -> None:
        flow = Flow("slugs")
        flow.add_task(Task(name="t", slug="t-2"))
        tasks = [flow.add_task(Task(name="t")) for _ in range(4)]
        assert [t.slug for t in tasks] == ["t-1", "t-3", "t-4", "t-5"]
