"""Specification of ``asyncflow.integrations``: the Runtime, its run records, the JSON forms.

No web framework here: the Runtime is driven directly, as a request handler would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
from integration_scenarios import GATED_HISTORY, approval_flow, gated_flow, of_run, until

from asyncflow import Flow, context, signals, task
from asyncflow.engine.state import (
    Cached,
    Cancelled,
    Failed,
    Looped,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    Success,
)
from asyncflow.exceptions import ParameterError, RunStateError
from asyncflow.integrations import (
    InvalidParameters,
    Runtime,
    RuntimeUnavailable,
    UnknownFlow,
    UnknownRun,
    UnknownTask,
    serialize,
)

if TYPE_CHECKING:
    from asyncflow import EventBus, StateChange, Task
    from asyncflow.integrations import RunRecord
    from asyncflow.testing import EventRecorder


#: The two fields every state has beside type, message and result (``null`` in these tests).
NO_EXTRAS = {"context": {}, "cached_inputs": None, "location": None}


#: The last events of a gated run cancelled while ``wait`` waits for its gate.
CANCELLED_WHILE_WAITING = [("wait", "Cancelled"), ("double", "Cancelled"), (None, "Cancelled")]


def transitions(events: list[StateChange]) -> list[tuple[str | None, str]]:
    return [(e.task_name, type(e.new_state).__name__) for e in events]


async def settle(record: RunRecord, predicate: Any) -> None:
    """Wait (a second at most) until ``predicate(record)`` holds."""
    with anyio.fail_after(1):
        async for _ in record.follow(heartbeat=0.005):
            if predicate(record):
                return


def paused(record: RunRecord) -> bool:
    return any(isinstance(s, Paused) for s in record.task_states.values())


class TestRuntimeLifespan:
    async def test_start_returns_while_the_run_goes_on_in_the_runtimes_task_group(
        self, bus: EventBus
    ) -> None:
        gate = anyio.Event()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated", {"n": 21})
            assert record.state == Running("Running flow.")
            assert not record.done
            gate.set()
            final = await record.wait()
        assert final == Success("All reference tasks succeeded.", final.result)
        assert {t.name: s.result for t, s in record.task_states.items()} == {
            "n": 21,
            "wait": 21,
            "double": 42,
        }

    async def test_flows_may_be_given_as_a_list_named_by_flow_name(self) -> None:
        runtime = Runtime([approval_flow()])
        assert list(runtime.flows) == ["approval"]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"on_shutdown": "wait"}, 'on_shutdown must be "cancel" or "drain", got \'wait\''),
            ({"max_runs": 0}, "max_runs, max_events and max_logs must be at least 1"),
            ({"max_events": 0}, "max_runs, max_events and max_logs must be at least 1"),
            ({"max_logs": 0}, "max_runs, max_events and max_logs must be at least 1"),
        ],
    )
    def test_bad_settings_are_refused(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError) as caught:  # noqa: PT011 (the message is checked below)
            Runtime({}, **kwargs)
        assert str(caught.value) == message

    async def test_no_run_starts_before_the_runtime_is_entered(self) -> None:
        runtime = Runtime({"approval": approval_flow()})
        with pytest.raises(RuntimeUnavailable) as caught:
            await runtime.start("approval", {"draft": "x"})
        assert str(caught.value) == "the runtime is not running; it takes no new run"

    async def test_no_run_starts_once_shutdown_has_begun(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            await runtime.shutdown()
            assert runtime.closing
            with pytest.raises(RuntimeUnavailable) as caught:
                await runtime.start("approval", {"draft": "x"})
        assert str(caught.value) == "the runtime is shutting down; it takes no new run"
        assert runtime.runs() == []

    async def test_a_runtime_is_entered_once(self) -> None:
        runtime = Runtime({})
        async with runtime:
            with pytest.raises(RuntimeError):
                await runtime.__aenter__()


class TestParameters:
    @pytest.mark.parametrize(
        ("parameters", "unknown", "missing", "message"),
        [
            (
                {"draft": "x", "color": 1},
                ["color"],
                [],
                "flow 'approval': unknown parameter(s) ['color'] (its parameters: ['draft'])",
            ),
            (
                {},
                [],
                ["draft"],
                "flow 'approval': missing required parameter(s) ['draft']"
                " (its parameters: ['draft'])",
            ),
            (
                {"b": 1, "a": 2},
                ["a", "b"],
                ["draft"],
                "flow 'approval': unknown parameter(s) ['a', 'b']; missing required"
                " parameter(s) ['draft'] (its parameters: ['draft'])",
            ),
            ([1, 2], [], [], "parameters must be an object, got [1, 2]"),
        ],
    )
    async def test_bad_parameters_are_refused_naming_them(
        self, bus: EventBus, parameters: Any, unknown: list[str], missing: list[str], message: str
    ) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            with pytest.raises(InvalidParameters) as caught:
                await runtime.start("approval", parameters)
        assert (str(caught.value), caught.value.unknown, caught.value.missing) == (
            message,
            tuple(unknown),
            tuple(missing),
        )
        assert isinstance(caught.value, ParameterError)
        assert runtime.runs() == []

    async def test_a_parameter_with_a_default_may_be_left_out(self, bus: EventBus) -> None:
        gate = anyio.Event()
        gate.set()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated")
            await record.wait()
        assert record.parameters == {}
        assert [s.result for t, s in record.task_states.items() if t.name == "double"] == [2]

    async def test_an_unknown_flow_is_refused_naming_the_flows(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            with pytest.raises(UnknownFlow) as caught:
                await runtime.start("nope")
        assert str(caught.value) == "no flow named 'nope'; flows: ['approval']"


class TestRegistry:
    async def test_runs_are_listed_oldest_first_and_found_by_id(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            first = await runtime.start("approval", {"draft": "a"}, run_id="one")
            second = await runtime.start("approval", {"draft": "b"}, run_id="two")
            assert runtime.runs() == [first, second]
            assert runtime.get("two") is second
            with pytest.raises(UnknownRun) as caught:
                runtime.get("three")
            assert str(caught.value) == "no run with id 'three'"
            with pytest.raises(RunStateError):
                await runtime.start("approval", {"draft": "c"}, run_id="one")

    async def test_the_oldest_ended_runs_are_forgotten_beyond_max_runs(self, bus: EventBus) -> None:
        gate = anyio.Event()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus, max_runs=2) as runtime:
            gate.set()
            first = await runtime.start("gated", run_id="1")
            await first.wait()
            second = await runtime.start("gated", run_id="2")
            await second.wait()
            third = await runtime.start("gated", run_id="3")
            assert [r.id for r in runtime.runs()] == ["2", "3"]
            await third.wait()

    async def test_new_runs_are_refused_when_max_runs_are_all_in_progress(
        self, bus: EventBus
    ) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus, max_runs=2) as runtime:
            await runtime.start("approval", {"draft": "a"})
            await runtime.start("approval", {"draft": "b"})
            with pytest.raises(RuntimeUnavailable) as caught:
                await runtime.start("approval", {"draft": "c"})
            assert str(caught.value) == "2 runs are in progress; try again later"
            assert len(runtime.runs()) == 2

    async def test_an_ended_run_lets_its_handle_go_and_keeps_its_states(
        self, bus: EventBus
    ) -> None:
        gate = anyio.Event()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated")
            handle = record.run
            assert handle is not None
            gate.set()
            await record.wait()
        assert record.run is None
        assert record.state is handle.state
        assert record.task_states == handle.task_states
        assert record.finished is not None
        assert record.finished >= record.created


class TestEventHistory:
    async def test_a_record_holds_exactly_the_events_the_bus_carried(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated")
            gate.set()
            await record.wait()
        assert record.events == of_run(recorder, record.id)
        assert transitions(record.events) == GATED_HISTORY
        assert [e.seq for e in record.events] == list(range(1, 9))

    async def test_only_the_last_max_events_are_kept(self, bus: EventBus) -> None:
        gate = anyio.Event()
        gate.set()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus, max_events=3) as runtime:
            record = await runtime.start("gated")
            await record.wait()
        assert [e.seq for e in record.events] == [6, 7, 8]
        assert record.dropped_events == 5
        assert [e.seq async for e in record.follow() if e is not None] == [6, 7, 8]
        assert [e.seq async for e in record.follow(after=6) if e is not None] == [7, 8]

    async def test_a_long_run_keeps_max_events_in_the_record_and_in_the_run(
        self, bus: EventBus
    ) -> None:
        held: list[int] = []

        @task
        def spin(n: int) -> None:
            record = runtime.get(run_id)
            assert record.run is not None
            held.append(sum(1 for _ in record.run._history))  # type: ignore[union-attr]
            if context.get("task_loop_count", 1) < n:
                raise signals.LOOP()

        with Flow("spin") as flow:
            spin(2000)
        run_id = "long"
        async with Runtime({"spin": flow}, bus=bus, max_events=100) as runtime:
            record = await runtime.start("spin", run_id=run_id)
            await record.wait()
        assert max(held) == 100
        assert [e.seq for e in record.events] == list(range(3903, 4003))
        assert record.dropped_events == 3902

    @pytest.mark.parametrize(
        ("after", "seqs"),
        [(0, [1, 2, 3, 4, 5, 6, 7, 8]), (5, [6, 7, 8]), (8, []), (20, [])],
    )
    async def test_follow_yields_the_events_after_a_seq(
        self, bus: EventBus, after: int, seqs: list[int]
    ) -> None:
        gate = anyio.Event()
        gate.set()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated")
            await record.wait()
        assert [e.seq async for e in record.follow(after) if e is not None] == seqs

    async def test_follow_from_a_seq_not_reached_yet_waits_for_it(self, bus: EventBus) -> None:
        gate = anyio.Event()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated")
            await settle(record, lambda r: len(r.events) >= 4)
            gate.set()
            seqs = [e.seq async for e in record.follow(6) if e is not None]
        assert seqs == [7, 8]

    async def test_two_followers_see_history_then_live_events_identically(
        self, bus: EventBus
    ) -> None:
        gate = anyio.Event()
        seen: dict[str, list[int]] = {"early": [], "late": []}

        async def follow(who: str, record: RunRecord) -> None:
            async for event in record.follow():
                assert event is not None
                seen[who].append(event.seq)

        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated")
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow, "early", record)
                await settle(record, lambda r: len(r.events) >= 4)
                tg.start_soon(follow, "late", record)
                gate.set()
        assert seen["early"] == seen["late"] == list(range(1, 9))

    @pytest.mark.realtime
    async def test_a_follower_gets_a_heartbeat_while_the_run_is_quiet(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            record = await runtime.start("approval", {"draft": "x"})
            await settle(record, paused)
            got: list[int | None] = []
            async for event in record.follow(heartbeat=0.02):
                got.append(None if event is None else event.seq)
                if event is None:
                    break
            runtime.cancel(record.id)
        assert got == [1, 2, 3, 4, 5, 6, None]


class TestCancelAndResume:
    async def test_an_approved_task_runs_and_the_run_succeeds(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            record = await runtime.start("approval", {"draft": "post"})
            await settle(record, paused)
            assert runtime.resume(record.id, "publish") is record
            final = await record.wait()
        assert final == Success("All reference tasks succeeded.", final.result)
        assert transitions(record.events)[-5:] == [
            ("publish", "Paused"),
            ("publish", "Resume"),
            ("publish", "Running"),
            ("publish", "Success"),
            (None, "Success"),
        ]

    @pytest.mark.parametrize(
        ("task_name", "error", "message"),
        [
            (
                "prepare",
                RunStateError,
                '<Task: prepare> is not paused (its state is Success("Task run succeeded."))',
            ),
            ("nope", UnknownTask, "'nope' is not a task of <Flow: name=approval>"),
        ],
    )
    async def test_resuming_what_is_not_paused_is_refused(
        self, bus: EventBus, task_name: str, error: type[Exception], message: str
    ) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            record = await runtime.start("approval", {"draft": "post"})
            await settle(record, paused)
            with pytest.raises(error) as caught:
                runtime.resume(record.id, task_name)
            runtime.cancel(record.id)
        assert str(caught.value) == message

    async def test_a_cancelled_run_ends_cancelled_and_refuses_more(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            record = await runtime.start("approval", {"draft": "post"}, run_id="r")
            await settle(record, paused)
            runtime.cancel("r")
            final = await record.wait()
            with pytest.raises(RunStateError) as cancel_error:
                runtime.cancel("r")
            with pytest.raises(RunStateError) as resume_error:
                runtime.resume("r", "publish")
        assert final == Cancelled("Flow run was cancelled.", final.result)
        assert transitions(record.events)[-2:] == [("publish", "Cancelled"), (None, "Cancelled")]
        assert str(cancel_error.value) == (
            'run r has ended (Cancelled("Flow run was cancelled.")); it cannot be cancelled'
        )
        assert str(resume_error.value) == (
            'run r has ended (Cancelled("Flow run was cancelled.")); nothing can resume'
        )


class TestRunInTheCaller:
    async def test_run_returns_the_record_once_the_run_has_ended(self, bus: EventBus) -> None:
        gate = anyio.Event()
        gate.set()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.run("gated", {"n": 2}, run_id="here")
        assert record.done
        assert record.state.is_successful()
        assert runtime.runs() == [record]

    async def test_cancelling_the_caller_cancels_the_run_and_keeps_every_event(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run, "gated", None)
                await until(runtime.runs)
                record = runtime.runs()[0]
                await settle(record, lambda r: len(r.events) >= 4)
                tg.cancel_scope.cancel()
            await record.wait()
        assert record.state == Cancelled("Flow run was cancelled.", record.state.result)
        assert record.events == of_run(recorder, record.id)
        assert transitions(record.events)[-3:] == CANCELLED_WHILE_WAITING

    async def test_a_run_that_cannot_start_is_not_kept(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            with pytest.raises(InvalidParameters):
                await runtime.run("approval", {})
        assert runtime.runs() == []


class TestShutdown:
    async def test_cancel_mode_cancels_runs_in_flight_losing_no_event(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            records = [await runtime.start("gated") for _ in range(3)]
            for record in records:
                await settle(record, lambda r: len(r.events) >= 4)
        for record in records:
            assert record.done
            assert record.state == Cancelled("Flow run was cancelled.", record.state.result)
            assert record.events == of_run(recorder, record.id)
            assert transitions(record.events)[-3:] == CANCELLED_WHILE_WAITING

    async def test_drain_mode_lets_runs_in_flight_finish(self, bus: EventBus) -> None:
        gate = anyio.Event()
        runtime = Runtime({"gated": gated_flow(gate)}, bus=bus, on_shutdown="drain")
        async with anyio.create_task_group() as tg, runtime:
            record = await runtime.start("gated")
            tg.start_soon(self._open_when_closing, runtime, gate, record)
        assert record.state == Success("All reference tasks succeeded.", record.state.result)

    @staticmethod
    async def _open_when_closing(runtime: Runtime, gate: anyio.Event, record: RunRecord) -> None:
        await until(lambda: runtime.closing)
        assert not record.done  # the runtime is waiting for it
        gate.set()

    @pytest.mark.realtime
    async def test_drain_mode_cancels_what_outlasts_the_drain_timeout(self, bus: EventBus) -> None:
        gate = anyio.Event()
        runtime = Runtime(
            {"gated": gated_flow(gate)}, bus=bus, on_shutdown="drain", drain_timeout=0.05
        )
        async with runtime:
            record = await runtime.start("gated")
        assert record.state == Cancelled("Flow run was cancelled.", record.state.result)

    async def test_leaving_with_an_error_cancels_the_runs_and_lets_the_error_through(
        self, bus: EventBus
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime({"gated": gated_flow(gate)}, bus=bus)
        records: list[RunRecord] = []

        async def app() -> None:
            async with runtime:
                records.append(await runtime.start("gated"))
                raise KeyError("app failed")

        with pytest.raises(KeyError):
            await app()
        record = records[0]
        assert record.state == Cancelled("Flow run was cancelled.", record.state.result)

    async def test_a_run_still_starting_when_shutdown_begins_is_cancelled_too(
        self, bus: EventBus
    ) -> None:
        gate = anyio.Event()
        async with (
            Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(runtime.start, "gated")
            await anyio.lowlevel.checkpoint()  # reserved, its task not started yet
            record = runtime.runs()[0]
            assert record.run is None
            with anyio.fail_after(2):
                await runtime.shutdown()
        assert record.state == Cancelled("Flow run was cancelled.", record.state.result)

    async def test_shutdown_may_be_awaited_by_several_tasks(self, bus: EventBus) -> None:
        async with Runtime({"approval": approval_flow()}, bus=bus) as runtime:
            record = await runtime.start("approval", {"draft": "x"})
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.shutdown)
                tg.start_soon(runtime.shutdown)
            assert record.done

    async def test_the_lifespan_helpers_enter_and_leave_the_runtime(self, bus: EventBus) -> None:
        runtime = Runtime({"approval": approval_flow()}, bus=bus)
        async with runtime.lifespan(object()):
            record = await runtime.start("approval", {"draft": "x"})
        assert record.state.is_cancelled()
        other = Runtime({"approval": approval_flow()}, bus=bus)
        steps = other.cleanup_ctx(object())
        await steps.__anext__()
        assert not other.closing
        with pytest.raises(StopAsyncIteration):
            await steps.__anext__()
        assert other.closing


class TestStateJson:
    @pytest.mark.parametrize(
        ("state", "expected"),
        [
            (Pending(), {"type": "Pending", "message": None, "result": None}),
            (
                Success("Task run succeeded.", 42),
                {"type": "Success", "message": "Task run succeeded.", "result": 42},
            ),
            (
                Failed("Error during execution of task: ValueError('nope')", ValueError("nope")),
                {
                    "type": "Failed",
                    "message": "Error during execution of task: ValueError('nope')",
                    "result": "ValueError('nope')",
                },
            ),
            (
                Retrying("again", start_time=datetime(2024, 5, 1, 12, tzinfo=UTC), run_count=2),
                {
                    "type": "Retrying",
                    "message": "again",
                    "result": None,
                    "start_time": "2024-05-01T12:00:00+00:00",
                    "run_count": 2,
                },
            ),
            (
                Scheduled(start_time=None),
                {"type": "Scheduled", "message": None, "result": None, "start_time": None},
            ),
            (
                Looped("loop", 3, loop_count=4),
                {"type": "Looped", "message": "loop", "result": 3, "loop_count": 4},
            ),
            (
                Mapped("Mapped 2 children.", [1, 2], map_states=[Success("a", 1), Pending()]),
                {
                    "type": "Mapped",
                    "message": "Mapped 2 children.",
                    "result": [1, 2],
                    "map_states": [
                        {"type": "Success", "message": "a", "result": 1, **NO_EXTRAS},
                        {"type": "Pending", "message": None, "result": None, **NO_EXTRAS},
                    ],
                },
            ),
            (
                Cached("c", 1, cached_parameters={"x": 1}),
                {
                    "type": "Cached",
                    "message": "c",
                    "result": 1,
                    "cached_parameters": {"x": 1},
                    "cached_result_expiration": None,
                    "hashed_inputs": None,
                },
            ),
        ],
    )
    def test_a_state_is_its_type_then_its_fields(
        self, state: State, expected: dict[str, Any]
    ) -> None:
        assert serialize.state_json(state) == {**NO_EXTRAS, **expected}
        assert list(serialize.state_json(state))[:3] == ["type", "message", "result"]

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            (True, True),
            ("text", "text"),
            (7, 7),
            (1.5, 1.5),
            (float("nan"), "nan"),
            ((1, [2, (3,)]), [1, [2, [3]]]),
            ({"a": {"b": [1]}}, {"a": {"b": [1]}}),
            ({1: "x"}, "{1: 'x'}"),
            ({1, 2}, "{1, 2}"),
            (datetime(2024, 1, 1, tzinfo=UTC), repr(datetime(2024, 1, 1, tzinfo=UTC))),
            (ValueError("nope"), "ValueError('nope')"),
        ],
    )
    def test_a_value_is_kept_when_json_can_carry_it_else_it_becomes_its_repr(
        self, value: Any, expected: Any
    ) -> None:
        assert serialize.to_json(value) == expected
        json.dumps(serialize.to_json(value), allow_nan=False)

    def test_tasks_are_keyed_by_name_or_by_slug_where_names_repeat(self) -> None:
        @task
        def step(x: int) -> int:
            return x

        with Flow("twice") as flow:
            first = step(1)
            second = step(first)
            last = step.copy(name="last")(second)
        tasks: dict[Task, State] = {first: Success("a", 1), second: Success("b", 2)}
        tasks[last] = Success("c", 3)
        assert set(serialize.task_keys(tasks)) == set(tasks)
        assert list(serialize.task_keys(tasks).values()) == ["step-1", "step-2", "last"]
        assert serialize.flow_json("twice", flow)["tasks"] == ["step-1", "step-2", "last"]

    def test_a_flow_states_result_is_null_the_task_states_are_the_runs_tasks(self) -> None:
        @task
        def step() -> int:
            return 1

        with Flow("once") as flow:
            step()
        (only,) = flow.tasks
        result = {only: Success("a", 1)}
        assert serialize.state_json(Success("done", result))["result"] is None


class TestEventJson:
    async def test_an_event_uses_the_state_change_field_names(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        gate = anyio.Event()
        gate.set()
        async with Runtime({"gated": gated_flow(gate)}, bus=bus) as runtime:
            record = await runtime.start("gated", {"n": 5}, run_id="r1")
            await record.wait()
        event = record.events[4]
        assert serialize.event_json(event) == {
            "run_id": "r1",
            "seq": 5,
            "timestamp": event.timestamp,
            "flow_name": "gated",
            "task_name": "wait",
            "task_run_id": "r1/wait-1",
            "map_index": None,
            "old_state": serialize.state_json(Running("Starting task run.")),
            "new_state": serialize.state_json(Success("Task run succeeded.", 5)),
        }
        assert serialize.sse_state(event) == (
            f"id: 5\nevent: state\ndata: {serialize.dumps(serialize.event_json(event))}\n\n"
        )
        final = serialize.event_json(record.events[-1])["new_state"]
        assert (final["type"], final["result"]) == ("Success", None)  # not the task tree again


class TestLayering:
    def test_importing_the_integrations_imports_no_web_framework(self) -> None:
        code = (
            "import sys, asyncflow.integrations, asyncflow.integrations.serialize; "
            "print(sorted(m for m in ('fastapi', 'aiohttp', 'starlette') if m in sys.modules))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == "[]"
