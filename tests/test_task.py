"""Specification of ``Task``, ``@task`` and the functional API (asyncflow/task.py, decorators.py,
tasks/core.py): construction and validation, copies, binding inside ``with Flow(...)``, ``t[key]``,
``nout`` unpacking and collections of tasks."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import Edge, Flow, Task, TaskBindError, caching, task, triggers
from asyncflow.exceptions import NoActiveFlowError
from asyncflow.results import PrefectResult
from asyncflow.states import Success
from asyncflow.tasks.core import Dict, GetItem, List, Set, Tuple

if TYPE_CHECKING:
    from asyncflow import EventBus


def handler(task: Any, old: Any, new: Any) -> None:
    return None


def on_failure(task: Any, state: Any) -> None:
    return None


def trigger(upstream_states: Any) -> bool:
    return True


def task_run_name(**inputs: Any) -> str:
    return "run"


def validator(*args: Any) -> bool:
    return True


def run_taking_mapped(self: Task, mapped: bool) -> None:
    return None


def run_taking_task_args(self: Task, task_args: Any) -> None:
    return None


def run_taking_upstream_tasks(self: Task, upstream_tasks: Any) -> None:
    return None


def run_taking_flow(self: Task, flow: Any) -> None:
    return None


@task
def one() -> int:
    return 1


@task
def two() -> int:
    return 2


@task
def identity(x: Any) -> Any:
    return x


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task(nout=2)
def pair() -> tuple[int, int]:
    return 10, 20


class TestTaskConstructor:
    def test_every_argument_is_accepted_and_stored(self) -> None:
        executor = object()
        result = PrefectResult()
        t = Task(
            name="full",
            slug="full-slug",
            tags=["a", "b"],
            max_retries=3,
            retry_delay=timedelta(seconds=5),
            retry_on=ValueError,
            timeout=2,
            trigger=trigger,
            skip_on_upstream_skip=False,
            cache_for=timedelta(minutes=1),
            cache_validator=validator,
            cache_key="shared",
            checkpoint=True,
            result=result,
            target="{task_name}.txt",
            state_handlers=[handler],
            on_failure=on_failure,
            log_stdout=True,
            nout=2,
            task_run_name="run-{x}",
            executor=executor,
        )
        assert t.name == "full"
        assert t.slug == "full-slug"
        assert t.tags == {"a", "b"}
        assert t.max_retries == 3
        assert t.retry_delay == timedelta(seconds=5)
        assert t.retry_on == (ValueError,)
        assert t.timeout == 2.0
        assert t.trigger is trigger
        assert t.skip_on_upstream_skip is False
        assert t.cache_for == timedelta(minutes=1)
        assert t.cache_validator is validator
        assert t.cache_key == "shared"
        assert t.checkpoint is True
        assert t.result is result
        assert t.target == "{task_name}.txt"
        assert t.state_handlers == [handler]
        assert t.on_failure is on_failure
        assert t.log_stdout is True
        assert t.nout == 2
        assert t.task_run_name == "run-{x}"
        assert t.executor is executor

    def test_the_defaults_are_prefects(self) -> None:
        t = Task()
        assert t.name == "Task"
        assert t.slug is None
        assert t.tags == set()
        assert t.max_retries == 0
        assert t.retry_delay is None
        assert t.retry_on is None
        assert t.timeout is None
        assert t.trigger is triggers.all_successful
        assert t.skip_on_upstream_skip is True
        assert t.cache_for is None
        assert t.cache_validator is caching.never_use
        assert t.cache_key is None
        assert t.checkpoint is None
        assert t.result is None
        assert t.target is None
        assert t.state_handlers == []
        assert t.on_failure is None
        assert t.log_stdout is False
        assert t.nout is None
        assert t.task_run_name is None
        assert t.executor is None

    def test_the_default_name_is_the_class_name(self) -> None:
        class LoadRows(Task):
            pass

        assert LoadRows().name == "LoadRows"
        assert LoadRows(name="other").name == "other"

    def test_repr_shows_the_name(self) -> None:
        assert repr(Task(name="extract")) == "<Task: extract>"
        assert repr(Task()) == "<Task: Task>"

    @pytest.mark.parametrize(
        ("retry_delay", "stored"),
        [
            (timedelta(seconds=3), timedelta(seconds=3)),
            (0, 0),
            (2.5, 2.5),
            ([1, 2, timedelta(seconds=4)], [1, 2, timedelta(seconds=4)]),
            ((1, 2), [1, 2]),
            (task_run_name, task_run_name),
        ],
    )
    def test_retry_delay_accepts_durations_lists_and_callables(
        self, retry_delay: Any, stored: Any
    ) -> None:
        assert Task(retry_delay=retry_delay, max_retries=1).retry_delay == stored

    @pytest.mark.parametrize(
        ("retry_on", "stored"),
        [
            (ValueError, (ValueError,)),
            ([ValueError, KeyError], (ValueError, KeyError)),
            ((OSError,), (OSError,)),
        ],
    )
    def test_retry_on_is_stored_as_a_tuple_of_exception_types(
        self, retry_on: Any, stored: tuple[type[BaseException], ...]
    ) -> None:
        assert Task(retry_on=retry_on, max_retries=1, retry_delay=0).retry_on == stored

    def test_timeout_accepts_seconds_or_a_timedelta(self) -> None:
        assert Task(timeout=1.5).timeout == 1.5
        assert Task(timeout=timedelta(minutes=1)).timeout == 60.0

    @pytest.mark.parametrize(
        ("value", "error"), [(-1, ValueError), (True, TypeError), (1.5, TypeError)]
    )
    def test_max_retries_must_be_a_non_negative_int(self, value: Any, error: type) -> None:
        with pytest.raises(error, match=r"^<Task: t>: max_retries") as exc_info:
            Task(name="t", max_retries=value)
        assert str(exc_info.value) == f"<Task: t>: max_retries must be an int >= 0, got {value!r}"

    @pytest.mark.parametrize("value", [-1, -0.5, True, "5", [], [1, "x"], [-1], {1: 2}])
    def test_retry_delay_refuses_other_types(self, value: Any) -> None:
        with pytest.raises(TypeError) as exc_info:
            Task(name="t", retry_delay=value)
        assert str(exc_info.value) == (
            "<Task: t>: retry_delay must be a timedelta, seconds >= 0, a non-empty list of them, "
            f"or a callable attempt -> seconds; got {value!r}"
        )

    @pytest.mark.parametrize(
        ("value", "culprit"),
        [
            (int, int),
            ([ValueError, 3], 3),
            ([ValueError, object], object),
        ],
    )
    def test_retry_on_refuses_what_is_not_an_exception_type(
        self, value: Any, culprit: object
    ) -> None:
        with pytest.raises(TypeError) as exc_info:
            Task(name="t", retry_on=value)
        assert str(exc_info.value) == (
            f"<Task: t>: retry_on must hold exception types, got {culprit!r}"
        )

    @pytest.mark.parametrize("value", [0, -1, 0.0, timedelta(0), timedelta(seconds=-1)])
    def test_timeout_must_be_positive(self, value: Any) -> None:
        with pytest.raises(ValueError, match=r"^<Task: t>: timeout") as exc_info:
            Task(name="t", timeout=value)
        assert str(exc_info.value) == (
            f"<Task: t>: timeout must be a positive number of seconds, got {value!r}"
        )

    def test_a_non_callable_trigger_is_refused(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            Task(name="t", trigger="all_successful")  # type: ignore[arg-type]
        assert str(exc_info.value) == "<Task: t>: trigger must be callable, got 'all_successful'"

    def test_a_non_callable_state_handler_is_refused(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            Task(name="t", state_handlers=[handler, 1])  # type: ignore[list-item]
        assert str(exc_info.value) == "<Task: t>: state handler 1 is not callable"

    def test_a_non_callable_on_failure_is_refused(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            Task(name="t", on_failure="notify")  # type: ignore[arg-type]
        assert str(exc_info.value) == "<Task: t>: on_failure must be callable, got 'notify'"

    def test_tags_given_as_a_string_are_refused(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            Task(name="t", tags="etl")
        assert str(exc_info.value) == (
            "<Task: t>: tags must be a collection of strings, not a string"
        )

    def test_a_negative_nout_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"^<Task: t>: nout") as exc_info:
            Task(name="t", nout=-1)
        assert str(exc_info.value) == "<Task: t>: nout must be an int >= 0, got -1"


class TestSubclassing:
    async def test_a_subclass_overrides_run_with_a_sync_method(self, bus: EventBus) -> None:
        class Double(Task):
            def run(self, x: int) -> int:
                return 2 * x

        with Flow("f") as flow:
            doubled = Double()(x=21)
        state = await flow.run_async(bus=bus)
        assert state.result[doubled] == Success("Task run succeeded.", result=42)
        assert not inspect.iscoroutinefunction(doubled.run)

    async def test_a_subclass_overrides_run_with_an_async_method(self, bus: EventBus) -> None:
        class Double(Task):
            async def run(self, x: int) -> int:
                return 2 * x

        with Flow("f") as flow:
            doubled = Double()(x=21)
        state = await flow.run_async(bus=bus)
        assert state.result[doubled].result == 42
        assert inspect.iscoroutinefunction(doubled.run)

    def test_a_subclass_keeps_its_own_attributes_when_it_calls_super_init(self) -> None:
        class Query(Task):
            def __init__(self, sql: str, **kwargs: Any) -> None:
                self.sql = sql
                super().__init__(**kwargs)

            def run(self) -> str:
                return self.sql

        q = Query("select 1", name="q", max_retries=2, retry_delay=1)
        assert (q.sql, q.name, q.max_retries) == ("select 1", "q", 2)
        assert q.run() == "select 1"

    def test_the_base_run_does_nothing(self) -> None:
        assert Task().run() is None


class TestCopy:
    def test_a_copy_has_no_slug_and_the_same_settings(self) -> None:
        t = Task(
            name="t",
            slug="t-slug",
            tags={"a"},
            max_retries=2,
            retry_delay=1,
            state_handlers=[handler],
        )
        c = t.copy()
        assert c is not t
        assert c.slug is None
        assert t.slug == "t-slug"
        assert (c.name, c.tags, c.max_retries, c.state_handlers) == ("t", {"a"}, 2, [handler])

    def test_a_copys_tags_and_handlers_are_independent(self) -> None:
        t = Task(name="t", tags={"a"}, state_handlers=[handler])
        c = t.copy()
        c.tags.add("b")
        c.state_handlers.append(on_failure)
        assert t.tags == {"a"}
        assert t.state_handlers == [handler]
        assert c.tags == {"a", "b"}

    def test_a_copy_takes_new_attribute_values(self) -> None:
        c = Task(name="t").copy(name="renamed", max_retries=4)
        assert (c.name, c.max_retries) == ("renamed", 4)

    def test_a_copy_refuses_unknown_attributes_with_an_attribute_error(self) -> None:
        with pytest.raises(AttributeError) as exc_info:
            Task(name="t").copy(colour="red")
        assert str(exc_info.value) == "<Task: t>: task_args has unknown attribute 'colour'"

    def test_a_copy_of_a_function_task_runs_the_same_function(self) -> None:
        c = add.copy()
        assert c.run is add.run
        assert c.run(1, 2) == 3

    def test_each_copy_added_to_a_flow_gets_a_fresh_slug(self) -> None:
        flow = Flow("f")
        t = Task(name="t")
        first, second = flow.add_task(t.copy()), flow.add_task(t.copy())
        assert (first.slug, second.slug) == ("t-1", "t-2")
        assert t.slug is None


class TestTaskDecorator:
    def test_the_bare_decorator_names_the_task_after_the_function(self) -> None:
        def load_rows(x: int, *, limit: int = 5) -> int:
            """Load rows."""
            return x + limit

        t = task(load_rows)
        assert isinstance(t, Task)
        assert t.name == "load_rows"
        assert repr(t) == "<Task: load_rows>"
        assert t.run is load_rows
        assert inspect.signature(t.run) == inspect.signature(load_rows)
        assert t.__doc__ == "Load rows."
        assert t.__wrapped__ is load_rows  # type: ignore[attr-defined]

    def test_the_decorator_with_arguments_passes_them_to_task(self) -> None:
        @task(name="custom", max_retries=2, retry_delay=1, tags=["io"], nout=3)
        def fetch() -> None:
            return None

        assert (fetch.name, fetch.max_retries, fetch.tags, fetch.nout) == (
            "custom",
            2,
            {"io"},
            3,
        )
        assert fetch.run() is None

    def test_the_decorator_with_empty_parentheses_works(self) -> None:
        @task()
        def fetch() -> int:
            return 7

        assert fetch.name == "fetch"
        assert fetch.run() == 7

    def test_a_sync_function_stays_a_plain_function(self) -> None:
        assert not inspect.iscoroutinefunction(add.run)

    async def test_an_async_function_stays_a_coroutine_function(self) -> None:
        @task
        async def fetch(x: int) -> int:
            return x * 3

        assert inspect.iscoroutinefunction(fetch.run)
        assert await fetch.run(2) == 6

    @pytest.mark.parametrize("kind", ["sync", "async"])
    async def test_a_decorated_function_runs_in_a_flow(self, kind: str, bus: EventBus) -> None:
        def inc_sync(x: int) -> int:
            return x + 1

        async def inc_async(x: int) -> int:
            return x + 1

        inc = task(inc_sync if kind == "sync" else inc_async)
        with Flow("f") as flow:
            result = inc(inc(1))
        state = await flow.run_async(bus=bus)
        assert state.result[result] == Success("Task run succeeded.", result=3)

    def test_the_decorator_validates_task_arguments(self) -> None:
        with pytest.raises(ValueError, match=r"^<Task: fetch>: max_retries") as exc_info:

            @task(max_retries=-1)
            def fetch() -> None:
                return None

        assert str(exc_info.value) == "<Task: fetch>: max_retries must be an int >= 0, got -1"

    def test_the_decorator_needs_a_callable(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            task(42)  # type: ignore[call-overload]
        assert str(exc_info.value) == "@task needs a function, got 42"

    def test_calling_a_task_outside_a_flow_names_the_task(self) -> None:
        with pytest.raises(NoActiveFlowError) as exc_info:
            add(1, 2)
        assert str(exc_info.value) == (
            "<Task: add> was called outside a flow: use it inside `with Flow(...):` or pass "
            "flow=; to run the function itself, call task.run(...)"
        )

    def test_no_active_flow_error_is_a_runtime_error(self) -> None:
        with pytest.raises(RuntimeError):
            one()

    def test_the_function_itself_is_called_through_run(self) -> None:
        assert add.run(1, 2) == 3


class TestCalling:
    def test_calling_a_task_binds_a_copy_and_leaves_the_original_alone(self) -> None:
        with Flow("f") as flow:
            bound = add(1)
        assert bound is not add
        assert bound.name == "add"
        assert flow.tasks == {bound}
        assert add not in flow.tasks
        assert add.slug is None
        assert bound.slug == "add-1"

    def test_calling_a_task_twice_gives_two_tasks(self) -> None:
        with Flow("f") as flow:
            first, second = add(1), add(2)
        assert first is not second
        assert flow.tasks == {first, second}
        assert flow.constants == {first: {"x": 1}, second: {"x": 2}}

    def test_plain_values_become_constants(self) -> None:
        with Flow("f") as flow:
            bound = add(1, y=5)
        assert flow.constants == {bound: {"x": 1, "y": 5}}
        assert flow.edges == set()

    def test_tasks_as_arguments_become_keyed_edges(self) -> None:
        with Flow("f") as flow:
            a = one()
            b = two()
            total = add(a, y=b)
        assert flow.edges == {Edge(a, total, key="x"), Edge(b, total, key="y")}
        assert flow.constants == {}

    def test_upstream_tasks_become_edges_without_a_key(self) -> None:
        with Flow("f") as flow:
            a = one()
            b = add(1, upstream_tasks=[a])
        assert flow.edges == {Edge(a, b)}
        assert flow.constants == {b: {"x": 1}}

    def test_task_args_change_the_copy_only(self) -> None:
        with Flow("f") as flow:
            bound = add(1, task_args={"name": "renamed", "tags": {"x"}, "max_retries": 2})
        assert (bound.name, bound.tags, bound.max_retries) == ("renamed", {"x"}, 2)
        assert (add.name, add.tags, add.max_retries) == ("add", set(), 0)
        assert flow.get_tasks(name="renamed") == [bound]

    def test_flow_keyword_binds_without_a_with_block(self) -> None:
        flow = Flow("f")
        bound = add(1, flow=flow)
        assert flow.tasks == {bound}
        assert flow.constants == {bound: {"x": 1}}

    def test_bind_binds_the_task_itself_without_copying(self) -> None:
        t = add.copy()
        with Flow("f") as flow:
            assert t.bind(3) is t
        assert flow.tasks == {t}
        assert flow.constants == {t: {"x": 3}}

    async def test_a_bound_chain_runs_with_the_bound_values(self, bus: EventBus) -> None:
        with Flow("f") as flow:
            total = add(add(1, y=10), y=100)
        state = await flow.run_async(bus=bus)
        assert state.result[total].result == 111

    def test_an_unknown_keyword_is_refused_naming_the_task(self) -> None:
        with Flow("f"), pytest.raises(TaskBindError) as exc_info:
            add(1, z=2)
        assert str(exc_info.value) == (
            "<Task: add>: got an unexpected keyword argument 'z' (run signature: (x: 'int', "
            "y: 'int' = 1) -> 'int')"
        )

    def test_a_missing_positional_argument_is_refused_naming_the_task(self) -> None:
        with Flow("f"), pytest.raises(TaskBindError) as exc_info:
            add(y=2)
        assert str(exc_info.value) == (
            "<Task: add>: missing a required argument: 'x' (run signature: (x: 'int', "
            "y: 'int' = 1) -> 'int')"
        )

    def test_too_many_positional_arguments_are_refused(self) -> None:
        with Flow("f"), pytest.raises(TaskBindError, match=r"^<Task: add>: too many positional"):
            add(1, 2, 3)

    def test_a_refused_call_adds_nothing_to_the_flow(self) -> None:
        with Flow("f") as flow, pytest.raises(TaskBindError):
            add(1, z=2)
        assert flow.tasks == set()

    def test_task_bind_error_is_a_type_error(self) -> None:
        with Flow("f"), pytest.raises(TypeError):
            add(1, z=2)

    def test_var_keyword_run_arguments_take_any_keyword(self) -> None:
        @task
        def collect(**items: int) -> dict[str, int]:
            return items

        with Flow("f") as flow:
            a = one()
            c = collect(a=a, b=2)
        assert flow.edges == {Edge(a, c, key="a")}
        assert flow.constants == {c: {"b": 2}}


class TestGetItem:
    def test_indexing_a_task_builds_a_get_item_task(self) -> None:
        with Flow("f") as flow:
            a = identity({"k": 1})
            item = a["k"]
        assert isinstance(item, GetItem)
        assert item.name == "identity['k']"
        assert flow.edges == {Edge(a, item, key="task_result")}
        assert flow.constants[item] == {"key": "k"}

    async def test_a_get_item_task_returns_the_item(self, bus: EventBus) -> None:
        with Flow("f") as flow:
            a = identity({"k": 1, "j": [5, 6]})
            k = a["k"]
            j1 = a["j"][1]
        state = await flow.run_async(bus=bus)
        assert state.result[k].result == 1
        assert state.result[j1].result == 6
        assert j1.name == "identity['j'][1]"

    def test_indexing_outside_a_flow_is_refused(self) -> None:
        with pytest.raises(NoActiveFlowError):
            identity["k"]


class TestUnpacking:
    async def test_a_task_with_nout_unpacks_into_get_item_tasks(self, bus: EventBus) -> None:
        with Flow("f") as flow:
            first, second = pair()
        assert (type(first), type(second)) == (GetItem, GetItem)
        assert (first.name, second.name) == ("pair[0]", "pair[1]")
        assert flow.constants == {first: {"key": 0}, second: {"key": 1}}
        (bound,) = flow.upstream_tasks(first)
        assert flow.upstream_tasks(second) == {bound}
        assert bound.name == "pair"
        state = await flow.run_async(bus=bus)
        assert (state.result[first].result, state.result[second].result) == (10, 20)

    def test_nout_given_through_task_args_makes_the_copy_iterable(self) -> None:
        with Flow("f") as flow:
            a, b, c = identity([1, 2, 3], task_args={"nout": 3})
        assert [t.name for t in (a, b, c)] == ["identity[0]", "identity[1]", "identity[2]"]
        assert len(flow.tasks) == 4

    def test_a_task_without_nout_cannot_be_unpacked(self) -> None:
        with Flow("f"), pytest.raises(TypeError) as exc_info:
            _a, _b = identity([1, 2])
        assert str(exc_info.value) == (
            "<Task: identity> is not iterable: give the task nout=N (or a tuple[...] return "
            "annotation) to unpack its result into N tasks"
        )


class TestCollections:
    @pytest.mark.parametrize(
        ("make", "collection_type", "expected"),
        [
            (lambda a, b: [a, b, 3], List, [1, 2, 3]),
            (lambda a, b: (a, b, 3), Tuple, (1, 2, 3)),
            (lambda a, b: {a, b}, Set, {1, 2}),
            (lambda a, b: {"a": a, "b": b, "c": 3}, Dict, {"a": 1, "b": 2, "c": 3}),
        ],
    )
    async def test_a_collection_of_tasks_becomes_a_collection_task(
        self, make: Any, collection_type: type[Task], expected: Any, bus: EventBus
    ) -> None:
        with Flow("f") as flow:
            a, b = one(), two()
            out = identity(make(a, b))
        (collected,) = flow.upstream_tasks(out)
        assert type(collected) is collection_type
        assert flow.edges_to(out) == {Edge(collected, out, key="x")}
        state = await flow.run_async(bus=bus)
        assert state.result[out] == Success("Task run succeeded.", result=expected)

    def test_a_list_task_has_one_keyed_edge_per_task_and_constants_for_the_rest(self) -> None:
        with Flow("f") as flow:
            a, b = one(), two()
            out = identity([a, "x", b])
        (collected,) = flow.upstream_tasks(out)
        assert collected.name == "List"
        assert flow.edges_to(collected) == {
            Edge(a, collected, key="arg_0"),
            Edge(b, collected, key="arg_2"),
        }
        assert flow.constants[collected] == {"arg_1": "x"}

    async def test_nested_collections_and_task_dict_keys_are_rebuilt(self, bus: EventBus) -> None:
        with Flow("f") as flow:
            a, b = one(), two()
            nested = identity((a, [b, 4], {"k": [a]}))
            keyed = identity({a: "one", b: "two"})
        state = await flow.run_async(bus=bus)
        assert state.result[nested].result == (1, [2, 4], {"k": [1]})
        assert state.result[keyed].result == {1: "one", 2: "two"}

    def test_a_collection_without_tasks_stays_a_constant(self) -> None:
        with Flow("f") as flow:
            out = identity([1, 2, {"a": 3}])
        assert flow.tasks == {out}
        assert flow.constants == {out: {"x": [1, 2, {"a": 3}]}}


class TestRunIsCheckedWhenTheTaskIsDefined:
    """As Prefect 1.x: a ``run`` a flow could not call is refused at ``class`` or ``@task``."""

    @pytest.mark.parametrize(
        ("run", "reserved"),
        [
            (run_taking_mapped, "mapped"),
            (run_taking_task_args, "task_args"),
            (run_taking_upstream_tasks, "upstream_tasks"),
            (run_taking_flow, "flow"),
        ],
    )
    def test_a_class_whose_run_uses_a_reserved_name_is_refused(
        self, run: Any, reserved: str
    ) -> None:
        with pytest.raises(ValueError, match="may not take") as exc_info:
            type("Reserved", (Task,), {"run": run})
        assert str(exc_info.value) == (
            f"<Task class Reserved>: run() may not take arguments named ['{reserved}']; these "
            "are reserved by Task.__call__"
        )

    def test_a_decorated_function_with_a_reserved_name_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"^<Task: load>: run\(\) may not take .*'flow'"):

            @task
            def load(x: int, flow: Any = None) -> None:
                return None

    def test_a_class_whose_run_takes_varargs_is_refused(self) -> None:
        with pytest.raises(ValueError, match="is not supported") as exc_info:

            class Gather(Task):
                def run(self, x: int, *rest: int) -> None:
                    return None

        assert str(exc_info.value) == (
            "<Task class Gather>: run(*rest) is not supported: a flow passes every argument by "
            "keyword; take **kwargs instead"
        )

    def test_a_decorated_function_with_varargs_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"^<Task: gather>: run\(\*items\) is not supported"):

            @task
            def gather(*items: int) -> int:
                return sum(items)

    @pytest.mark.parametrize("fn", [zip, map, filter], ids=["zip", "map", "filter"])
    def test_a_builtin_that_cannot_be_inspected_is_refused_with_advice(self, fn: Any) -> None:
        with pytest.raises(ValueError, match="cannot be inspected") as exc_info:
            task(fn)
        message = str(exc_info.value)
        assert message.startswith(f"<Task: {fn.__name__}>: {fn!r} cannot be inspected")
        assert "wrap it in a plain Python function" in message

    def test_positional_only_parameters_are_refused(self) -> None:
        with pytest.raises(TypeError, match=r"positional-only parameters \['x'\]"):

            @task
            def f(x: int, /) -> int:
                return x

    def test_definition_errors_are_asyncflow_errors(self) -> None:
        from asyncflow.exceptions import AsyncflowError, TaskDefinitionError

        with pytest.raises(TaskDefinitionError) as exc_info:
            task(zip)
        assert isinstance(exc_info.value, AsyncflowError)


class TestRetrySettingsAsInPrefect1:
    def test_a_retry_delay_without_max_retries_is_refused(self) -> None:
        with pytest.raises(ValueError, match="needs max_retries") as exc_info:
            Task(name="t", retry_delay=timedelta(seconds=30))
        assert str(exc_info.value) == (
            "<Task: t>: retry_delay=datetime.timedelta(seconds=30) needs max_retries greater than 0"
        )

    @pytest.mark.parametrize("max_retries", [None, 0, False])
    def test_a_retry_delay_with_no_retries_is_refused(self, max_retries: Any) -> None:
        with pytest.raises(ValueError, match="needs max_retries greater than 0"):
            Task(retry_delay=timedelta(seconds=30), max_retries=max_retries)

    def test_max_retries_without_a_retry_delay_is_refused(self) -> None:
        with pytest.raises(ValueError, match="needs a retry_delay") as exc_info:
            Task(name="t", max_retries=1)
        assert str(exc_info.value) == (
            "<Task: t>: max_retries=1 needs a retry_delay (a timedelta, seconds, a list or a "
            "callable; 0 retries at once)"
        )

    def test_retry_on_without_retries_is_refused(self) -> None:
        with pytest.raises(ValueError, match="needs max_retries") as exc_info:
            Task(name="t", retry_on=RuntimeError)
        assert str(exc_info.value) == "<Task: t>: retry_on needs max_retries greater than 0"

    @pytest.mark.parametrize("max_retries", [None, False, 0])
    def test_no_retries_may_be_spelled_none_false_or_zero(self, max_retries: Any) -> None:
        assert Task(max_retries=max_retries).max_retries == 0

    def test_a_zero_delay_retries_at_once(self) -> None:
        t = Task(max_retries=2, retry_delay=0)
        assert (t.max_retries, t.retry_delay) == (2, 0)


class TestTags:
    def test_tags_of_an_enclosing_context_block_are_added(self) -> None:
        from asyncflow import context

        with context(tags=["test1", "test2"]):
            t = Task(tags=["test3"])
            plain = Task()
        assert t.tags == {"test1", "test2", "test3"}
        assert plain.tags == {"test1", "test2"}
        assert Task().tags == set()

    def test_tags_are_added_when_a_task_is_bound_inside_a_context_block(self) -> None:
        from asyncflow import context

        t1, t2 = add.copy(), add.copy()
        with context(tags=["test"]), Flow("f"):
            t1.bind(1)
            t3 = t2(1)
        assert t1.tags == {"test"}
        assert t3.tags == {"test"}
        assert add.tags == set()

    def test_task_args_tags_are_added_to_the_tasks_own(self) -> None:
        t = Task(name="t", tags=["a"])
        with Flow("f"):
            bound = t(task_args={"tags": ["b"]})
        assert bound.tags == {"a", "b"}
        assert t.tags == {"a"}

    def test_a_string_of_tags_in_task_args_is_refused(self) -> None:
        with pytest.raises(TypeError, match="not a string"):
            Task(name="t").copy(tags="abc")


class TestIntrospection:
    class Add(Task):
        def run(self, x, y: int = 1) -> int:  # type: ignore[no-untyped-def]
            return int(x + y)

    def test_inputs_describe_runs_arguments(self) -> None:
        expected = {
            "x": {"type": Any, "required": True, "default": None},
            "y": {"type": int, "required": False, "default": 1},
        }
        assert self.Add().inputs() == expected
        with Flow("f"):
            assert add(x=1).inputs() == {
                "x": {"type": int, "required": True, "default": None},
                "y": {"type": int, "required": False, "default": 1},
            }

    def test_outputs_is_runs_return_annotation_or_any(self) -> None:
        assert self.Add().outputs() is int
        assert pair.outputs() == tuple[int, int]
        assert Task().outputs() is Any

    def test_the_signature_of_a_task_is_runs_plus_the_call_keywords(self) -> None:
        sig = inspect.signature(self.Add())
        assert list(sig.parameters) == ["x", "y", "mapped", "task_args", "upstream_tasks", "flow"]
        assert sig.parameters["y"] == inspect.signature(self.Add().run).parameters["y"]
        assert sig.parameters["mapped"].kind is inspect.Parameter.KEYWORD_ONLY
        assert sig.return_annotation == "Task"
        assert "name" in inspect.signature(self.Add).parameters  # the class keeps __init__'s

    def test_the_call_keywords_go_before_a_var_keyword_argument(self) -> None:
        @task
        def collect(a: int, **rest: int) -> None:
            return None

        assert list(inspect.signature(collect).parameters) == [
            "a",
            "mapped",
            "task_args",
            "upstream_tasks",
            "flow",
            "rest",
        ]

    def test_pipe_calls_the_next_task_with_this_one_first(self) -> None:
        with Flow("f") as flow:
            a = one()
            piped = a.pipe(add, y=5)
        assert piped.name == "add"
        assert flow.edges == {Edge(a, piped, key="x")}
        assert flow.constants[piped] == {"y": 5}

    def test_pipe_wraps_the_task_in_an_edge_marker(self) -> None:
        from asyncflow import unmapped

        assert one.pipe(unmapped) == unmapped(one)

    def test_pipe_refuses_a_self_keyword(self) -> None:
        with pytest.raises(ValueError, match='no keyword argument "self"'):
            one.pipe(add, self=1)

    def test_a_tuple_return_annotation_gives_nout(self) -> None:
        @task
        def three() -> tuple[int, str, float]:
            return 1, "a", 1.0

        @task
        def many() -> tuple[int, ...]:
            return (1,)

        @task
        def empty() -> tuple[()]:
            return ()

        assert (three.nout, many.nout, empty.nout, one.nout) == (3, None, 0, None)

    def test_a_mapped_copy_has_no_nout_so_it_cannot_be_unpacked(self) -> None:
        @task
        def split(x: int) -> tuple[int, int]:
            return x, -x

        with Flow("f"):
            mapped = split.map([1, 2])
            assert (split.nout, mapped.nout) == (2, None)
            with pytest.raises(TypeError, match="is not iterable"):
                _a, _b = split.map([1, 2])

    def test_the_default_cache_validator_is_1xs(self) -> None:
        assert Task().cache_validator is caching.never_use
        assert Task(cache_for=timedelta(days=1)).cache_validator is caching.duration_only
        given = Task(cache_for=timedelta(days=1), cache_validator=caching.all_inputs)
        assert given.cache_validator is caching.all_inputs

    def test_a_cache_validator_without_cache_for_warns_that_nothing_is_cached(self) -> None:
        with pytest.warns(UserWarning, match="this task will not be cached"):
            Task(cache_validator=caching.all_inputs)


class TestUnhashableCallables:
    def test_an_unhashable_callable_object_is_inspected_every_time(self) -> None:
        class Splitter:
            __hash__ = None  # type: ignore[assignment]

            def __call__(self, x: int) -> tuple[int, int]:
                return x, -x

        split = task(Splitter(), name="split")
        assert split.nout == 2
        assert list(split.inputs()) == ["x"]
        with Flow("f") as flow:
            _a, b = split(3)
        assert flow.run().result[b].result == -3

    def test_annotations_that_cannot_be_evaluated_are_shown_as_written(self) -> None:
        @task
        def odd(x: NoSuchType) -> NoSuchType:  # type: ignore[name-defined]  # noqa: F821
            return x

        assert odd.inputs()["x"]["type"] == "NoSuchType"
        assert odd.outputs() == "NoSuchType"
        assert odd.nout is None

    def test_a_task_without_a_return_annotation_outputs_any(self) -> None:
        @task
        def bare(x):  # type: ignore[no-untyped-def]
            return x

        assert bare.outputs() is Any

    def test_a_static_run_method_is_checked_too(self) -> None:
        with pytest.raises(ValueError, match=r"reserved by Task\.__call__"):

            class Static(Task):
                @staticmethod
                def run(flow: Any) -> None:
                    return None
