"""The run keywords of Prefect 1.x's ``flow.run``: parameters by keyword, ``state=``, ``context=``.

``flow.run(x=10)`` gives parameter ``x`` (a keyword naming a parameter wins over a run option of
the same name, and over ``parameters=``); ``state=`` is the flow run's initial state (a finished
one is returned as it is, without running anything; a ``Running`` one goes on without a new
``Running`` transition; a ``Scheduled`` one in the future waits for its start time; a dict
``result`` gives initial task states); ``context={...}`` adds keys that every task and handler
sees, under the run's own keys. ``run_async`` and ``start`` take the same keywords.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import EventBus, Flow, Parameter, context, task, triggers
from asyncflow.engine.state import (
    Failed,
    Pending,
    Running,
    Scheduled,
    State,
    Success,
)
from asyncflow.exceptions import ParameterError
from asyncflow.store import MemoryStore
from asyncflow.testing import FakeClock

if TYPE_CHECKING:
    from asyncflow.testing import EventRecorder

T0 = 1_700_000_000.0


@task
def double(x: int) -> int:
    return 2 * x


@task
def read_context(key: str) -> Any:
    return context.get(key)


def doubling_flow() -> tuple[Flow, Any]:
    with Flow("doubling") as flow:
        d = double(Parameter("x"))
    return flow, d


def transitions(recorder: EventRecorder, task_name: str | None = None) -> list[str]:
    return [
        f"{e.old_state!r} -> {e.new_state!r}" for e in recorder.events if e.task_name == task_name
    ]


class TestParametersAsKeywords:
    def test_a_keyword_naming_a_parameter_is_that_parameter(self, bus: EventBus) -> None:
        flow, d = doubling_flow()

        assert flow.run(x=10, bus=bus).result[d].result == 20

    def test_the_keyword_wins_over_the_same_name_in_parameters(self, bus: EventBus) -> None:
        flow, d = doubling_flow()
        given = {"x": 1}

        assert flow.run(parameters=given, x=3, bus=bus).result[d].result == 6
        assert given == {"x": 1}  # the caller's dict is not modified

    def test_a_parameter_named_like_a_run_option_takes_the_keyword(self, bus: EventBus) -> None:
        with Flow("named-timeout") as flow:
            d = double(Parameter("timeout"))

        assert flow.run(timeout=4, bus=bus).result[d].result == 8

    async def test_run_async_and_start_take_parameter_keywords(self, bus: EventBus) -> None:
        flow, d = doubling_flow()

        assert (await flow.run_async(x=5, bus=bus)).result[d].result == 10
        async with flow.start(x=6, bus=bus) as run:
            pass
        assert run.task_states[d].result == 12

    def test_a_keyword_that_is_neither_a_parameter_nor_an_option_is_a_type_error(
        self, bus: EventBus
    ) -> None:
        flow, _ = doubling_flow()

        with pytest.raises(TypeError, match=r"unknown run option\(s\) \['y'\].*parameters.*'x'"):
            flow.run(x=1, y=2, bus=bus)

    def test_an_unknown_name_in_parameters_is_still_a_parameter_error(self, bus: EventBus) -> None:
        flow, _ = doubling_flow()

        with pytest.raises(ParameterError, match="unexpected parameter"):
            flow.run(parameters={"x": 1, "y": 2}, bus=bus)


class TestInitialFlowState:
    def test_a_finished_state_is_returned_without_running_anything(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        runs: list[int] = []

        @task
        def work() -> None:
            runs.append(1)

        flow = Flow("done-already", tasks=[work])
        given = Failed("failed last time")

        state = flow.run(state=given, bus=bus)

        assert type(state) is Failed
        assert state.message == "failed last time"
        assert state.result[work] == Pending("Task not run.")
        assert runs == []
        assert recorder.events == []

    def test_a_running_state_goes_on_without_a_second_running_transition(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, d = doubling_flow()

        state = flow.run(x=1, state=Running("resumed by hand"), bus=bus)

        assert state.result[d].result == 2
        assert transitions(recorder) == [
            'Running("resumed by hand") -> Success("All reference tasks succeeded.")'
        ]

    def test_a_pending_state_moves_to_running_as_usual(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        flow, _ = doubling_flow()

        flow.run(x=1, state=Pending("queued"), bus=bus)

        assert transitions(recorder)[0] == 'Pending("queued") -> Running("Running flow.")'

    async def test_a_scheduled_state_in_the_future_waits_for_its_start_time(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        clock = FakeClock(T0)
        flow, d = doubling_flow()
        start = datetime.fromtimestamp(T0 + 600, UTC)

        state = await flow.run_async(x=2, state=Scheduled(start_time=start), clock=clock, bus=bus)

        assert state.result[d].result == 4
        assert clock.now() == T0 + 600
        assert recorder.events[0].timestamp == T0 + 600

    def test_a_dict_result_gives_initial_task_states_and_task_states_win(
        self, bus: EventBus
    ) -> None:
        runs: list[str] = []

        @task
        def a() -> str:
            runs.append("a")
            return "ran"

        @task
        def b(x: str) -> str:
            runs.append("b")
            return x + "!"

        with Flow("from-state") as flow:
            ta = a()
            tb = b(ta)

        given = Pending(result={ta: Success(result="known")})
        assert flow.run(state=given, bus=bus).result[tb].result == "known!"
        assert runs == ["b"]

        runs.clear()
        state = flow.run(state=given, task_states={ta: Success(result="given")}, bus=bus)
        assert state.result[tb].result == "given!"
        assert runs == ["b"]

    def test_a_state_cannot_be_combined_with_resuming_a_stored_run(self, bus: EventBus) -> None:
        flow, _ = doubling_flow()

        with pytest.raises(ValueError, match="state= cannot be combined with resume="):
            flow.run(state=Pending(), resume="r1", store=MemoryStore(), bus=bus)

    def test_a_state_that_is_not_a_state_is_refused(self, bus: EventBus) -> None:
        flow, _ = doubling_flow()

        with pytest.raises(TypeError, match="state must be a State"):
            flow.run(x=1, state="Running", bus=bus)


class TestRunContext:
    def test_tasks_and_handlers_see_the_given_keys(self, bus: EventBus) -> None:
        seen: list[Any] = []

        def handler(t: Any, old: State, new: State) -> None:
            seen.append(context.get("tenant"))

        with Flow("ctx") as flow:
            r = read_context.copy(state_handlers=[handler])("tenant")

        state = flow.run(context={"tenant": "acme"}, bus=bus)

        assert state.result[r].result == "acme"
        assert seen == ["acme", "acme"]

    def test_the_runs_own_keys_win_over_the_given_ones(self, bus: EventBus) -> None:
        with Flow("ctx-own") as flow:
            name = read_context("task_name")
            fname = read_context("flow_name")

        state = flow.run(context={"task_name": "mine", "flow_name": "mine"}, bus=bus)

        assert state.result[name].result == "read_context"
        assert state.result[fname].result == "ctx-own"

    def test_given_date_and_day_keys_are_kept_as_in_1x(self, bus: EventBus) -> None:
        with Flow("ctx-date") as flow:
            today = read_context("today")
            tomorrow = read_context("tomorrow")
            yesterday = read_context("yesterday")

        given = {"date": datetime(2021, 3, 4, tzinfo=UTC), "yesterday": "long ago"}
        state = flow.run(context=given, bus=bus)

        assert state.result[today].result == "2021-03-04"
        assert state.result[tomorrow].result == "2021-03-05"
        assert state.result[yesterday].result == "long ago"

    def test_a_given_flow_run_id_names_the_run(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("ctx-id") as flow:
            rid = read_context("flow_run_id")

        state = flow.run(context={"flow_run_id": "run-42"}, bus=bus)

        assert state.result[rid].result == "run-42"
        assert {e.run_id for e in recorder.events} == {"run-42"}

    def test_a_flow_run_id_that_contradicts_run_id_is_refused(self, bus: EventBus) -> None:
        flow, _ = doubling_flow()

        with pytest.raises(ValueError, match=r"run_id='a'.*flow_run_id='b'"):
            flow.run(x=1, run_id="a", context={"flow_run_id": "b"}, bus=bus)

    def test_the_given_keys_layer_over_the_callers_context(self, bus: EventBus) -> None:
        with Flow("ctx-layers") as flow:
            a = read_context("a")
            b = read_context("b")

        with context(a="caller", b="caller"):
            state = flow.run(context={"b": "run"}, bus=bus)

        assert state.result[a].result == "caller"
        assert state.result[b].result == "run"

    def test_the_given_dict_is_not_modified(self, bus: EventBus) -> None:
        flow, _ = doubling_flow()
        given: dict[str, Any] = {"k": 1}

        flow.run(x=1, context=given, bus=bus)

        assert given == {"k": 1}

    def test_context_must_be_a_mapping(self, bus: EventBus) -> None:
        flow, _ = doubling_flow()

        with pytest.raises(TypeError, match="context must be a mapping"):
            flow.run(x=1, context=["k"], bus=bus)

    def test_resume_in_context_lets_manual_only_tasks_run(self, bus: EventBus) -> None:
        @task(trigger=triggers.manual_only)
        def approve() -> str:
            return "approved"

        flow = Flow("ctx-resume", tasks=[approve])

        state = flow.run(context={"resume": True}, bus=bus)

        assert state.result[approve].result == "approved"

    async def test_start_and_run_async_take_context_and_state(self, bus: EventBus) -> None:
        with Flow("ctx-async") as flow:
            r = read_context("k")

        assert (await flow.run_async(context={"k": 1}, bus=bus)).result[r].result == 1
        async with flow.start(context={"k": 2}, state=Pending(), bus=bus) as run:
            pass
        assert run.task_states[r].result == 2


class TestInitialTaskStates:
    def test_a_downstream_of_a_given_success_runs_once(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        runs: list[int] = []

        @task
        def a() -> int:
            return 1

        @task
        def b(x: int) -> int:
            runs.append(x)
            return x + 1

        with Flow("given-upstream") as flow:
            ta = a()
            tb = b(ta)

        state = flow.run(task_states={ta: Success(result=5)}, bus=bus)

        assert state.result[tb].result == 6
        assert runs == [5]
        assert transitions(recorder, "b") == [
            'Pending() -> Running("Starting task run.")',
            'Running("Starting task run.") -> Success("Task run succeeded.")',
        ]
        assert transitions(recorder, "a") == []


class TestParameterDefaults:
    def test_a_default_that_cannot_be_copied_is_shared_as_in_1x(self, bus: EventBus) -> None:
        lock = threading.Lock()

        @task
        def same(x: Any) -> bool:
            return x is lock

        with Flow("lock-default") as flow:
            out = same(Parameter("lock", default=lock))

        assert flow.run(bus=bus).result[out].result is True

    def test_a_mutable_default_is_not_shared_between_runs(self, bus: EventBus) -> None:
        @task
        def append(xs: list[int]) -> list[int]:
            xs.append(1)
            return xs

        with Flow("mutable-default") as flow:
            out = append(Parameter("xs", default=[]))

        first = flow.run(bus=bus).result[out].result
        second = flow.run(bus=bus).result[out].result

        assert first == [1]
        assert second == [1]


@pytest.mark.realtime
async def test_a_scheduled_state_waits_on_the_system_clock_too(bus: EventBus) -> None:
    flow, d = doubling_flow()
    start = datetime.now(UTC) + timedelta(seconds=0.2)

    state = await flow.run_async(x=1, state=Scheduled(start_time=start), bus=bus)

    assert state.result[d].result == 2
    assert datetime.now(UTC) >= start
