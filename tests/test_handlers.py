"""State handlers, ``on_failure`` callbacks and the terminal state handler.

Handlers intercept: they are called in order on every transition with ``(obj, old, new)``, may
replace the new state, and the engine waits for them (sync or async). A handler that raises
turns the transition into ``Failed`` and the run goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from asyncflow import Flow, Task, task
from asyncflow.engine import signals
from asyncflow.engine.state import (
    Cancelled,
    Failed,
    Pending,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TriggerFailed,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from asyncflow import EventBus
    from asyncflow.testing import EventRecorder

TRIGGER_FAILED = (
    TriggerFailed,
    'Trigger was "all_successful" but some of the upstream tasks failed.',
)


def one(state: State) -> tuple[type[State], str | None]:
    return (type(state), state.message)


def explode_on_success(obj: Any, old: State, new: State) -> None:
    if new.is_successful():
        raise RuntimeError("boom")


def return_a_number(obj: Any, old: State, new: State) -> Any:
    return 42


def a_then_b(**task_kwargs: Any) -> tuple[Flow, Task, Task]:
    """``a -> b``: ``a`` returns 1, ``b`` returns its input + 1."""

    @task(**task_kwargs)
    def a() -> int:
        return 1

    @task
    def b(x: int) -> int:
        return x + 1

    with Flow("a-then-b") as flow:
        ta = a()
        tb = b(ta)
    return flow, ta, tb


class TestTaskHandlers:
    async def test_a_handler_gets_the_task_and_both_states_of_every_transition(
        self, bus: EventBus
    ) -> None:
        calls = []

        def spy(obj: Any, old: State, new: State) -> None:
            calls.append((obj, one(old), one(new)))

        flow, a, _ = a_then_b(state_handlers=[spy])

        await flow.run_async(bus=bus)

        assert calls == [
            (a, (Pending, None), (Running, "Starting task run.")),
            (a, (Running, "Starting task run."), (Success, "Task run succeeded.")),
        ]

    async def test_handlers_are_chained_in_order_and_a_return_value_replaces_the_state(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        replacement = Success("first says so", result=10)
        seen_by_second = []

        def first(obj: Any, old: State, new: State) -> State | None:
            return replacement if new.is_successful() else None

        def second(obj: Any, old: State, new: State) -> None:
            seen_by_second.append(new)

        flow, a, b = a_then_b(state_handlers=[first, second])

        state = await flow.run_async(bus=bus)

        assert seen_by_second[-1] is replacement
        assert one(seen_by_second[0]) == (Running, "Starting task run.")
        assert recorder.states("a")[-1] is replacement
        assert state.result[a] is replacement
        assert state.result[b].result == 11  # downstream received the replaced result

    async def test_a_later_handler_sees_what_an_earlier_one_returned(self, bus: EventBus) -> None:
        order = []

        def h1(obj: Any, old: State, new: State) -> State:
            order.append(("h1", new.message))
            return Success("from h1") if new.is_successful() else new

        def h2(obj: Any, old: State, new: State) -> State:
            order.append(("h2", new.message))
            return Success("from h2") if new.is_successful() else new

        flow, a, _ = a_then_b(state_handlers=[h1, h2])

        state = await flow.run_async(bus=bus)

        assert order == [
            ("h1", "Starting task run."),
            ("h2", "Starting task run."),
            ("h1", "Task run succeeded."),
            ("h2", "from h1"),
        ]
        assert one(state.result[a]) == (Success, "from h2")

    async def test_async_handlers_are_awaited(self, bus: EventBus) -> None:
        calls = []

        async def slow_handler(obj: Any, old: State, new: State) -> State | None:
            await anyio.lowlevel.checkpoint()
            await anyio.sleep(0.001)
            calls.append(type(new))
            return Success("async handler ran", result=5) if new.is_successful() else None

        flow, a, b = a_then_b(state_handlers=[slow_handler])

        state = await flow.run_async(bus=bus)

        assert calls == [Running, Success]
        assert one(state.result[a]) == (Success, "async handler ran")
        assert state.result[b].result == 6

    async def test_sync_and_async_handlers_mix_in_one_chain(self, bus: EventBus) -> None:
        calls = []

        def sync_h(obj: Any, old: State, new: State) -> None:
            calls.append(("sync", type(new)))

        async def async_h(obj: Any, old: State, new: State) -> None:
            await anyio.lowlevel.checkpoint()
            calls.append(("async", type(new)))

        flow, _, _ = a_then_b(state_handlers=[sync_h, async_h, sync_h])

        await flow.run_async(bus=bus)

        assert calls == [
            ("sync", Running),
            ("async", Running),
            ("sync", Running),
            ("sync", Success),
            ("async", Success),
            ("sync", Success),
        ]


class TestHandlerFailures:
    async def test_a_raising_handler_fails_the_transition_and_the_run_goes_on(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, a, b = a_then_b(state_handlers=[explode_on_success])

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert one(state.result[a]) == (
            Failed,
            "Unexpected error while calling state handlers: RuntimeError('boom') "
            "(in explode_on_success)",
        )
        assert isinstance(state.result[a].result, RuntimeError)
        assert recorder.states("a")[-1] is state.result[a]
        assert one(state.result[b]) == TRIGGER_FAILED
        assert one(state) == (Failed, "Some reference tasks failed.")

    async def test_the_failure_message_names_a_nested_handler_by_its_qualname(
        self, bus: EventBus
    ) -> None:
        def boom(obj: Any, old: State, new: State) -> None:
            raise RuntimeError("boom")

        flow, a, _ = a_then_b(state_handlers=[boom])

        state = await flow.run_async(bus=bus)

        assert state.result[a].message == (
            "Unexpected error while calling state handlers: RuntimeError('boom') "
            f"(in {boom.__qualname__})"
        )

    async def test_handlers_after_a_raising_one_are_not_called(self, bus: EventBus) -> None:
        later = []

        def after(obj: Any, old: State, new: State) -> None:
            later.append(type(new))

        flow, _, _ = a_then_b(state_handlers=[explode_on_success, after])

        await flow.run_async(bus=bus)

        assert later == [Running]

    async def test_a_handler_returning_a_non_state_fails_with_a_type_error(
        self, bus: EventBus
    ) -> None:
        flow, a, b = a_then_b(state_handlers=[return_a_number])

        state = await flow.run_async(bus=bus)

        failed = state.result[a]
        assert type(failed) is Failed
        assert failed.message.startswith(
            "Unexpected error while calling state handlers: TypeError("
        )
        assert failed.message.endswith("(in return_a_number)")
        assert isinstance(failed.result, TypeError)
        assert one(state.result[b]) == TRIGGER_FAILED

    async def test_a_handler_raising_on_running_keeps_the_task_from_running(
        self, bus: EventBus
    ) -> None:
        ran = []

        def explode(obj: Any, old: State, new: State) -> None:
            raise RuntimeError("boom")

        @task(state_handlers=[explode])
        def a() -> None:
            ran.append("a")

        with Flow("explode-early") as flow:
            t = a()

        state = await flow.run_async(bus=bus)

        assert ran == []
        assert type(state.result[t]) is Failed
        assert one(state) == (Failed, "Some reference tasks failed.")

    async def test_a_raising_flow_handler_fails_the_flow(self, bus: EventBus) -> None:
        flow, _, _ = a_then_b()
        flow.state_handlers.append(explode_on_success)

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert one(state) == (
            Failed,
            "Unexpected error while calling state handlers: RuntimeError('boom') "
            "(in explode_on_success)",
        )


class TestHandlersRaisingSignals:
    """As in Prefect 1.x, a signal raised by a handler settles the transition in its state."""

    @pytest.mark.parametrize(
        ("signal", "expected"),
        [
            (signals.FAIL("the handler says no"), (Failed, "the handler says no")),
            (signals.SKIP("not today"), (Skipped, "not today")),
            (signals.ENDRUN(Failed("ended by a handler")), (Failed, "ended by a handler")),
        ],
        ids=lambda v: type(v).__name__,
    )
    async def test_the_transition_ends_in_the_signals_state_and_the_run_goes_on(
        self,
        bus: EventBus,
        recorder: EventRecorder,
        signal: BaseException,
        expected: tuple[type[State], str],
    ) -> None:
        later: list[State] = []

        def raise_on_success(obj: Any, old: State, new: State) -> None:
            if new.is_successful():
                raise signal

        def after(obj: Any, old: State, new: State) -> None:
            later.append(new)

        flow, a, b = a_then_b(state_handlers=[raise_on_success, after])

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert one(state.result[a]) == expected
        assert recorder.states("a")[-1] is state.result[a]
        assert [type(s) for s in later] == [Running]  # handlers after it are not called
        assert state.result[b].is_finished()
        assert state.is_finished()

    async def test_a_signal_without_a_message_gets_one_naming_the_handler(
        self, bus: EventBus
    ) -> None:
        def refuse(obj: Any, old: State, new: State) -> None:
            if new.is_successful():
                raise signals.FAIL()

        flow, a, b = a_then_b(state_handlers=[refuse])

        state = await flow.run_async(bus=bus)

        assert one(state.result[a]) == (
            Failed,
            f"State handler {refuse.__qualname__} raised FAIL().",
        )
        assert isinstance(state.result[a].result, signals.FAIL)
        assert one(state.result[b]) == TRIGGER_FAILED
        assert one(state) == (Failed, "Some reference tasks failed.")

    async def test_an_async_handler_raising_a_signal_on_running_keeps_the_task_from_running(
        self, bus: EventBus
    ) -> None:
        ran = []

        async def veto(obj: Any, old: State, new: State) -> None:
            await anyio.lowlevel.checkpoint()
            if new.is_running():
                raise signals.FAIL("vetoed")

        @task(state_handlers=[veto])
        def a() -> None:
            ran.append("a")

        with Flow("veto") as flow:
            t = a()

        state = await flow.run_async(bus=bus)

        assert ran == []
        assert one(state.result[t]) == (Failed, "vetoed")

    async def test_a_flow_handler_raising_a_signal_settles_the_flow(self, bus: EventBus) -> None:
        def fail_at_the_end(obj: Any, old: State, new: State) -> None:
            if new.is_successful():
                raise signals.FAIL("not good enough")

        flow, _, _ = a_then_b()
        flow.state_handlers.append(fail_at_the_end)

        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)

        assert one(state) == (Failed, "not good enough")


class TestHandlersAndEventsAgree:
    """Every transition a handler saw is published, also when a cancellation lands mid-chain."""

    async def test_a_cancel_during_an_async_handler_publishes_what_the_handlers_saw(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        seen: list[tuple[type[State], type[State]]] = []
        entered = anyio.Event()

        def first(obj: Any, old: State, new: State) -> None:
            seen.append((type(old), type(new)))

        async def slow(obj: Any, old: State, new: State) -> None:
            if new.is_running():
                entered.set()
                await anyio.sleep_forever()

        @task(state_handlers=[first, slow])
        async def a() -> None:
            pass

        with Flow("agree") as flow:
            a()

        async with flow.start(bus=bus) as run:
            await entered.wait()
            run.cancel()
        published = [
            (type(e.old_state), type(e.new_state)) for e in recorder.events if e.task_name == "a"
        ]
        assert seen == [(Pending, Running), (Running, Cancelled)]
        assert published == seen

    async def test_a_cancel_during_a_flow_handler_publishes_what_it_saw(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        seen: list[tuple[type[State], type[State]]] = []

        async def slow(obj: Any, old: State, new: State) -> None:
            seen.append((type(old), type(new)))
            if new.is_running():
                await anyio.sleep_forever()

        flow, _, _ = a_then_b()
        flow.state_handlers.append(slow)
        with anyio.move_on_after(0.05):
            await flow.run_async(bus=bus)
        published = [
            (type(e.old_state), type(e.new_state)) for e in recorder.events if e.is_flow_event
        ]
        assert published == seen == [(Scheduled, Running), (Running, Cancelled)]


class TestFlowHandlers:
    async def test_a_flow_handler_gets_the_flow_and_both_states(self, bus: EventBus) -> None:
        calls = []

        def spy(obj: Any, old: State, new: State) -> None:
            calls.append((obj, one(old), one(new)))

        flow, _, _ = a_then_b()
        flow.state_handlers.append(spy)

        await flow.run_async(bus=bus)

        assert calls == [
            (flow, (Scheduled, None), (Running, "Running flow.")),
            (flow, (Running, "Running flow."), (Success, "All reference tasks succeeded.")),
        ]

    async def test_a_flow_handler_can_replace_the_final_state(self, bus: EventBus) -> None:
        replacement = Success("handled")

        def replace_final(obj: Any, old: State, new: State) -> State | None:
            return replacement if new.is_finished() else None

        flow, _, _ = a_then_b()
        flow.state_handlers.append(replace_final)

        assert await flow.run_async(bus=bus) is replacement


class TestHandlerOrder:
    async def test_flow_and_task_handlers_are_called_in_run_order(self, bus: EventBus) -> None:
        calls: list[tuple[str, str, str]] = []

        def record(obj: Any, old: State, new: State) -> None:
            who = "flow" if isinstance(obj, Flow) else obj.name
            calls.append((who, type(old).__name__, type(new).__name__))

        @task(state_handlers=[record])
        def a() -> int:
            return 1

        @task(state_handlers=[record])
        def b(x: int) -> int:
            return x

        with Flow("order", state_handlers=[record]) as flow:
            b(a())

        await flow.run_async(bus=bus)

        assert calls == [
            ("flow", "Scheduled", "Running"),
            ("a", "Pending", "Running"),
            ("a", "Running", "Success"),
            ("b", "Pending", "Running"),
            ("b", "Running", "Success"),
            ("flow", "Running", "Success"),
        ]


def make_callback(kind: str, calls: list[tuple[Any, State]]) -> Callable[[Any, State], Any]:
    if kind == "sync":

        def on_failure(obj: Any, state: State) -> None:
            calls.append((obj, state))

        return on_failure

    async def on_failure_async(obj: Any, state: State) -> None:
        await anyio.lowlevel.checkpoint()
        calls.append((obj, state))

    return on_failure_async


def fail_or_succeed(outcome: str) -> Callable[[], int]:
    def work() -> int:
        if outcome == "fails":
            raise ValueError("nope")
        return 1

    return work


class TestOnFailure:
    @pytest.mark.parametrize("kind", ["sync", "async"])
    @pytest.mark.parametrize(
        ("outcome", "expected"),
        [
            ("fails", [(Failed, "Error during execution of task: ValueError('nope')")]),
            ("succeeds", []),
        ],
    )
    async def test_a_task_on_failure_is_called_only_when_the_task_fails(
        self,
        bus: EventBus,
        kind: str,
        outcome: str,
        expected: list[tuple[type[State], str]],
    ) -> None:
        calls: list[tuple[Any, State]] = []
        work = task(fail_or_succeed(outcome), name="work", on_failure=make_callback(kind, calls))

        with Flow("task-on-failure") as flow:
            t = work()

        state = await flow.run_async(bus=bus)

        assert [one(s) for _, s in calls] == expected
        assert all(obj is t for obj, _ in calls)
        if calls:
            assert calls[0][1] is state.result[t]

    @pytest.mark.parametrize("kind", ["sync", "async"])
    @pytest.mark.parametrize(
        ("outcome", "expected"),
        [("fails", [(Failed, "Some reference tasks failed.")]), ("succeeds", [])],
    )
    async def test_a_flow_on_failure_is_called_only_when_the_flow_fails(
        self,
        bus: EventBus,
        kind: str,
        outcome: str,
        expected: list[tuple[type[State], str]],
    ) -> None:
        calls: list[tuple[Any, State]] = []
        work = task(fail_or_succeed(outcome), name="work")

        with Flow("flow-on-failure", on_failure=make_callback(kind, calls)) as flow:
            work()

        state = await flow.run_async(bus=bus)

        assert [one(s) for _, s in calls] == expected
        assert all(obj is flow for obj, _ in calls)
        if calls:
            assert calls[0][1] is state


class TestTerminalStateHandler:
    async def test_it_can_replace_the_final_flow_state(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        calls = []
        replacement = Success("failures were expected")

        def terminal(flow: Flow, state: State, reference_states: Any) -> State:
            calls.append((flow, one(state), {one(s) for s in reference_states}))
            return replacement

        work = task(fail_or_succeed("fails"), name="work")
        with Flow("terminal", terminal_state_handler=terminal) as flow:
            work()

        state = await flow.run_async(bus=bus)

        assert calls == [
            (
                flow,
                (Failed, "Some reference tasks failed."),
                {(Failed, "Error during execution of task: ValueError('nope')")},
            )
        ]
        assert state is replacement
        assert recorder.states(None)[-1] is replacement

    async def test_returning_none_keeps_the_final_state(self, bus: EventBus) -> None:
        def terminal(flow: Flow, state: State, reference_states: Any) -> None:
            return None

        work = task(fail_or_succeed("succeeds"), name="work")
        with Flow("terminal-none", terminal_state_handler=terminal) as flow:
            work()

        state = await flow.run_async(bus=bus)

        assert one(state) == (Success, "All reference tasks succeeded.")
