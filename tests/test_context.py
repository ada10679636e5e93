"""``asyncflow.context``: what task code can read about the run it belongs to.

Inside a task the Prefect 1.x keys are set (``flow_name``, ``flow_run_id``, ``task_name``, ...);
outside a run the context is empty; concurrent runs never see each other's keys.
"""

from __future__ import annotations

import contextvars
import re
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from asyncflow import Flow, Parameter, context, task
from asyncflow.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

    from asyncflow import EventBus

KEYS = (
    "flow_name",
    "flow_run_id",
    "task_name",
    "task_run_count",
    "map_index",
    "parameters",
    "today",
    "yesterday",
    "tomorrow",
)


def snapshot() -> dict[str, Any]:
    """The context keys under test, as a task sees them."""
    values = {key: context.get(key) for key in KEYS}
    values["logger_has_info"] = callable(getattr(context.get("logger"), "info", None))
    values["attribute_access"] = context.flow_name
    return values


def sync_probe(x: int) -> dict[str, Any]:
    return snapshot()


async def async_probe(x: int) -> dict[str, Any]:
    await anyio.lowlevel.checkpoint()
    return snapshot()


class TestInsideATask:
    @pytest.mark.parametrize("fn", [sync_probe, async_probe], ids=["sync", "async"])
    async def test_a_task_sees_its_run_in_the_context(
        self, bus: EventBus, fn: Callable[..., Any]
    ) -> None:
        probe = task(fn, name="probe")
        with Flow("ctx-flow") as flow:
            t = probe(Parameter("x"))

        state = await flow.run_async(
            parameters={"x": 1}, bus=bus, run_id="run-123", clock=FakeClock(start=0)
        )

        assert state.result[t].result == {
            "flow_name": "ctx-flow",
            "flow_run_id": "run-123",
            "task_name": "probe",
            "task_run_count": 1,
            "map_index": None,
            "parameters": {"x": 1},
            "today": "1970-01-01",
            "yesterday": "1969-12-31",
            "tomorrow": "1970-01-02",
            "logger_has_info": True,
            "attribute_access": "ctx-flow",
        }

    async def test_dates_on_the_system_clock_are_consecutive_iso_days(self, bus: EventBus) -> None:
        @task
        def dates() -> tuple[str, str, str]:
            return (context.yesterday, context.today, context.tomorrow)

        with Flow("dates") as flow:
            t = dates()

        state = await flow.run_async(bus=bus)

        yesterday, today, tomorrow = state.result[t].result
        for value in (yesterday, today, tomorrow):
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
        day = timedelta(days=1)
        assert date.fromisoformat(today) - date.fromisoformat(yesterday) == day
        assert date.fromisoformat(tomorrow) - date.fromisoformat(today) == day

    async def test_task_run_count_increments_on_each_retry(self, bus: EventBus) -> None:
        counts = []

        @task(max_retries=3, retry_delay=timedelta(minutes=5))
        def flaky() -> int:
            counts.append(context.task_run_count)
            if context.task_run_count < 3:
                raise ValueError("not yet")
            return context.task_run_count

        with Flow("run-count") as flow:
            t = flaky()

        state = await flow.run_async(bus=bus, clock=FakeClock())

        assert counts == [1, 2, 3]
        assert state.result[t].result == 3

    @pytest.mark.parametrize(
        ("template", "expected"),
        [("greet-{name}", "greet-ada"), (lambda name: name.upper(), "ADA")],
        ids=["format-string", "callable"],
    )
    async def test_task_run_name_is_rendered_from_the_inputs(
        self, bus: EventBus, template: Any, expected: str
    ) -> None:
        @task(task_run_name=template)
        def greet(name: str) -> str:
            return context.task_run_name

        with Flow("run-name") as flow:
            t = greet("ada")

        state = await flow.run_async(bus=bus)

        assert state.result[t].result == expected

    async def test_get_returns_the_default_for_a_missing_key(self, bus: EventBus) -> None:
        @task
        def probe() -> Any:
            return context.get("no_such_key", "fallback")

        with Flow("get-default") as flow:
            t = probe()

        state = await flow.run_async(bus=bus)

        assert state.result[t].result == "fallback"


class TestOutsideARun:
    def test_get_returns_none_or_the_default(self) -> None:
        assert context.get("flow_name") is None
        assert context.get("flow_name", "no run") == "no run"

    def test_a_missing_key_raises_attribute_error(self) -> None:
        with pytest.raises(AttributeError, match="flow_name"):
            _ = context.flow_name

    def test_calling_the_context_adds_keys_for_the_block(self) -> None:
        with context(x=1):
            assert context.x == 1
            assert context.get("x") == 1
            with context(x=2, y=3):
                assert (context.x, context.y) == (2, 3)
            assert context.x == 1
            assert context.get("y") is None
        with pytest.raises(AttributeError, match="'x'"):
            _ = context.x


class TestIsolation:
    async def test_two_concurrent_runs_do_not_see_each_other(self, bus: EventBus) -> None:
        arrived = {"run-1": anyio.Event(), "run-2": anyio.Event()}

        @task
        async def probe(x: int) -> tuple[str, int, int, str]:
            me = context.flow_run_id
            other = "run-2" if me == "run-1" else "run-1"
            arrived[me].set()
            await arrived[other].wait()  # both runs are now inside their task at once
            return (context.flow_run_id, context.parameters["x"], x, context.flow_name)

        with Flow("isolated") as flow:
            t = probe(Parameter("x"))

        results: dict[str, Any] = {}

        async def run(run_id: str, x: int) -> None:
            state = await flow.run_async(parameters={"x": x}, bus=bus, run_id=run_id)
            results[run_id] = state.result[t].result

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "run-1", 1)
                tg.start_soon(run, "run-2", 2)

        assert results == {
            "run-1": ("run-1", 1, 1, "isolated"),
            "run-2": ("run-2", 2, 2, "isolated"),
        }

    async def test_the_context_is_empty_again_after_a_run(self, bus: EventBus) -> None:
        @task
        def probe() -> str:
            return context.flow_name

        with Flow("leaves-nothing") as flow:
            probe()

        await flow.run_async(bus=bus)

        assert context.get("flow_name") is None


class TestWritingTheContext:
    """Prefect 1.x's context is a writable dict; writes last until the block ends."""

    def test_a_mapping_may_be_given_instead_of_keywords(self) -> None:
        with context(dict(x=1), y=2) as ctx:  # noqa: C408 - 1.x's own spelling
            assert (context.x, context.y) == (1, 2)
            assert ctx is context

    def test_attribute_and_item_assignment_inside_a_block_last_until_it_ends(self) -> None:
        with context(a=1):
            context.a = 2
            context["b"] = 3
            assert (context.a, context.b) == (2, 3)
            with context(c=4):
                context.a = 5
                assert context.a == 5
            assert context.a == 2
            assert "c" not in context
        assert "a" not in context
        assert "b" not in context

    def test_update_sets_several_keys(self) -> None:
        with context(a=1):
            context.update(a=2, b=3)
            context.update({"c": 4})
            assert (context.a, context.b, context.c) == (2, 3, 4)
        assert context.get("b") is None

    def test_setdefault_sets_only_a_missing_key(self) -> None:
        with context():
            assert "a" not in context
            assert context.setdefault("a", 5) == 5
            assert context.setdefault("a", 10) == 5
            assert context.a == 5
        assert "a" not in context

    def test_writes_outside_a_block_last_for_the_current_thread_or_task(self) -> None:
        def write_then_read() -> Any:
            context.team = "data"
            return context.team

        isolated = contextvars.copy_context()
        assert isolated.run(write_then_read) == "data"
        assert isolated.run(lambda: context.team) == "data"
        assert "team" not in context

    def test_the_context_reads_like_a_mapping(self) -> None:
        with context(a=1, b=2):
            assert sorted(context) == ["a", "b"]
            assert len(context) == 2
            assert sorted(context.keys()) == ["a", "b"]
            assert sorted(context.items()) == [("a", 1), ("b", 2)]
            assert context.to_dict() == {"a": 1, "b": 2}
            assert context["a"] == 1
            assert repr(context) == "<Context: ['a', 'b']>"

    @pytest.mark.parametrize("kind", ["sync", "async"])
    async def test_a_write_in_a_task_stays_in_that_task_run(self, bus: EventBus, kind: str) -> None:
        def write() -> int:
            context.shared = 1
            return int(context.shared)

        async def awrite() -> int:
            return write()

        writer = task(write if kind == "sync" else awrite, name="writer")

        @task
        def reader(x: int) -> Any:
            return context.get("shared", "unset")

        with Flow("writes") as flow:
            r = reader(writer())

        state = await flow.run_async(bus=bus)

        assert state.result[r].result == "unset"
        assert "shared" not in context


def caller_probe() -> dict[str, Any]:
    return {"team": context.get("team"), "flow_name": context.get("flow_name")}


async def async_caller_probe() -> dict[str, Any]:
    await anyio.lowlevel.checkpoint()
    return caller_probe()


class TestTheCallersContextInARun:
    """``with context(KEY=v): flow.run()``: tasks and handlers see KEY under the run's keys."""

    @pytest.mark.parametrize("fn", [caller_probe, async_caller_probe], ids=["sync", "async"])
    async def test_tasks_see_the_callers_keys_under_the_runs_own(
        self, bus: EventBus, fn: Callable[..., Any]
    ) -> None:
        probe = task(fn, name="probe")
        with Flow("layered") as flow:
            t = probe()

        with context(team="data", flow_name="shadowed"):
            state = await flow.run_async(bus=bus)

        assert state.result[t].result == {"team": "data", "flow_name": "layered"}

    def test_the_sync_front_door_carries_the_context_into_its_loop(self) -> None:
        probe = task(caller_probe, name="probe")
        with Flow("sync-door") as flow:
            t = probe()

        with context(team="ops"):
            state = flow.run()

        assert state.result[t].result == {"team": "ops", "flow_name": "sync-door"}

    async def test_handlers_see_the_callers_keys(self, bus: EventBus) -> None:
        seen: list[tuple[str, Any]] = []

        def task_handler(obj: Any, old: Any, new: Any) -> None:
            seen.append(("task", context.get("team")))

        def flow_handler(obj: Any, old: Any, new: Any) -> None:
            seen.append(("flow", context.get("team")))

        probe = task(caller_probe, name="probe", state_handlers=[task_handler])
        with Flow("handlers", state_handlers=[flow_handler]) as flow:
            probe()

        with context(team="data"):
            await flow.run_async(bus=bus)

        assert seen == [("flow", "data"), ("task", "data"), ("task", "data"), ("flow", "data")]

    async def test_the_callers_context_is_unchanged_after_the_run(self, bus: EventBus) -> None:
        with Flow("after") as flow:
            task(caller_probe, name="probe")()

        with context(team="data"):
            await flow.run_async(bus=bus)
            assert context.to_dict() == {"team": "data"}


class TestBuildingFlowsInContext:
    def test_context_flow_is_the_flow_of_the_enclosing_with_block(self) -> None:
        assert "flow" not in context
        with Flow("outer") as outer:
            assert context.flow is outer
            with Flow("inner") as inner:
                assert context.flow is inner
            assert context.flow is outer
        assert "flow" not in context

    def test_a_flow_in_the_context_is_where_called_tasks_go(self) -> None:
        probe = task(caller_probe, name="probe")
        flow = Flow("by-context")
        with context(flow=flow):
            t = probe()
        assert flow.tasks == {t}

    def test_context_case_is_the_enclosing_case_block(self) -> None:
        from asyncflow import case

        probe = task(caller_probe, name="probe")
        with Flow("cases"):
            cond = probe()
            with case(cond, True) as branch:
                assert context.case is branch
            assert "case" not in context
