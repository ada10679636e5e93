"""Pause and resume: the human-approval step.

A task pauses through the ``manual_only`` trigger or by raising ``signals.PAUSE``; it ends up
``Paused`` and, in a run started with ``async with flow.start(...) as run``, waits there (holding
no thread, no worker, no concurrency slot) until ``run.resume(task)`` (or ``run.resume(task,
map_index=i)`` for one mapped child) moves it ``Paused -> Resume -> Running``. A resumed task does
not consult its trigger again, and its code sees ``context.get("resume")`` so that it does not
pause a second time. Resuming anything that is not paused raises ``RunStateError``.
"""

from __future__ import annotations

import threading
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from asyncflow import Flow, context, task, triggers
from asyncflow.engine import signals
from asyncflow.engine.state import (
    Cancelled,
    Failed,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
)
from asyncflow.exceptions import RunStateError
from asyncflow.executors import LocalExecutor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from asyncflow import EventBus, FlowRun, StateChange, Task
    from asyncflow.testing import EventRecorder, FakeClock

RUNNING = (Running, "Starting task run.")
SUCCEEDED = (Success, "Task run succeeded.")
MANUAL_ONLY = (Paused, 'Trigger function is "manual_only"')
RESUMING = (Resume, "Resuming task run.")
MAPPING = (Mapped, "Ready to proceed with mapping.")
FLOW_SUCCEEDED = (Success, "All reference tasks succeeded.")
NOT_ALL_FINISHED = (Running, "Not all reference tasks finished.")


def shape(states: Iterable[State]) -> list[tuple[type[State], str | None]]:
    return [(type(s), s.message) for s in states]


def one(state: State) -> tuple[type[State], str | None]:
    return (type(state), state.message)


async def wait_for(run: FlowRun, predicate: Callable[[StateChange], bool]) -> StateChange:
    """The first event of ``run`` (from seq 1) that satisfies ``predicate``."""
    async with aclosing(run.events()) as events:
        async for event in events:
            if predicate(event):
                return event
    raise AssertionError("the run ended without such an event")


def paused(t: Task, map_index: int | None = None) -> Callable[[StateChange], bool]:
    return lambda e: e.subject is t and e.map_index == map_index and isinstance(e.new_state, Paused)


@task
def first() -> int:
    return 1


@task
def last(x: Any) -> Any:
    return x


@task(trigger=triggers.manual_only)
def approve(x: int) -> int:
    return x + 1


@task
def pause_once(x: int) -> int:
    if not context.get("resume"):
        raise signals.PAUSE(f"approve {x}?")
    return x * 10


def gated_flow(gate: Task) -> tuple[Flow, Task, Task, Task]:
    """``first -> gate -> last``."""
    with Flow("gated") as flow:
        f = first()
        g = gate(f)
        la = last(g)
    return flow, f, g, la


class TestPausing:
    @pytest.mark.parametrize(
        ("gate", "pause"),
        [(approve, MANUAL_ONLY), (pause_once, (Paused, "approve 1?"))],
        ids=["manual_only", "PAUSE"],
    )
    async def test_the_run_waits_at_the_paused_task_until_it_is_resumed(
        self, bus: EventBus, recorder: EventRecorder, gate: Task, pause: tuple[type, str]
    ) -> None:
        flow, _, g, la = gated_flow(gate)

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(g))
                await anyio.wait_all_tasks_blocked()
                assert not run.done
                assert one(run.state) == (Running, "Running flow.")
                assert one(run.task_states[g]) == pause
                assert run.task_states[la] == Pending()
                run.resume(g)

        assert one(run.state) == FLOW_SUCCEEDED
        assert run.task_states[la].result in (2, 10)
        before_pause = [RUNNING] if gate is pause_once else []
        assert shape(recorder.states(g.name)) == [
            *before_pause,
            pause,
            RESUMING,
            RUNNING,
            SUCCEEDED,
        ]

    async def test_a_manual_only_task_pauses_before_running_any_code(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        calls = []

        @task(trigger=triggers.manual_only)
        def gate() -> None:
            calls.append(context.get("resume"))

        with Flow("manual") as flow:
            g = gate()

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(g))
                assert calls == []
                run.resume(g)

        assert calls == [True]
        assert [type(e.old_state) for e in recorder.events if e.subject is g] == [
            Pending,
            Paused,
            Resume,
            Running,
        ]

    async def test_the_code_of_a_resumed_task_sees_resume_in_context(self, bus: EventBus) -> None:
        seen: list[Any] = []

        @task
        def asks_twice() -> str:
            seen.append(context.get("resume"))
            if not context.get("resume"):
                raise signals.PAUSE("may I?")
            return "approved"

        with Flow("resume-context") as flow:
            t = asks_twice()

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(t))
                run.resume(t)

        assert seen == [None, True]
        assert run.task_states[t].result == "approved"

    async def test_other_branches_go_on_while_one_task_is_paused(self, bus: EventBus) -> None:
        @task
        def independent() -> str:
            return "done"

        with Flow("branches") as flow:
            g = approve(first())
            other = last(independent())

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(g))
                await wait_for(run, lambda e: e.subject is other and e.new_state.is_finished())
                assert one(run.task_states[g]) == MANUAL_ONLY  # still waiting for approval
                run.resume(g)

        assert run.task_states[other].result == "done"
        assert one(run.state) == FLOW_SUCCEEDED

    async def test_without_a_handle_the_paused_task_stays_paused_and_the_flow_unfinished(
        self, bus: EventBus
    ) -> None:
        flow, f, g, la = gated_flow(approve)

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert one(state.result[f]) == SUCCEEDED
        assert one(state.result[g]) == MANUAL_ONLY
        assert state.result[la] == Pending()
        assert one(state) == NOT_ALL_FINISHED


class TestResume:
    @pytest.mark.parametrize(
        "how", ["the task", "its name", "its slug"], ids=["task", "name", "slug"]
    )
    async def test_a_task_can_be_named_by_itself_its_name_or_its_slug(
        self, bus: EventBus, how: str
    ) -> None:
        flow, _, g, _ = gated_flow(approve)

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(g))
                run.resume({"the task": g, "its name": g.name, "its slug": g.slug}[how])

        assert one(run.state) == FLOW_SUCCEEDED

    async def test_resuming_a_task_that_is_not_paused_is_refused(self, bus: EventBus) -> None:
        flow, f, g, la = gated_flow(approve)

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(g))
                with pytest.raises(
                    RunStateError,
                    match=r'^<Task: first> is not paused \(its state is Success\("Task run',
                ):
                    run.resume(f)
                with pytest.raises(
                    RunStateError, match=r"^<Task: last> is not paused \(its state is Pending\(\)\)"
                ):
                    run.resume(la)
                run.resume(g)
                with pytest.raises(RunStateError, match=r"^<Task: approve> is not paused"):
                    run.resume(g)  # a second approval

        assert one(run.state) == FLOW_SUCCEEDED
        with pytest.raises(RunStateError):
            run.resume(g)  # after the run

    async def test_resuming_a_task_of_another_flow_is_a_value_error(self, bus: EventBus) -> None:
        flow, _, g, _ = gated_flow(approve)

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(g))
                with pytest.raises(ValueError, match="stranger"):
                    run.resume("stranger")
                run.resume(g)

        assert one(run.state) == FLOW_SUCCEEDED

    async def test_a_resumed_task_with_a_failed_upstream_still_runs(self, bus: EventBus) -> None:
        @task
        def broken() -> int:
            raise ValueError("nope")

        @task(trigger=triggers.manual_only)
        def override(x: Any) -> str:
            return "ran anyway"

        with Flow("override") as flow:
            o = override(broken())

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(o))
                run.resume(o)

        assert run.task_states[o].result == "ran anyway"


@task
def pause_if_two(x: int) -> int:
    if x == 2 and not context.get("resume"):
        raise signals.PAUSE(f"approve {x}?")
    return x * 10


class TestPausedMappedChildren:
    async def test_one_child_pauses_the_others_finish_and_resume_by_index_completes_the_map(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task
        def total(xs: list[int]) -> int:
            return sum(xs)

        with Flow("paused-child") as flow:
            m = pause_if_two.map([1, 2, 3])
            per_index = last.map(m)
            t = total(m)

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                event = await wait_for(run, paused(m, 1))
                await anyio.wait_all_tasks_blocked()
                assert event.task_run_id == f"{run.id}/{m.slug}[1]"
                assert one(event.new_state) == (Paused, "approve 2?")
                assert one(run.task_states[m]) == MAPPING
                assert run.task_states[t] == Pending()
                assert not run.done
                run.resume(m, map_index=1)

        assert one(run.state) == FLOW_SUCCEEDED
        assert run.task_states[m] == Mapped(
            "Ready to proceed with mapping.",
            [10, 20, 30],
            map_states=[Success("Task run succeeded.", r) for r in (10, 20, 30)],
        )
        assert run.task_states[per_index].result == [10, 20, 30]
        assert run.task_states[t].result == 60
        child_1 = [e.new_state for e in recorder.events if e.subject is m and e.map_index == 1]
        assert shape(child_1) == [
            RUNNING,
            (Paused, "approve 2?"),
            RESUMING,
            RUNNING,
            SUCCEEDED,
        ]
        per_index_child_1 = next(
            e for e in recorder.events if e.subject is per_index and e.map_index == 1
        )
        resumed = next(
            e
            for e in recorder.events
            if e.subject is m and e.map_index == 1 and isinstance(e.new_state, Resume)
        )
        assert per_index_child_1.seq > resumed.seq

    async def test_resuming_the_parent_or_a_child_that_is_not_paused_is_refused(
        self, bus: EventBus
    ) -> None:
        with Flow("paused-child-errors") as flow:
            m = pause_if_two.map([1, 2, 3])

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(m, 1))
                await wait_for(
                    run, lambda e: e.subject is m and e.map_index == 0 and e.new_state.is_finished()
                )
                with pytest.raises(
                    RunStateError,
                    match=r"^<Task: pause_if_two> is not paused \(its state is Mapped",
                ):
                    run.resume(m)
                with pytest.raises(
                    RunStateError, match=r"^<Task: pause_if_two> child 0 is not paused"
                ):
                    run.resume(m, map_index=0)
                with pytest.raises(ValueError, match="has no mapped child 7"):
                    run.resume(m, map_index=7)
                run.resume(m, map_index=1)

        assert one(run.state) == FLOW_SUCCEEDED

    async def test_without_a_handle_a_paused_child_is_left_paused_and_the_flow_unfinished(
        self, bus: EventBus
    ) -> None:
        with Flow("paused-child-no-handle") as flow:
            m = pause_if_two.map([1, 2, 3])
            per_index = last.map(m)

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert type(state.result[m]) is Mapped
        assert shape(state.result[m].map_states) == [
            SUCCEEDED,
            (Paused, "approve 2?"),
            SUCCEEDED,
        ]
        assert state.result[per_index].map_states[1] == Pending()
        assert one(state) == NOT_ALL_FINISHED

    async def test_without_a_handle_a_reduce_after_a_paused_child_waits_like_after_a_paused_task(
        self, bus: EventBus
    ) -> None:
        @task(trigger=triggers.all_finished)
        def cleanup(xs: list[Any]) -> str:
            return "cleaned"

        with Flow("paused-child-reduce") as flow:
            m = pause_if_two.map([1, 2, 3])
            reduced = last(m)
            tolerant = cleanup(m)

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        # Prefect 1.x: a task whose upstream (here: one mapped child) has not finished is not
        # considered at all; it stays Pending, as downstream of a plain paused task does.
        assert state.result[reduced] == Pending()
        assert state.result[tolerant] == Pending()
        assert one(state) == NOT_ALL_FINISHED

    async def test_manual_only_on_a_mapped_task_pauses_each_child_not_the_parent(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("manual-map") as flow:
            m = approve.map([1, 2])

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                first_pause = await wait_for(
                    run, lambda e: e.subject is m and isinstance(e.new_state, Paused)
                )
                assert first_pause.map_index is not None  # a child, not the parent
                for i in (0, 1):
                    await wait_for(run, paused(m, i))
                    run.resume(m, map_index=i)

        assert run.task_states[m].result == [2, 3]
        assert shape(
            e.new_state for e in recorder.events if e.subject is m and e.map_index is None
        ) == [
            MAPPING,
            (Mapped, "Ready to proceed with mapping."),
        ]


class TestPausedRunsHoldNothing:
    async def test_a_paused_task_holds_no_thread(self, bus: EventBus) -> None:
        @task(trigger=triggers.manual_only)
        async def gate() -> str:
            return "approved"

        with Flow("no-thread") as flow:
            g = gate()

        threads_before = threading.active_count()
        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                await wait_for(run, paused(g))
                await anyio.wait_all_tasks_blocked()
                assert threading.active_count() <= threads_before
                run.resume(g)

        assert run.task_states[g].result == "approved"

    async def test_paused_sync_children_give_their_threads_back(self, bus: EventBus) -> None:
        executor = LocalExecutor(max_threads=2)

        @task
        def ask(x: int) -> int:
            if not context.get("resume"):
                raise signals.PAUSE(f"approve {x}?")
            return x

        with Flow("threads-back") as flow:
            m = ask.map(list(range(6)))

        with anyio.fail_after(5):
            async with flow.start(bus=bus, executor=executor) as run:
                # Six children pause on two threads: each paused one gave its thread back.
                for i in range(6):
                    await wait_for(run, paused(m, i))
                await anyio.wait_all_tasks_blocked()
                assert executor.limiter.borrowed_tokens == 0
                for i in range(6):
                    run.resume(m, map_index=i)

        assert run.task_states[m].result == list(range(6))

    async def test_a_paused_run_waits_for_days_while_the_rest_of_it_goes_on(
        self, bus: EventBus, clock: FakeClock
    ) -> None:
        three_days = timedelta(days=3)

        @task(max_retries=1, retry_delay=three_days)
        def slow_retry() -> float:
            if context.task_run_count == 1:
                raise ValueError("come back in three days")
            return clock.now()

        with Flow("days") as flow:
            g = approve(first())
            r = slow_retry()

        with anyio.fail_after(5):
            async with flow.start(bus=bus, clock=clock) as run:
                await wait_for(run, lambda e: e.subject is r and e.new_state.is_successful())
                await anyio.wait_all_tasks_blocked()
                assert clock.now() == three_days.total_seconds()
                assert one(run.task_states[g]) == MANUAL_ONLY
                assert not run.done
                clock.advance(4 * 86_400)  # nobody approved for four more days
                await anyio.wait_all_tasks_blocked()
                assert not run.done
                run.resume(g)

        assert one(run.state) == FLOW_SUCCEEDED
        assert run.task_states[r].result == three_days.total_seconds()
        assert run.task_states[g].result == 2


class TestResumeThe1xWays:
    """The ways Prefect 1.x resumes a paused task, without a run handle."""

    def test_a_resume_state_given_in_task_states_runs_a_manual_only_task(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, _, g, la = gated_flow(approve)

        state = flow.run(task_states={g: Resume("approved by hand")}, bus=bus)

        assert state.result[la].result == 2
        assert shape(recorder.states("approve")) == [RUNNING, SUCCEEDED]
        assert one(state) == FLOW_SUCCEEDED

    def test_a_resume_state_lets_a_task_that_paused_itself_see_resume(self, bus: EventBus) -> None:
        flow, _, g, la = gated_flow(pause_once)

        state = flow.run(task_states={g: Resume()}, bus=bus)

        assert state.result[la].result == 10

    def test_a_paused_state_given_in_task_states_stays_paused(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        runs: list[int] = []

        @task
        def work(x: int) -> int:
            runs.append(x)
            return x

        flow, _, g, _ = gated_flow(work)

        state = flow.run(task_states={g: Paused("wait")}, bus=bus)

        assert runs == []
        assert one(state.result[g]) == (Paused, "wait")
        assert recorder.states("work") == []

    def test_a_handler_returning_resume_resumes_the_task(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        def auto_approve(t: Task, old: State, new: State) -> State | None:
            return Resume("auto-approved") if isinstance(new, Paused) else None

        flow, _, _, la = gated_flow(approve.copy(state_handlers=[auto_approve]))

        state = flow.run(bus=bus)

        assert state.result[la].result == 2
        assert shape(recorder.states("approve")) == [
            (Resume, "auto-approved"),
            RUNNING,
            SUCCEEDED,
        ]

    def test_retries_after_a_resume_pause_again_and_a_resuming_handler_resumes_each_time(
        self, bus: EventBus, clock: FakeClock
    ) -> None:
        # Prefect 1.x's test_pause_resume_works_with_retries, unchanged.
        runs: list[int] = []

        def state_handler(obj: Task, old: State, new: State) -> State | None:
            if isinstance(new, Paused):
                return Resume()
            if old.is_running():
                raise signals.FAIL("cant pass go")
            return None

        @task(
            max_retries=2,
            retry_delay=timedelta(seconds=0),
            state_handlers=[state_handler],
            trigger=triggers.manual_only,
        )
        def fail() -> None:
            runs.append(1)

        flow = Flow("huh", tasks=[fail])
        state = flow.run(bus=bus, clock=clock)

        assert state.is_failed()
        assert len(runs) == 3
        assert one(state.result[fail]) == (Failed, "cant pass go")

    async def test_a_retry_of_a_manually_resumed_task_needs_approval_again(
        self, bus: EventBus, clock: FakeClock
    ) -> None:
        runs: list[int] = []

        @task(max_retries=1, retry_delay=timedelta(seconds=5), trigger=triggers.manual_only)
        def flaky() -> str:
            runs.append(1)
            if len(runs) == 1:
                raise ValueError("first try fails")
            return "ok"

        flow = Flow("re-approve", tasks=[flaky])
        with anyio.fail_after(5):
            async with flow.start(bus=bus, clock=clock) as run:
                await wait_for(run, paused(flaky))
                run.resume(flaky)
                await wait_for(run, lambda e: isinstance(e.new_state, Retrying))
                await wait_for(
                    run,
                    lambda e: isinstance(e.new_state, Paused) and e.seq > 5,
                )
                assert runs == [1]
                run.resume(flaky)

        assert run.task_states[flaky].result == "ok"
        assert runs == [1, 1]

    def test_a_signal_raised_by_a_handler_becomes_the_state(self, bus: EventBus) -> None:
        def skip_it(t: Task, old: State, new: State) -> None:
            if new.is_running():
                raise signals.SKIP("not today")

        flow, _, g, _ = gated_flow(last.copy(state_handlers=[skip_it]))

        state = flow.run(bus=bus)

        assert one(state.result[g]) == (Skipped, "not today")

    def test_a_task_left_paused_under_the_sync_run_ends_the_flow_cancelled_naming_it(
        self, bus: EventBus
    ) -> None:
        flow, _, g, la = gated_flow(approve)

        state = flow.run(bus=bus)

        assert state.is_finished()
        assert type(state) is Cancelled
        assert "<Task: approve>" in (state.message or "")
        assert one(state.result[g]) == MANUAL_ONLY
        assert state.result[la] == Pending()


class TestResumeDates:
    @pytest.mark.parametrize(
        ("delay", "runs_at"),
        [(None, 0.0), (timedelta(hours=1), 3600.0)],
        ids=["no start time: at once", "an hour from now: an hour later"],
    )
    def test_a_resume_from_a_handler_runs_at_its_start_time_on_the_run_clock(
        self, bus: EventBus, clock: FakeClock, delay: timedelta | None, runs_at: float
    ) -> None:
        def later(t: Task, old: State, new: State) -> State | None:
            if not isinstance(new, Paused):
                return None
            start = None if delay is None else datetime.now(UTC) + delay
            return Resume("later", start_time=start)

        @task(trigger=triggers.manual_only, state_handlers=[later])
        def when() -> float:
            return clock.now()

        state = Flow("resume-later", tasks=[when]).run(bus=bus, clock=clock)

        assert state.result[when].result == pytest.approx(runs_at, abs=5)

    def test_a_pause_with_a_start_time_resumes_by_itself_then_as_in_1x(
        self, bus: EventBus, clock: FakeClock, recorder: EventRecorder
    ) -> None:
        @task
        def nap() -> float:
            if not context.get("resume"):
                later = datetime.now(UTC) + timedelta(hours=1)
                raise signals.PAUSE("back in an hour", start_time=later)
            return clock.now()

        state = Flow("nap", tasks=[nap]).run(bus=bus, clock=clock)

        assert state.result[nap].result == pytest.approx(3600, abs=5)
        assert shape(recorder.states("nap")) == [
            RUNNING,
            (Paused, "back in an hour"),
            RUNNING,
            SUCCEEDED,
        ]
