"""Mapping: ``task.map(...)`` expands a task into one child per item, as in Prefect 1.x.

As in Prefect 1.x, a mapped parent goes ``Pending -> Mapped("Ready to proceed with mapping.")`` when
it expands (its handlers called once); when its last child finishes, one more event fills in the
children (no handler call); its ``result`` is the list of child results (what a normal downstream
task, a "reduce", receives) and ``map_states`` the children's final states. Each child is a task run
of its own (states, retries, handlers, events with ``map_index``). A map over a mapped task flows
index by index; an async iterable as the mapped input is consumed lazily, with back-pressure.
Timing claims are proven with anyio Events (a wrong engine deadlocks and hits ``fail_after``),
never with sleeps.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncflow import EventBus, Flow, Parameter, Task, context, flatten, task, triggers, unmapped
from asyncflow.engine import signals
from asyncflow.engine.state import (
    Failed,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TriggerFailed,
)
from asyncflow.runtime.mapping import STREAM_WINDOW
from asyncflow.testing import EventRecorder, FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from asyncflow import StateChange

RUNNING = (Running, "Starting task run.")
MAPPING = (Mapped, "Ready to proceed with mapping.")
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
FLOW_SUCCEEDED = (Success, "All reference tasks succeeded.")
FLOW_FAILED = (Failed, "Some reference tasks failed.")


def shape(states: Iterable[State]) -> list[tuple[type[State], str | None]]:
    """States as (exact class, message) pairs: results (exceptions) compare by identity."""
    return [(type(s), s.message) for s in states]


def one(state: State) -> tuple[type[State], str | None]:
    return (type(state), state.message)


def ok(*results: Any) -> list[Success]:
    """The final states of children that returned ``results``."""
    return [Success("Task run succeeded.", r) for r in results]


def mapped(*results: Any) -> Mapped:
    """The final state of a parent whose children all returned ``results``."""
    return Mapped("Ready to proceed with mapping.", list(results), map_states=ok(*results))


def child_events(recorder: EventRecorder, task_name: str, index: int) -> list[StateChange]:
    return [e for e in recorder.events if e.task_name == task_name and e.map_index == index]


def parent_events(recorder: EventRecorder, task_name: str) -> list[StateChange]:
    return [e for e in recorder.events if e.task_name == task_name and e.map_index is None]


async def run(flow: Flow, bus: EventBus, **kw: Any) -> State:
    with anyio.fail_after(5):  # a wrong engine deadlocks: fail instead of hanging the suite
        return await flow.run_async(bus=bus, **kw)


@task
def inc(x: int) -> int:
    return x + 1


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def collect(xs: list[Any]) -> list[Any]:
    return xs


async def numbers(n: int) -> AsyncIterator[int]:
    """An async generator of ``0 .. n-1``."""
    for i in range(n):
        await anyio.lowlevel.checkpoint()
        yield i


# -- what can be mapped over -----------------------------------------------------------------------


@task
def three_numbers() -> list[int]:
    return [1, 2, 3]


SOURCES: dict[str, Callable[[], Any]] = {
    "a list": lambda: [1, 2, 3],
    "a tuple": lambda: (1, 2, 3),
    "a range": lambda: range(1, 4),
    "a Parameter": lambda: Parameter("xs", default=[1, 2, 3]),
    "another task's result": lambda: three_numbers(),
    "a generator of values": lambda: (i for i in (1, 2, 3)),
}


class TestMappingSources:
    @pytest.mark.parametrize("source", SOURCES.values(), ids=SOURCES.keys())
    async def test_a_map_runs_one_child_per_item_of_its_input(
        self, bus: EventBus, source: Callable[[], Any]
    ) -> None:
        with Flow("sources") as flow:
            m = inc.map(source())

        state = await run(flow, bus)

        assert one(state) == FLOW_SUCCEEDED
        assert state.result[m] == mapped(2, 3, 4)

    async def test_a_map_over_a_parameter_follows_the_value_of_each_run(
        self, bus: EventBus
    ) -> None:
        with Flow("parameter") as flow:
            m = inc.map(Parameter("xs"))
            total = collect(m)

        runs = [[1, 2, 3], [], [41]]
        states = [await run(flow, bus, parameters={"xs": xs}) for xs in runs]

        assert [s.result[m] for s in states] == [mapped(2, 3, 4), mapped(), mapped(42)]
        assert [s.result[total].result for s in states] == [[2, 3, 4], [], [42]]

    @pytest.mark.parametrize(
        ("ys", "expected"),
        [
            pytest.param(lambda: unmapped(10), [11, 12, 13], id="a constant"),
            pytest.param(lambda: unmapped(ten()), [11, 12, 13], id="a task's result"),
        ],
    )
    async def test_an_unmapped_argument_goes_whole_to_every_child(
        self, bus: EventBus, ys: Callable[[], Any], expected: list[int]
    ) -> None:
        with Flow("unmapped") as flow:
            m = add.map(x=[1, 2, 3], y=ys())

        state = await run(flow, bus)

        assert state.result[m] == mapped(*expected)

    async def test_an_unmapped_list_is_not_mapped_over(self, bus: EventBus) -> None:
        @task
        def pair(x: int, ys: list[int]) -> tuple[int, list[int]]:
            return (x, ys)

        with Flow("unmapped-list") as flow:
            m = pair.map(x=[1, 2], ys=unmapped([7, 8, 9]))

        state = await run(flow, bus)

        assert state.result[m] == mapped((1, [7, 8, 9]), (2, [7, 8, 9]))

    @pytest.mark.parametrize(
        "nested",
        [
            pytest.param(lambda: [[1], [], [2, 3]], id="a constant"),
            pytest.param(lambda: nested_lists(), id="a task's result"),
            pytest.param(lambda: split.map([1, 2, 3]), id="the children of a mapped task"),
        ],
    )
    async def test_flatten_maps_over_the_items_of_a_list_of_lists(
        self, bus: EventBus, nested: Callable[[], Any]
    ) -> None:
        with Flow("flatten") as flow:
            m = inc.map(flatten(nested()))

        state = await run(flow, bus)

        assert state.result[m] == mapped(2, 3, 4)

    async def test_several_mapped_arguments_zip_item_by_item_to_the_shortest(
        self, bus: EventBus
    ) -> None:
        with Flow("zip") as flow:
            m = add.map(x=[1, 2, 3], y=[10, 20])

        state = await run(flow, bus)

        assert state.result[m] == mapped(11, 22)


@task
def ten() -> int:
    return 10


@task
def nested_lists() -> list[list[int]]:
    return [[1], [], [2, 3]]


@task
def split(x: int) -> list[int]:
    """``[1] -> [1]``, ``2 -> []``, ``3 -> [2, 3]``: a list of lists across the children."""
    return {1: [1], 2: [], 3: [2, 3]}[x]


@task
def nothing() -> None:
    return None


class TestUnmappableInputs:
    @pytest.mark.parametrize(
        ("argument", "message"),
        [
            pytest.param(
                lambda: 7, "At least one upstream state has an unmappable result.", id="a number"
            ),
            pytest.param(
                lambda: nothing(),
                "At least one upstream state has an unmappable result.",
                id="a task returning None",
            ),
        ],
    )
    async def test_the_parent_fails_with_prefect_1x_message_and_nothing_runs_below_it(
        self, bus: EventBus, recorder: EventRecorder, argument: Callable[[], Any], message: str
    ) -> None:
        with Flow("unmappable") as flow:
            m = inc.map(argument())
            per_index = inc.map(m)
            reduced = collect(m)

        state = await run(flow, bus)

        assert one(state.result[m]) == (Failed, message)
        assert shape(e.new_state for e in recorder.events if e.subject is m) == [(Failed, message)]
        assert [e for e in recorder.events if e.subject is m and e.map_index is not None] == []
        assert one(state.result[per_index]) == (Failed, "No upstream states can be mapped over.")
        assert one(state.result[reduced]) == TRIGGER_FAILED
        assert one(state) == FLOW_FAILED


# -- the parent and its children -------------------------------------------------------------------


class TestMappedParent:
    async def test_the_parent_goes_running_then_mapped_with_every_childs_state_and_result(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("parent") as flow:
            m = inc.map([1, 2, 3])

        state = await run(flow, bus)

        events = parent_events(recorder, "inc")
        assert [e.old_state for e in events] == [
            Pending(),
            Mapped("Ready to proceed with mapping."),
        ]
        assert shape(e.new_state for e in events) == [MAPPING, MAPPING]
        final = state.result[m]
        assert final is events[-1].new_state
        assert final == mapped(2, 3, 4)
        assert final.n_map_states == 3
        for i, child_state in enumerate(final.map_states):
            assert child_state is child_events(recorder, "inc", i)[-1].new_state

    async def test_the_parent_is_mapped_only_after_its_last_child_finished(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("parent-last") as flow:
            inc.map([1, 2, 3])

        await run(flow, bus)

        task_events = [e for e in recorder.events if e.task_name == "inc"]
        assert task_events[0].map_index is None  # Running("Starting mapped task run.") first
        assert task_events[-1].map_index is None
        assert isinstance(task_events[-1].new_state, Mapped)
        assert all(e.map_index is not None for e in task_events[1:-1])

    async def test_each_child_goes_pending_running_success_in_events_with_its_index_and_id(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("child-events") as flow:
            m = inc.map([1, 2, 3])

        await run(flow, bus, run_id="run-7")

        parent = parent_events(recorder, "inc")
        assert {e.task_run_id for e in parent} == {f"run-7/{m.slug}"}
        for i in range(3):
            events = child_events(recorder, "inc", i)
            assert [type(e.old_state) for e in events] == [Pending, Running]
            assert shape(e.new_state for e in events) == [RUNNING, SUCCEEDED]
            assert {e.task_run_id for e in events} == {f"run-7/{m.slug}[{i}]"}
            assert {e.subject for e in events} == {m}

    async def test_an_empty_input_gives_an_empty_mapped_and_an_empty_downstream_map(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("empty") as flow:
            first = inc.map([])
            second = inc.map(first)
            reduced = collect(second)

        state = await run(flow, bus)

        assert one(state) == FLOW_SUCCEEDED
        assert state.result[first] == Mapped("Ready to proceed with mapping.", [], map_states=[])
        assert state.result[second] == Mapped("Ready to proceed with mapping.", [], map_states=[])
        assert state.result[reduced].result == []
        assert [e for e in recorder.events if e.map_index is not None] == []

    async def test_children_see_their_own_map_index_and_run_id_in_context(
        self, bus: EventBus
    ) -> None:
        @task
        def where(x: str) -> tuple[Any, ...]:
            return (
                x,
                context.map_index,
                context.task_run_id,
                context.task_name,
                context.get("task_full_name"),
            )

        with Flow("child-context") as flow:
            m = where.map(["a", "b"])

        state = await run(flow, bus, run_id="r1")

        assert state.result[m].result == [
            ("a", 0, f"r1/{m.slug}[0]", "where", "where[0]"),
            ("b", 1, f"r1/{m.slug}[1]", "where", "where[1]"),
        ]

    @pytest.mark.parametrize(
        "template",
        [pytest.param("item-{x}", id="a format string"), pytest.param(lambda x: f"item-{x}")],
    )
    async def test_task_run_name_is_rendered_per_child_from_its_own_inputs(
        self, bus: EventBus, template: Any
    ) -> None:
        @task(task_run_name=template)
        def named(x: int) -> str:
            return context.task_run_name

        with Flow("names") as flow:
            m = named.map([5, 6, 7])

        state = await run(flow, bus)

        assert state.result[m].result == ["item-5", "item-6", "item-7"]

    async def test_state_handlers_see_the_parent_and_every_child(self, bus: EventBus) -> None:
        seen = []

        def handler(t: Task, old: State, new: State) -> None:
            seen.append((context.get("map_index"), type(old).__name__, type(new).__name__))

        @task(state_handlers=[handler])
        def watched(x: int) -> int:
            return x

        with Flow("handlers") as flow:
            watched.map([1, 2])

        await run(flow, bus)

        assert sorted(seen, key=repr) == sorted(
            [
                (None, "Pending", "Mapped"),
                (0, "Pending", "Running"),
                (0, "Running", "Success"),
                (1, "Pending", "Running"),
                (1, "Running", "Success"),
            ],
            key=repr,
        )
        assert seen[0] == (None, "Pending", "Mapped")  # once, when the map is ready (as in 1.x)


class TestChildRetries:
    async def test_a_failing_child_retries_on_its_own_while_its_siblings_finish(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock
    ) -> None:
        @task(max_retries=2, retry_delay=timedelta(minutes=10))
        def flaky(x: int) -> tuple[int, int]:
            if x == 1 and context.task_run_count == 1:
                raise ValueError("child 1 flaked")
            return (x, context.task_run_count)

        with Flow("child-retries") as flow:
            m = flaky.map([0, 1, 2])

        state = await run(flow, bus, clock=clock)

        assert state.result[m] == mapped((0, 1), (1, 2), (2, 1))
        assert shape(e.new_state for e in child_events(recorder, "flaky", 1)) == [
            RUNNING,
            (Failed, "Error during execution of task: ValueError('child 1 flaked')"),
            (Retrying, "Retrying Task (after attempt 1 of 3)"),
            RUNNING,
            SUCCEEDED,
        ]
        for i in (0, 2):
            assert shape(e.new_state for e in child_events(recorder, "flaky", i)) == [
                RUNNING,
                SUCCEEDED,
            ]
        retrying = child_events(recorder, "flaky", 1)[2]
        assert retrying.new_state.start_time.timestamp() == retrying.timestamp + 600
        assert child_events(recorder, "flaky", 1)[3].timestamp >= retrying.timestamp + 600

    async def test_downstream_children_of_other_indices_do_not_wait_for_a_retrying_child(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock
    ) -> None:
        @task(max_retries=1, retry_delay=timedelta(days=1))
        def flaky(x: int) -> int:
            if x == 1 and context.task_run_count == 1:
                raise ValueError("child 1 flaked")
            return x

        with Flow("retry-per-index") as flow:
            first = flaky.map([0, 1, 2])
            second = inc.map(first)

        state = await run(flow, bus, clock=clock)

        assert state.result[second] == mapped(1, 2, 3)
        retried_done = child_events(recorder, "flaky", 1)[-1]
        for i in (0, 2):
            assert child_events(recorder, "inc", i)[-1].seq < retried_done.seq
            assert child_events(recorder, "inc", i)[-1].timestamp == 0.0
        assert child_events(recorder, "inc", 1)[0].seq > retried_done.seq


# -- maps over maps --------------------------------------------------------------------------------


class TestPerIndexMaps:
    async def test_child_i_of_a_second_map_starts_when_child_i_of_the_first_finished(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        second_child_1_ran = anyio.Event()

        @task
        async def first(x: int) -> int:
            if x == 0:
                # Child 0 of the first map can finish only once child 1 of the second map ran:
                # with a barrier between the two maps this would deadlock.
                await second_child_1_ran.wait()
            return x

        @task
        async def second(x: int) -> int:
            if x == 1:
                second_child_1_ran.set()
            return x * 10

        with Flow("per-index") as flow:
            a = first.map([0, 1])
            b = second.map(a)

        state = await run(flow, bus)

        assert state.result[b] == mapped(0, 10)
        assert (
            child_events(recorder, "second", 1)[-1].seq < child_events(recorder, "first", 0)[-1].seq
        )

    async def test_three_nested_maps_with_uneven_timing_keep_each_index_on_its_own(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        through = [anyio.Event() for _ in range(4)]
        through[3].set()

        @task
        async def stage1(x: int) -> int:
            await through[x + 1].wait()  # index x starts only after index x+1 went all the way
            return x + 1

        @task
        async def stage2(x: int) -> int:
            return x * 10

        @task
        async def stage3(x: int) -> int:
            through[x // 10 - 1].set()
            return x + 5

        with Flow("uneven") as flow:
            s1 = stage1.map([0, 1, 2])
            s2 = stage2.map(s1)
            s3 = stage3.map(s2)
            reduced = collect(s3)

        state = await run(flow, bus)

        assert state.result[s3] == mapped(15, 25, 35)
        assert state.result[reduced].result == [15, 25, 35]
        ends = {
            (name, i): child_events(recorder, name, i)[-1].seq
            for name in ("stage1", "stage3")
            for i in range(3)
        }
        assert ends[("stage3", 2)] < ends[("stage1", 1)]
        assert ends[("stage3", 1)] < ends[("stage1", 0)]

    async def test_the_second_maps_parent_starts_before_the_first_map_finished(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        with Flow("parents") as flow:
            a = inc.map([1, 2])
            b = add.map(x=a, y=unmapped(100))

        state = await run(flow, bus)

        assert state.result[b] == mapped(102, 103)
        b_running = next(e for e in recorder.events if e.subject is b)
        a_mapped = parent_events(recorder, "inc")[-1]
        assert one(b_running.new_state) == MAPPING
        assert b_running.seq < a_mapped.seq

    async def test_a_failed_child_fails_the_trigger_of_the_same_index_downstream(
        self, bus: EventBus
    ) -> None:
        @task
        def div(x: int) -> float:
            return 10 / x

        with Flow("fail-per-index") as flow:
            a = div.map([1, 0, 5])
            b = inc.map(a)

        state = await run(flow, bus)

        assert shape(state.result[b].map_states) == [SUCCEEDED, TRIGGER_FAILED, SUCCEEDED]
        assert state.result[b].result[0] == 11.0
        assert state.result[b].result[2] == 3.0


# -- reduce: a normal task downstream of a map -----------------------------------------------------


@task
def divide(x: int) -> float:
    return 10 // x


class TestChildrenJudgeTheirTrigger:
    """As in Prefect 1.x, the parent maps and each child asks the trigger (decided once when
    every child sees the same upstream states)."""

    async def test_a_failed_unmapped_upstream_gives_trigger_failed_children(
        self, bus: EventBus
    ) -> None:
        @task
        def broken() -> int:
            raise ValueError("no")

        with Flow("unmapped-failed") as flow:
            t = add.map([1, 2, 3], unmapped(broken()))
        state = await flow.run_async(bus=bus)
        parent = state.result[t]
        assert type(parent) is Mapped
        assert [type(c) for c in parent.map_states] == [TriggerFailed] * 3
        assert state.is_failed()

    async def test_a_trigger_that_pauses_pauses_each_child_on_its_own(self, bus: EventBus) -> None:
        with Flow("approve-each") as flow:
            t = add.copy(trigger=triggers.manual_only).map([1, 2], unmapped(10))
        paused: set[int | None] = set()
        with anyio.fail_after(5):
            async with flow.start(bus=bus) as run:
                async for event in run.events():
                    if event.task_name == "add" and type(event.new_state) is Paused:
                        paused.add(event.map_index)
                        if paused == {0, 1}:  # both children wait, each for its own approval
                            run.resume(t, map_index=1)
                            run.resume(t, map_index=0)
        assert run.state.is_successful()
        assert run.task_states[t].result == [11, 12]


class TestReduce:
    async def test_a_normal_downstream_task_receives_the_list_of_child_results(
        self, bus: EventBus
    ) -> None:
        @task
        def total(xs: list[int]) -> int:
            return sum(xs)

        with Flow("reduce") as flow:
            s = total(inc.map([1, 2, 3]))

        state = await run(flow, bus)

        assert state.result[s].result == 9

    @pytest.mark.parametrize(
        ("trigger", "expected"),
        [
            (triggers.all_successful, TRIGGER_FAILED),
            (triggers.all_finished, SUCCEEDED),
            (triggers.any_failed, SUCCEEDED),
            (triggers.any_successful, SUCCEEDED),
            (
                triggers.all_failed,
                (
                    TriggerFailed,
                    'Trigger was "all_failed" but some of the upstream tasks succeeded.',
                ),
            ),
        ],
    )
    async def test_triggers_judge_a_mapped_upstream_by_its_children(
        self, bus: EventBus, trigger: Any, expected: tuple[type[State], str]
    ) -> None:
        with Flow("one-failing-child") as flow:
            m = divide.map([1, 0, 5])
            r = collect.copy(trigger=trigger)(m)

        state = await run(flow, bus)

        assert one(state.result[m]) == (Mapped, "Ready to proceed with mapping.")
        assert one(state.result[r]) == expected

    async def test_with_all_finished_the_reduce_gets_every_result_including_the_exception(
        self, bus: EventBus
    ) -> None:
        with Flow("all-finished") as flow:
            m = divide.map([1, 0, 5])
            r = collect.copy(trigger=triggers.all_finished)(m)

        state = await run(flow, bus)

        received = state.result[r].result
        assert received[0] == 10
        assert received[2] == 2
        assert isinstance(received[1], ZeroDivisionError)
        assert received[1] is state.result[m].map_states[1].result

    async def test_the_flow_fails_when_a_child_of_a_reference_task_failed(
        self, bus: EventBus
    ) -> None:
        with Flow("flow-state") as flow:
            m = divide.map([1, 0, 5])

        state = await run(flow, bus)

        assert one(state.result[m]) == (Mapped, "Ready to proceed with mapping.")
        assert one(state) == FLOW_FAILED


class TestSkipsPerIndex:
    async def test_a_skipped_child_skips_the_same_index_downstream_and_the_reduce(
        self, bus: EventBus
    ) -> None:
        @task
        def skip_two(x: int) -> int:
            if x == 2:
                raise signals.SKIP("not two")
            return x

        with Flow("skip-per-index") as flow:
            a = skip_two.map([1, 2, 3])
            b = inc.map(a)
            reduced = collect(b)
            tolerant = collect.copy(skip_on_upstream_skip=False)(b)

        state = await run(flow, bus)

        assert shape(state.result[a].map_states) == [SUCCEEDED, (Skipped, "not two"), SUCCEEDED]
        assert shape(state.result[b].map_states) == [SUCCEEDED, UPSTREAM_SKIPPED, SUCCEEDED]
        assert state.result[b].result == [2, None, 4]
        assert one(state.result[reduced]) == UPSTREAM_SKIPPED
        assert state.result[tolerant].result == [2, None, 4]
        assert one(state) == FLOW_SUCCEEDED


# -- async iterables as the mapped input -----------------------------------------------------------


class TestAsyncIterableSources:
    @pytest.mark.parametrize("given_as", ["a constant", "an upstream task's result"])
    async def test_children_start_before_the_generator_is_exhausted(
        self, bus: EventBus, given_as: str
    ) -> None:
        first_child_ran = anyio.Event()
        pulled: list[int] = []
        pulled_when_first_child_ran: list[int] = []

        async def lazy() -> AsyncIterator[int]:
            pulled.append(1)
            yield 1
            # The engine must start a child for item 1 before it can get item 2.
            await first_child_ran.wait()
            pulled.append(2)
            yield 2
            pulled.append(3)
            yield 3

        @task
        def source() -> AsyncIterator[int]:
            return lazy()

        @task
        async def work(x: int) -> int:
            if x == 1:
                pulled_when_first_child_ran.append(len(pulled))
                first_child_ran.set()
            return x * 10

        with Flow("lazy") as flow:
            m = work.map(lazy() if given_as == "a constant" else source())

        state = await run(flow, bus)

        assert state.result[m] == mapped(10, 20, 30)
        assert pulled_when_first_child_ran == [1]

    async def test_a_map_over_a_streamed_map_flows_index_by_index(self, bus: EventBus) -> None:
        downstream_child_0_ran = anyio.Event()

        async def lazy() -> AsyncIterator[int]:
            yield 0
            await downstream_child_0_ran.wait()
            yield 1

        @task
        async def mark(x: int) -> int:
            if x == 1:  # child 0 of the downstream map: item 0, incremented
                downstream_child_0_ran.set()
            return x

        with Flow("stream-per-index") as flow:
            a = inc.map(lazy())
            b = mark.map(a)  # items 1, 2

        state = await run(flow, bus)

        assert state.result[a] == mapped(1, 2)
        assert state.result[b] == mapped(1, 2)

    async def test_an_async_iterable_that_is_not_a_generator_is_consumed_as_items_arrive(
        self, bus: EventBus
    ) -> None:
        send, receive = anyio.create_memory_object_stream[int](0)
        seen = anyio.Event()

        @task
        async def work(x: int) -> int:
            if x == 1:
                seen.set()
            return x * 2

        async def produce() -> None:
            async with send:
                await send.send(1)
                await seen.wait()  # item 2 is sent only after item 1's child ran
                await send.send(2)

        with Flow("stream") as flow:
            m = work.map(receive)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                state = await flow.run_async(bus=bus)
        receive.close()

        assert state.result[m] == mapped(2, 4)

    async def test_at_most_a_window_of_children_is_unfinished_before_the_engine_pulls_more(
        self, bus: EventBus
    ) -> None:
        n_items = 3 * STREAM_WINDOW
        gate = anyio.Event()
        window_full = anyio.Event()
        started = 0
        finished = 0
        leads: list[int] = []  # for each item pulled: how many items ahead of finished ones

        async def many() -> AsyncIterator[int]:
            for i in range(n_items):
                leads.append(i - finished)
                yield i

        @task
        async def work(x: int) -> int:
            nonlocal started, finished
            started += 1
            if started == STREAM_WINDOW:
                window_full.set()
            await gate.wait()
            finished += 1
            return x

        with Flow("back-pressure") as flow:
            m = work.map(many())

        with anyio.fail_after(5):
            async with flow.start(bus=bus) as handle:
                await window_full.wait()
                await anyio.wait_all_tasks_blocked()
                assert (len(leads), started) == (STREAM_WINDOW, STREAM_WINDOW)
                gate.set()

        state = handle.state
        assert one(state) == FLOW_SUCCEEDED
        assert state.result[m].result == list(range(n_items))
        assert max(leads) == STREAM_WINDOW - 1  # never a child beyond the window

    async def test_an_async_iterable_zips_with_a_list_to_the_shortest(self, bus: EventBus) -> None:
        with Flow("zip-stream") as flow:
            m = add.map(x=numbers(5), y=[10, 20])
            n = add.map(x=[1, 2, 3], y=numbers(2))

        state = await run(flow, bus)

        assert state.result[m] == mapped(10, 21)
        assert state.result[n] == mapped(1, 3)

    async def test_an_empty_async_iterable_gives_an_empty_mapped(self, bus: EventBus) -> None:
        with Flow("empty-stream") as flow:
            m = inc.map(numbers(0))
            r = collect(m)

        state = await run(flow, bus)

        assert state.result[m] == Mapped("Ready to proceed with mapping.", [], map_states=[])
        assert state.result[r].result == []

    async def test_a_source_that_raises_fails_the_parent_after_the_children_it_gave(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        async def breaks() -> AsyncIterator[int]:
            yield 1
            yield 2
            raise RuntimeError("source broke")

        with Flow("broken-stream") as flow:
            m = inc.map(breaks())
            r = collect(m)

        state = await run(flow, bus)

        final = state.result[m]
        assert one(final) == (
            Failed,
            "Error while reading the mapped input: RuntimeError('source broke')",
        )
        assert isinstance(final.result, RuntimeError)
        assert [shape(e.new_state for e in child_events(recorder, "inc", i)) for i in (0, 1)] == [
            [RUNNING, SUCCEEDED],
            [RUNNING, SUCCEEDED],
        ]
        assert one(state.result[r]) == TRIGGER_FAILED
        assert one(state) == FLOW_FAILED

    async def test_an_async_iterable_cannot_be_flattened(self, bus: EventBus) -> None:
        with Flow("flatten-stream") as flow:
            m = inc.map(flatten(numbers(2)))

        state = await run(flow, bus)

        assert type(state.result[m]) is Failed
        assert state.result[m].message.startswith("Cannot map <Task: inc> over argument 'x'")
        assert state.result[m].message.endswith(": an async iterable cannot be flattened")


# -- the property: random chains of maps -----------------------------------------------------------

PROPERTY = settings(max_examples=40, deadline=None)
RETRY_DELAY = timedelta(minutes=10)
SOURCE_KINDS = ("list", "parameter", "task", "async generator")
CHAIN_TRIGGERS = {"all_successful": triggers.all_successful, "all_finished": triggers.all_finished}


@attrs.frozen
class Stage:
    fails: frozenset[int]  # indices whose child always raises (and fails its one retry too)
    flaky: frozenset[int]  # indices whose child fails its first attempt only
    is_async: bool
    trigger: str


@attrs.frozen
class Chain:
    items: tuple[int, ...]
    source: str
    stages: tuple[Stage, ...]


@st.composite
def chains(draw: st.DrawFn) -> Chain:
    items = tuple(draw(st.lists(st.integers(-50, 50), max_size=6)))
    indices = st.frozensets(st.integers(0, 5), max_size=3)
    stages = []
    for _ in range(draw(st.integers(1, 4))):
        fails = draw(indices)
        stages.append(
            Stage(
                fails=fails,
                flaky=draw(indices) - fails,
                is_async=draw(st.booleans()),
                trigger=draw(st.sampled_from(sorted(CHAIN_TRIGGERS))),
            )
        )
    return Chain(items, draw(st.sampled_from(SOURCE_KINDS)), tuple(stages))


class StageTask(Task):
    """Stage ``k``: ``x -> 2 * x + k`` (an upstream exception counts as ``-1``)."""

    def __init__(self, k: int, stage: Stage) -> None:
        super().__init__(
            name=f"s{k}",
            trigger=CHAIN_TRIGGERS[stage.trigger],
            max_retries=1,
            retry_delay=RETRY_DELAY,
        )
        self.k = k
        self.stage = stage

    def act(self, x: Any) -> int:
        i = context.map_index
        if i in self.stage.fails:
            raise ValueError(f"s{self.k}[{i}] failed")
        if i in self.stage.flaky and context.task_run_count == 1:
            raise ValueError(f"s{self.k}[{i}] flaked")
        return 2 * (-1 if isinstance(x, BaseException) else x) + self.k

    def run(self, x: Any) -> int:
        return self.act(x)


class AsyncStageTask(StageTask):
    async def run(self, x: Any) -> int:  # type: ignore[override]
        await anyio.lowlevel.checkpoint()
        return self.act(x)


@attrs.frozen
class ChainRun:
    final: State
    stages: list[Task]
    reduce: Task
    events: list[StateChange]

    def children(self, k: int) -> dict[int, list[StateChange]]:
        out: dict[int, list[StateChange]] = defaultdict(list)
        for e in self.events:
            if e.subject is self.stages[k] and e.map_index is not None:
                out[e.map_index].append(e)
        return out


def run_chain(chain: Chain) -> ChainRun:
    async def gen() -> AsyncIterator[int]:
        for x in chain.items:
            await anyio.lowlevel.checkpoint()
            yield x

    @task
    def items() -> list[int]:
        return list(chain.items)

    with Flow("random-chain") as flow:
        source: Any = {
            "list": lambda: list(chain.items),
            "parameter": lambda: Parameter("xs"),
            "task": lambda: items(),
            "async generator": lambda: gen(),
        }[chain.source]()
        stages: list[Task] = []
        for k, stage in enumerate(chain.stages):
            t = (AsyncStageTask if stage.is_async else StageTask)(k, stage)
            source = t.map(source)
            stages.append(source)
        reduce = collect.copy(trigger=triggers.all_finished)(source)
    flow.set_reference_tasks([stages[-1], reduce])
    parameters = {"xs": list(chain.items)} if chain.source == "parameter" else None
    bus, recorder = EventBus(), EventRecorder()
    bus.subscribe(recorder)

    async def main() -> State:
        with anyio.fail_after(20):
            return await flow.run_async(parameters, bus=bus, clock=FakeClock())

    final = anyio.run(main)
    return ChainRun(final, stages, reduce, list(recorder.events))


@attrs.frozen
class ExpectedChild:
    path: tuple[tuple[type[State], str | None], ...]
    value: int | None  # None: the child did not succeed


def interpret(chain: Chain) -> list[list[ExpectedChild]]:
    """What every child of every stage goes through, by Prefect 1.x rules."""
    out: list[list[ExpectedChild]] = []
    upstream: list[int | None] = list(chain.items)
    for k, stage in enumerate(chain.stages):
        children = []
        for i, x in enumerate(upstream):
            if x is None and stage.trigger == "all_successful":
                children.append(ExpectedChild((TRIGGER_FAILED,), None))
                continue
            failed = (
                Failed,
                f"Error during execution of task: ValueError('s{k}[{i}] "
                + ("failed')" if i in stage.fails else "flaked')"),
            )
            retrying = (Retrying, "Retrying Task (after attempt 1 of 2)")
            if i in stage.fails:
                path = (RUNNING, failed, retrying, RUNNING, failed)
                children.append(ExpectedChild(path, None))
                continue
            value = 2 * (-1 if x is None else x) + k
            if i in stage.flaky:
                children.append(
                    ExpectedChild((RUNNING, failed, retrying, RUNNING, SUCCEEDED), value)
                )
            else:
                children.append(ExpectedChild((RUNNING, SUCCEEDED), value))
        out.append(children)
        upstream = [c.value for c in children]
    return out


class TestRandomChainsOfMaps:
    @PROPERTY
    @given(chains())
    def test_every_parent_is_mapped_with_one_finished_child_per_input_item(
        self, chain: Chain
    ) -> None:
        result = run_chain(chain)
        for k, stage_task in enumerate(result.stages):
            parent = result.final.result[stage_task]
            assert type(parent) is Mapped, k
            assert parent.message == "Ready to proceed with mapping."
            assert len(parent.map_states) == len(parent.result) == len(chain.items)
            children = result.children(k)
            assert sorted(children) == list(range(len(chain.items)))
            for i, events in children.items():
                assert events[-1].new_state is parent.map_states[i]
                assert parent.map_states[i].is_finished()
                ends = [e for e in events[:-1] if e.new_state.is_finished()]
                assert all(type(e.new_state) is Failed for e in ends)  # then Retrying

    @PROPERTY
    @given(chains())
    def test_children_go_the_way_the_reference_interpreter_says(self, chain: Chain) -> None:
        result = run_chain(chain)
        expected = interpret(chain)
        for k, stage_task in enumerate(result.stages):
            parent = result.final.result[stage_task]
            children = result.children(k)
            for i, want in enumerate(expected[k]):
                assert tuple(shape(e.new_state for e in children[i])) == want.path, (k, i)
                if want.value is not None:
                    assert parent.result[i] == want.value, (k, i)
        last = expected[-1]
        received = result.final.result[result.reduce].result
        assert len(received) == len(last)
        for got, want in zip(received, last, strict=True):
            if want.value is not None:
                assert got == want.value
            elif want.path == (TRIGGER_FAILED,):
                assert type(got) is signals.TRIGGERFAIL
            else:
                assert type(got) is ValueError
        failed = any(c.value is None for c in last)
        assert one(result.final) == (FLOW_FAILED if failed else FLOW_SUCCEEDED)

    @PROPERTY
    @given(chains())
    def test_child_i_starts_only_after_child_i_upstream_finished(self, chain: Chain) -> None:
        result = run_chain(chain)
        for k in range(1, len(chain.stages)):
            before, after = result.children(k - 1), result.children(k)
            for i in after:
                assert before[i][-1].seq < after[i][0].seq, (k, i)

    @PROPERTY
    @given(chains())
    def test_events_carry_the_index_and_count_up_in_order(self, chain: Chain) -> None:
        result = run_chain(chain)
        assert [e.seq for e in result.events] == list(range(1, len(result.events) + 1))
        for k, stage_task in enumerate(result.stages):
            parent = [e for e in result.events if e.subject is stage_task and e.map_index is None]
            assert shape(e.new_state for e in parent) == [MAPPING, MAPPING]
            for i, events in result.children(k).items():
                assert {e.task_run_id for e in events} == {
                    f"{events[0].run_id}/{stage_task.slug}[{i}]"
                }
                assert parent[0].seq < events[0].seq
                assert events[-1].seq < parent[-1].seq
                for a, b in itertools.pairwise(events):
                    assert a.new_state is b.old_state


class TestMapOverASkippedMap:
    async def test_a_map_over_a_skipped_map_without_skip_cascade_ends_with_no_child(
        self, bus: EventBus
    ) -> None:
        """Its only source was skipped: as in Prefect 1.x, nothing to map over (not a hang)."""

        @task
        def skipper(x: int) -> int:
            raise signals.SKIP("not today")

        @task
        def never() -> list[int]:
            raise signals.SKIP("no items")

        @task(skip_on_upstream_skip=False, trigger=triggers.always_run)
        def tick() -> int:
            return 1

        with Flow("skipped-source") as flow:
            first = skipper.map(never())
            second = tick.map(upstream_tasks=[first])  # mapped, index by index, over `first`
        with anyio.fail_after(5):
            state = await flow.run_async(bus=bus)
        assert type(state.result[first]) is Skipped
        assert state.result[second] == Failed(
            "At least one upstream state has an unmappable result."
        )


# -- Prefect 1.x's mapping rules ---------------------------------------------------------------

READY = (Mapped, "Ready to proceed with mapping.")


@task
def maybe(x: int) -> list[int]:
    """``1 -> [1, 1]``; 2 skips; 3 fails; ``4 -> 4`` (not a list)."""
    if x == 2:
        raise signals.SKIP("two")
    if x == 3:
        raise ValueError("three")
    return [x, x] if x == 1 else x  # type: ignore[return-value]


class TestPrefect1Rules:
    async def test_the_parent_goes_pending_to_mapped_with_one_handler_call(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        calls: list[tuple[str, str]] = []

        def handler(t: Task, old: State, new: State) -> None:
            if context.get("map_index") is None:
                calls.append((repr(old), repr(new)))

        with Flow("parent-1x") as flow:
            m = inc.copy(state_handlers=[handler]).map([1, 2])

        state = await run(flow, bus)

        assert calls == [("Pending()", 'Mapped("Ready to proceed with mapping.")')]
        assert one(state.result[m]) == READY
        assert state.result[m].result == [2, 3]
        assert shape(state.result[m].map_states) == [SUCCEEDED, SUCCEEDED]
        assert shape(e.new_state for e in parent_events(recorder, "inc"))[0] == READY

    @pytest.mark.parametrize(
        ("argument", "message"),
        [
            (lambda: 7, "At least one upstream state has an unmappable result."),
            (lambda: nothing(), "At least one upstream state has an unmappable result."),
            (lambda: divide(0), "No upstream states can be mapped over."),
        ],
        ids=["a number", "None", "a failed upstream"],
    )
    async def test_unmappable_inputs_fail_the_parent_with_1x_messages(
        self, bus: EventBus, argument: Callable[[], Any], message: str
    ) -> None:
        with Flow("unmappable-1x") as flow:
            m = inc.map(argument())

        state = await run(flow, bus)

        assert one(state.result[m]) == (Failed, message)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ([1, 2, 3], [2, 3, 4]),
            ([[1], [2, 3]], [2, 3, 4]),
            ([[1], 2], None),  # not every item is iterable: mapped over as it is
        ],
        ids=["flat", "nested", "mixed"],
    )
    async def test_flatten_keeps_what_cannot_be_flattened(
        self, bus: EventBus, value: list[Any], expected: list[int] | None
    ) -> None:
        @task
        def first(x: Any) -> Any:
            return x[0] + 1 if isinstance(x, list) else x + 1

        with Flow("flatten-1x") as flow:
            m = (inc if expected is not None else first).map(flatten(value))

        state = await run(flow, bus)

        assert state.result[m].result == (expected if expected is not None else [2, 3])

    async def test_flattening_a_mapped_upstream_keeps_failed_and_skipped_children_in_place(
        self, bus: EventBus
    ) -> None:
        with Flow("flatten-children") as flow:
            m = maybe.map([1, 2, 3, 4])
            f = inc.map(flatten(m))

        state = await run(flow, bus)

        final = state.result[f]
        assert one(final) == READY
        assert shape(final.map_states) == [
            SUCCEEDED,
            SUCCEEDED,
            UPSTREAM_SKIPPED,
            TRIGGER_FAILED,
            SUCCEEDED,
        ]
        assert final.result[:3] == [2, 2, None]
        assert isinstance(final.result[3], signals.TRIGGERFAIL)
        assert final.result[4] == 5

    async def test_a_keyless_mapped_upstream_task_is_mapped_over(self, bus: EventBus) -> None:
        calls: list[int | None] = []

        @task
        def tick() -> None:
            calls.append(context.map_index)

        with Flow("keyless") as flow:
            m = tick.map(upstream_tasks=[three_numbers()])

        state = await run(flow, bus)

        assert state.result[m].result == [None, None, None]
        assert sorted(calls) == [0, 1, 2]
