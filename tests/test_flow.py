"""Specification of ``Flow`` as a graph builder (asyncflow/flow.py): the ``with`` block, the
imperative API, graph queries, validation and copies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import Edge, Flow, FlowValidationError, Parameter, Task, TaskBindError, flatten, task
from asyncflow.exceptions import NoActiveFlowError
from asyncflow.states import Failed, Success
from asyncflow.task import active_flow

if TYPE_CHECKING:
    from asyncflow import EventBus


@task
def one() -> int:
    return 1


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
def total(x: int, y: int) -> int:
    return x + y


def edge_names(flow: Flow) -> set[tuple[str, str, str | None]]:
    """The flow's edges as (upstream name, downstream name, key)."""
    return {(e.upstream_task.name, e.downstream_task.name, e.key) for e in flow.edges}


def constant_names(flow: Flow) -> dict[str, dict[str, Any]]:
    """The flow's constants keyed by task name."""
    return {t.name: c for t, c in flow.constants.items()}


def named(name: str) -> Task:
    return Task(name=name)


class TestFlowObject:
    def test_repr_shows_the_name(self) -> None:
        assert repr(Flow("etl")) == "<Flow: name=etl>"

    def test_a_new_flow_is_empty(self) -> None:
        flow = Flow("f")
        assert flow.name == "f"
        assert flow.tasks == set()
        assert flow.edges == set()
        assert flow.constants == {}
        assert flow.reference_tasks() == set()
        assert flow.sorted_tasks() == ()

    @pytest.mark.parametrize("name", ["", None, False])
    def test_a_missing_name_is_a_value_error_as_in_1x(self, name: Any) -> None:
        with pytest.raises(ValueError, match="needs a name") as exc_info:
            Flow(name)
        assert str(exc_info.value) == f"a flow needs a name (a non-empty string), got {name!r}"

    def test_a_name_that_is_not_a_string_is_a_type_error(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            Flow(3)  # type: ignore[arg-type]
        assert str(exc_info.value) == "Flow name must be a non-empty string, got 3"

    def test_the_constructor_takes_tasks_edges_and_reference_tasks(self) -> None:
        a, b, c, lone = named("a"), named("b"), named("c"), named("lone")
        flow = Flow(
            "f",
            tasks=[lone],
            edges=[Edge(a, b), Edge(b, c)],
            reference_tasks=[b],
        )
        assert flow.tasks == {a, b, c, lone}
        assert edge_names(flow) == {("a", "b", None), ("b", "c", None)}
        assert flow.reference_tasks() == {b}

    def test_constructor_edges_are_validated_like_add_edge(self) -> None:
        a, b = named("a"), named("b")
        with pytest.raises(FlowValidationError) as exc_info:
            Flow("f", edges=[Edge(a, b), Edge(b, a)])
        assert str(exc_info.value) == (
            "<Flow: name=f>: the edge would create a cycle: <Task: b> -> <Task: a> -> <Task: b>"
        )

    def test_constructor_reference_tasks_must_be_in_the_flow(self) -> None:
        outsider = named("outsider")
        with pytest.raises(FlowValidationError) as exc_info:
            Flow("f", tasks=[named("a")], reference_tasks=[outsider])
        assert str(exc_info.value) == (
            "reference tasks [<Task: outsider>] are not in <Flow: name=f>"
        )

    def test_constructor_state_handlers_must_be_callable(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            Flow("f", state_handlers=["nope"])  # type: ignore[list-item]
        assert str(exc_info.value) == "<Flow: name=f>: state handler 'nope' is not callable"


class TestWithBlock:
    def test_the_with_block_makes_the_flow_active_and_restores_it(self) -> None:
        assert active_flow.get() is None
        with Flow("f") as flow:
            assert active_flow.get() is flow
        assert active_flow.get() is None

    def test_nested_with_blocks_bind_to_the_innermost_flow(self) -> None:
        with Flow("outer") as outer:
            a = one()
            with Flow("inner") as inner:
                b = one()
            c = one()
        assert outer.tasks == {a, c}
        assert inner.tasks == {b}

    def test_the_same_flow_can_be_reentered(self) -> None:
        flow = Flow("f")
        with flow:
            a = one()
            with flow:
                b = one()
            c = one()
        with flow:
            d = one()
        assert flow.tasks == {a, b, c, d}
        assert active_flow.get() is None

    def test_the_flow_is_deactivated_when_the_block_raises(self) -> None:
        with pytest.raises(KeyError), Flow("f"):
            raise KeyError("boom")
        with pytest.raises(NoActiveFlowError):
            one()

    async def test_a_flow_built_in_a_with_block_runs(self, bus: EventBus) -> None:
        with Flow("f") as flow:
            result = add(add(one(), y=2), y=3)
        state = await flow.run_async(bus=bus)
        assert state == Success("All reference tasks succeeded.", result=state.result)
        assert state.result[result] == Success("Task run succeeded.", result=6)


class TestAddTask:
    def test_add_task_returns_the_task_and_gives_it_a_slug(self) -> None:
        flow = Flow("f")
        t = named("t")
        assert flow.add_task(t) is t
        assert flow.tasks == {t}
        assert t.slug == "t-1"

    def test_adding_a_task_twice_is_a_no_op(self) -> None:
        flow = Flow("f")
        t = named("t")
        flow.add_task(t)
        flow.add_task(t)
        assert flow.tasks == {t}
        assert t.slug == "t-1"

    def test_a_given_slug_is_kept(self) -> None:
        flow = Flow("f")
        t = Task(name="t", slug="mine")
        flow.add_task(t)
        assert t.slug == "mine"

    def test_a_duplicate_slug_is_refused(self) -> None:
        flow = Flow("f")
        first = Task(name="first", slug="s")
        flow.add_task(first)
        with pytest.raises(FlowValidationError) as exc_info:
            flow.add_task(Task(name="second", slug="s"))
        assert str(exc_info.value) == (
            "<Flow: name=f> already has a task with slug 's' (<Task: first>); slugs (and "
            "parameter names) must be unique"
        )
        assert flow.tasks == {first}

    def test_a_duplicate_parameter_name_is_refused(self) -> None:
        flow = Flow("f")
        flow.add_task(Parameter("x"))
        with pytest.raises(FlowValidationError) as exc_info:
            flow.add_task(Parameter("x", default=1))
        assert str(exc_info.value) == (
            "<Flow: name=f> already has a parameter with slug 'x' (<Parameter: x>); slugs (and "
            "parameter names) must be unique"
        )

    def test_generated_slugs_skip_taken_ones(self) -> None:
        flow = Flow("f")
        flow.add_task(Task(name="t", slug="t-1"))
        t = flow.add_task(named("t"))
        assert t.slug == "t-2"

    def test_only_tasks_can_be_added(self) -> None:
        with pytest.raises(TypeError) as exc_info:
            Flow("f").add_task(3)  # type: ignore[arg-type]
        assert str(exc_info.value) == "<Flow: name=f>: expected a Task, got 3"


class TestAddEdge:
    def test_add_edge_adds_both_tasks_and_returns_the_edge(self) -> None:
        flow = Flow("f")
        a, b = named("a"), named("b")
        edge = flow.add_edge(a, b)
        assert edge == Edge(a, b)
        assert flow.tasks == {a, b}
        assert flow.edges == {Edge(a, b)}

    def test_a_keyed_edge_passes_the_result_as_that_argument(self) -> None:
        flow = Flow("f")
        a, b = one.copy(), add.copy()
        flow.add_edge(a, b, key="x")
        assert flow.edges == {Edge(a, b, key="x")}

    def test_adding_the_same_edge_twice_keeps_one(self) -> None:
        flow = Flow("f")
        a, b = named("a"), named("b")
        flow.add_edge(a, b)
        flow.add_edge(a, b)
        assert flow.edges == {Edge(a, b)}
        assert flow.edges_to(b) == {Edge(a, b)}

    def test_a_key_that_is_not_an_argument_is_refused(self) -> None:
        flow = Flow("f")
        with pytest.raises(TaskBindError) as exc_info:
            flow.add_edge(one.copy(), add.copy(), key="z")
        assert str(exc_info.value) == (
            "<Task: add> has no argument 'z' (run signature: (x: 'int', y: 'int' = 1) -> 'int')"
        )

    def test_any_key_is_accepted_by_a_var_keyword_run(self) -> None:
        @task
        def collect(**kw: Any) -> Any:
            return kw

        flow = Flow("f")
        a, c = one.copy(), collect.copy()
        flow.add_edge(a, c, key="anything")
        assert flow.edges == {Edge(a, c, key="anything")}

    def test_a_key_bound_twice_is_refused(self) -> None:
        flow = Flow("f")
        a, b, target = one.copy(), one.copy(), add.copy()
        flow.add_edge(a, target, key="x")
        with pytest.raises(FlowValidationError) as exc_info:
            flow.add_edge(b, target, key="x")
        assert str(exc_info.value) == "argument 'x' of <Task: add> is already bound to <Task: one>"
        assert flow.edges == {Edge(a, target, key="x")}

    def test_a_key_already_bound_to_a_constant_is_refused(self) -> None:
        with Flow("f") as flow:
            target = add(1)
        with pytest.raises(FlowValidationError) as exc_info:
            flow.add_edge(one.copy(), target, key="x")
        assert str(exc_info.value) == "argument 'x' of <Task: add> is already bound to a constant"

    def test_an_edge_closing_a_cycle_is_refused_naming_the_cycle(self) -> None:
        flow = Flow("f")
        a, b, c = named("a"), named("b"), named("c")
        flow.chain(a, b, c)
        with pytest.raises(FlowValidationError) as exc_info:
            flow.add_edge(c, a)
        assert str(exc_info.value) == (
            "<Flow: name=f>: the edge would create a cycle: "
            "<Task: c> -> <Task: a> -> <Task: b> -> <Task: c>"
        )
        assert edge_names(flow) == {("a", "b", None), ("b", "c", None)}

    def test_a_self_loop_is_refused(self) -> None:
        flow = Flow("f")
        a = named("a")
        with pytest.raises(FlowValidationError) as exc_info:
            flow.add_edge(a, a)
        assert str(exc_info.value) == "an edge cannot join <Task: a> to itself"
        assert flow.tasks == set()

    def test_flow_validation_error_is_a_value_error(self) -> None:
        flow = Flow("f")
        a = named("a")
        b = named("b")
        flow.add_edge(a, b)
        with pytest.raises(ValueError, match=r"would create a cycle"):
            flow.add_edge(b, a)

    def test_values_at_either_end_become_constant_tasks_as_in_1x(self) -> None:
        flow = Flow("f")
        a = named("a")
        down = flow.add_edge(a, "b")
        up = flow.add_edge(3, a)
        assert flow.edges == {down, up}
        assert (down.downstream_task.name, up.upstream_task.name) == ("'b'", "3")
        assert len(flow.tasks) == 3


class TestImperativeApi:
    def test_set_dependencies_adds_upstream_downstream_and_keyword_tasks(self) -> None:
        flow = Flow("f")
        before, after, x = named("before"), named("after"), one.copy()
        target = add.copy()
        flow.set_dependencies(
            target,
            upstream_tasks=[before],
            downstream_tasks=[after],
            keyword_tasks={"x": x, "y": 5},
        )
        assert flow.edges == {Edge(before, target), Edge(target, after), Edge(x, target, key="x")}
        assert flow.constants == {target: {"y": 5}}

    def test_set_dependencies_refuses_an_unknown_constant_argument(self) -> None:
        flow = Flow("f")
        with pytest.raises(TaskBindError) as exc_info:
            flow.set_dependencies(add.copy(), keyword_tasks={"z": 5})
        assert str(exc_info.value) == (
            "<Task: add> has no argument 'z' (run signature: (x: 'int', y: 'int' = 1) -> 'int')"
        )

    def test_chain_links_tasks_in_sequence(self) -> None:
        flow = Flow("f")
        a, b, c = named("a"), named("b"), named("c")
        edges = flow.chain(a, b, c)
        assert edges == [Edge(a, b), Edge(b, c)]
        assert flow.sorted_tasks() == (a, b, c)

    def test_set_upstream_and_set_downstream_with_flow(self) -> None:
        flow = Flow("f")
        a, b, c = one.copy(), add.copy(), named("c")
        assert b.set_upstream(a, flow=flow, key="x") is b
        assert b.set_downstream(c, flow=flow) is b
        assert flow.edges == {Edge(a, b, key="x"), Edge(b, c)}

    def test_set_upstream_uses_the_active_flow(self) -> None:
        a, b = named("a"), named("b")
        with Flow("f") as flow:
            b.set_upstream(a)
        assert flow.edges == {Edge(a, b)}

    def test_set_upstream_without_a_flow_is_refused(self) -> None:
        with pytest.raises(NoActiveFlowError, match=r"^<Task: b> was called outside a flow"):
            named("b").set_upstream(named("a"))

    def test_task_set_dependencies_delegates_to_the_flow(self) -> None:
        flow = Flow("f")
        a, target = one.copy(), add.copy()
        target.set_dependencies(flow=flow, keyword_tasks={"x": a}, upstream_tasks=[named("u")])
        assert edge_names(flow) == {("one", "add", "x"), ("u", "add", None)}

    async def test_an_imperative_flow_runs(self, bus: EventBus) -> None:
        flow = Flow("f")
        a, b = one.copy(), add.copy()
        flow.add_edge(a, b, key="x")
        flow.set_dependencies(b, keyword_tasks={"y": 10})
        state = await flow.run_async(bus=bus)
        assert state.result[b] == Success("Task run succeeded.", result=11)


class TestBothApisBuildTheSameGraph:
    def test_keyed_edges_constants_and_ordering_edges_match(self) -> None:
        with Flow("f") as functional:
            p = Parameter("p")
            a = one()
            b = add(a, y=p)
            c = total(b, 7, upstream_tasks=[a])
            add(c, task_args={"name": "last"})

        imperative = Flow("f")
        p2 = Parameter("p")
        a2, b2, c2 = one.copy(), add.copy(), total.copy()
        last = add.copy(name="last")
        imperative.add_task(a2)
        imperative.set_dependencies(b2, keyword_tasks={"x": a2, "y": p2})
        imperative.set_dependencies(c2, upstream_tasks=[a2], keyword_tasks={"x": b2, "y": 7})
        imperative.add_edge(c2, last, key="x")

        expected_edges = {
            ("one", "add", "x"),
            ("p", "add", "y"),
            ("add", "total", "x"),
            ("one", "total", None),
            ("total", "last", "x"),
        }
        assert edge_names(functional) == expected_edges
        assert edge_names(imperative) == expected_edges
        assert constant_names(functional) == constant_names(imperative) == {"total": {"y": 7}}
        assert {t.name for t in functional.tasks} == {t.name for t in imperative.tasks}
        assert [t.name for t in functional.sorted_tasks()] == [
            t.name for t in imperative.sorted_tasks()
        ]

    def test_collections_and_get_item_match_their_imperative_form(self) -> None:
        from asyncflow.tasks.core import GetItem, List

        with Flow("f") as functional:
            a = one()
            total([a, 2], a["k"])

        imperative = Flow("f")
        a2, lst, item, t2 = one.copy(), List(name="List"), GetItem(name="one['k']"), total.copy()
        imperative.set_dependencies(lst, keyword_tasks={"arg_0": a2, "arg_1": 2})
        imperative.set_dependencies(item, keyword_tasks={"task_result": a2, "key": "k"})
        imperative.set_dependencies(t2, keyword_tasks={"x": lst, "y": item})

        assert edge_names(functional) == edge_names(imperative)
        assert constant_names(functional) == constant_names(imperative)


class Diamond:
    """``a -> b -> d``, ``a -> c -> d``, and a lone task ``e``."""

    def __init__(self) -> None:
        self.flow = Flow("f")
        self.a, self.b, self.c, self.d, self.e = (named(n) for n in "abcde")
        self.flow.add_edge(self.a, self.b)
        self.flow.add_edge(self.a, self.c)
        self.flow.add_edge(self.b, self.d)
        self.flow.add_edge(self.c, self.d)
        self.flow.add_task(self.e)


class TestQueries:
    @pytest.fixture
    def g(self) -> Diamond:
        return Diamond()

    def test_root_tasks_have_no_upstream(self, g: Diamond) -> None:
        assert g.flow.root_tasks() == {g.a, g.e}

    def test_terminal_tasks_have_no_downstream(self, g: Diamond) -> None:
        assert g.flow.terminal_tasks() == {g.d, g.e}

    def test_reference_tasks_default_to_the_terminal_tasks(self, g: Diamond) -> None:
        assert g.flow.reference_tasks() == {g.d, g.e}

    def test_set_reference_tasks_overrides_the_default(self, g: Diamond) -> None:
        g.flow.set_reference_tasks([g.b])
        assert g.flow.reference_tasks() == {g.b}

    def test_set_reference_tasks_refuses_a_task_outside_the_flow(self, g: Diamond) -> None:
        with pytest.raises(FlowValidationError) as exc_info:
            g.flow.set_reference_tasks([g.b, named("stranger")])
        assert str(exc_info.value) == (
            "reference tasks [<Task: stranger>] are not in <Flow: name=f>"
        )
        assert g.flow.reference_tasks() == {g.d, g.e}

    async def test_reference_tasks_decide_the_flow_state(self, bus: EventBus) -> None:
        @task
        def boom() -> None:
            raise ValueError("nope")

        with Flow("f") as flow:
            fine = one()
            boom()
        by_default = await flow.run_async(bus=bus)
        assert by_default == Failed("Some reference tasks failed.", result=by_default.result)
        flow.set_reference_tasks([fine])
        state = await flow.run_async(bus=bus)
        assert state == Success("All reference tasks succeeded.", result=state.result)

    def test_upstream_and_downstream_tasks(self, g: Diamond) -> None:
        assert g.flow.upstream_tasks(g.d) == {g.b, g.c}
        assert g.flow.upstream_tasks(g.a) == set()
        assert g.flow.downstream_tasks(g.a) == {g.b, g.c}
        assert g.flow.downstream_tasks(g.e) == set()

    def test_edges_to_and_edges_from(self, g: Diamond) -> None:
        assert g.flow.edges_to(g.d) == {Edge(g.b, g.d), Edge(g.c, g.d)}
        assert g.flow.edges_from(g.a) == {Edge(g.a, g.b), Edge(g.a, g.c)}
        assert g.flow.edges_to(g.e) == g.flow.edges_from(g.e) == set()

    @pytest.mark.parametrize(
        "query", ["edges_to", "edges_from", "upstream_tasks", "downstream_tasks"]
    )
    def test_queries_about_an_unknown_task_are_refused(self, g: Diamond, query: str) -> None:
        with pytest.raises(ValueError, match=r"^<Task: stranger> is not") as exc_info:
            getattr(g.flow, query)(named("stranger"))
        assert str(exc_info.value) == "<Task: stranger> is not a task of <Flow: name=f>"

    def test_sorted_tasks_puts_upstream_before_downstream(self, g: Diamond) -> None:
        order = g.flow.sorted_tasks()
        assert sorted(order, key=lambda t: t.name) == sorted(g.flow.tasks, key=lambda t: t.name)
        for edge in g.flow.edges:
            assert order.index(edge.upstream_task) < order.index(edge.downstream_task)
        assert g.flow.sorted_tasks() == order

    def test_sorted_tasks_keeps_insertion_order_where_the_graph_allows(self) -> None:
        flow = Flow("f")
        c, b, a = named("c"), named("b"), named("a")
        for t in (c, b, a):
            flow.add_task(t)
        assert flow.sorted_tasks() == (c, b, a)
        flow.add_edge(a, c)
        assert flow.sorted_tasks() == (b, a, c)
        assert flow.sorted_tasks() == (b, a, c)

    def test_sorted_tasks_of_a_functional_chain(self) -> None:
        with Flow("f") as flow:
            x = one()
            y = add(x)
            z = add(y)
        assert flow.sorted_tasks() == (x, y, z)

    def test_get_tasks_filters_by_name_slug_and_tags(self) -> None:
        flow = Flow("f")
        a = flow.add_task(Task(name="load", tags={"io", "db"}))
        b = flow.add_task(Task(name="load", tags={"io"}))
        c = flow.add_task(Task(name="clean"))
        assert flow.get_tasks(name="load") == [a, b]
        assert flow.get_tasks(slug="load-2") == [b]
        assert flow.get_tasks(tags=["io"]) == [a, b]
        assert flow.get_tasks(tags=["io", "db"]) == [a]
        assert flow.get_tasks(name="load", tags=["db"]) == [a]
        assert flow.get_tasks(name="missing") == []
        assert flow.get_tasks() == [a, b, c]

    def test_parameters_lists_the_parameters(self) -> None:
        with Flow("f") as flow:
            x, y = Parameter("x"), Parameter("y", default=2)
            total(x, y)
        assert flow.parameters() == {x, y}

    def test_tasks_returns_a_copy(self) -> None:
        flow = Flow("f")
        flow.add_task(named("a"))
        flow.tasks.add(named("b"))
        assert {t.name for t in flow.tasks} == {"a"}


class TestValidate:
    def test_a_valid_flow_passes(self) -> None:
        with Flow("f") as flow:
            total(one(), y=2)
        assert flow.validate() is None

    def test_a_cycle_added_without_validation_is_found_by_validate(self) -> None:
        flow = Flow("f")
        a, b, c = named("a"), named("b"), named("c")
        flow.chain(a, b, c)
        flow.add_edge(c, a, validate=False)
        with pytest.raises(FlowValidationError) as exc_info:
            flow.validate()
        assert str(exc_info.value) == (
            "<Flow: name=f> has a cycle: <Task: a> -> <Task: b> -> <Task: c> -> <Task: a>"
        )
        with pytest.raises(FlowValidationError, match=r"has a cycle"):
            flow.sorted_tasks()

    def test_a_missing_required_argument_names_the_task_and_the_argument(self) -> None:
        flow = Flow("f")
        flow.add_edge(one.copy(), total.copy(), key="y")
        with pytest.raises(FlowValidationError) as exc_info:
            flow.validate()
        assert str(exc_info.value) == (
            "<Task: total> is missing required argument(s) ['x'] "
            "(run signature: (x: 'int', y: 'int') -> 'int')"
        )

    def test_arguments_with_defaults_may_be_left_unbound(self) -> None:
        flow = Flow("f")
        flow.set_dependencies(add.copy(), keyword_tasks={"x": 1})
        assert flow.validate() is None

    def test_running_a_flow_with_a_missing_argument_is_refused(self, bus: EventBus) -> None:
        flow = Flow("f", tasks=[total.copy()])
        with pytest.raises(FlowValidationError) as exc_info:
            flow.run(bus=bus)
        assert str(exc_info.value) == (
            "<Task: total> is missing required argument(s) ['x', 'y'] "
            "(run signature: (x: 'int', y: 'int') -> 'int')"
        )


class TestCopy:
    def test_a_copy_has_the_same_graph(self) -> None:
        with Flow("f") as flow:
            a = one()
            b = add(a, y=3)
        flow.set_reference_tasks([a])
        new = flow.copy()
        assert new is not flow
        assert new.name == "f"
        assert new.tasks == {a, b}
        assert new.edges == flow.edges
        assert new.constants == {b: {"y": 3}}
        assert new.reference_tasks() == {a}

    def test_changing_the_copy_leaves_the_original_alone(self) -> None:
        with Flow("f") as flow:
            a = one()
            b = add(a)
        new = flow.copy()
        c = named("c")
        new.add_edge(b, c)
        new.set_dependencies(b, keyword_tasks={"y": 9})
        new.set_reference_tasks([a])
        new.add_task(Parameter("p"))
        assert flow.tasks == {a, b}
        assert flow.edges == {Edge(a, b, key="x")}
        assert flow.edges_from(b) == set()
        assert flow.constants == {}
        assert flow.reference_tasks() == {b}
        assert flow.parameters() == set()
        flow.add_task(Parameter("p"))  # the slug is free in the original

    def test_changing_the_original_leaves_the_copy_alone(self) -> None:
        with Flow("f") as flow:
            a = one()
        new = flow.copy()
        with flow:
            add(a)
        assert new.tasks == {a}
        assert new.edges == set()

    async def test_a_copy_runs_on_its_own(self, bus: EventBus) -> None:
        with Flow("f") as flow:
            a = add(1)
        new = flow.copy()
        b = add.copy()
        new.add_edge(a, b, key="x")
        state = await new.run_async(bus=bus)
        assert state.result[b].result == 3
        original = await flow.run_async(bus=bus)
        assert set(original.result) == {a}


class TestGraphApiAsInPrefect1:
    def test_iterating_a_flow_gives_its_tasks_in_topological_order(self) -> None:
        a, b, c = named("a"), named("b"), named("c")
        flow = Flow("f")
        flow.add_edge(b, c)
        flow.add_edge(a, b)
        assert list(flow) == [a, b, c]

    def test_sorted_tasks_from_root_tasks_covers_them_and_their_downstream_only(self) -> None:
        a, b, c, d, other = (named(n) for n in "abcdx")
        flow = Flow("f")
        flow.chain(a, b, c)
        flow.add_edge(b, d)
        flow.add_task(other)
        assert flow.sorted_tasks(root_tasks=[b]) == (b, c, d)
        assert flow.sorted_tasks(root_tasks=[c, other]) == (c, other)
        with pytest.raises(ValueError, match="is not a task of"):
            flow.sorted_tasks(root_tasks=[named("stranger")])

    def test_get_tasks_filters_by_type_too(self) -> None:
        with Flow("f") as flow:
            x = Parameter("x")
            y = add(x)
        assert flow.get_tasks(task_type=Parameter) == [x]
        assert set(flow.get_tasks(task_type=Task)) == {x, y}
        assert flow.get_tasks(name="add", task_type=Parameter) == []

    def test_two_flows_with_the_same_name_tasks_edges_and_reference_tasks_are_equal(
        self,
    ) -> None:
        a, b = named("a"), named("b")
        first, second = Flow("f"), Flow("f")
        for flow in (first, second):
            flow.add_edge(a, b)
        assert first == second
        assert hash(first) == hash(second)
        assert first != Flow("g", edges=[Edge(a, b)])
        second.set_reference_tasks([a])
        assert first != second
        assert first != "f"

    def test_equal_flows_stay_usable_as_dict_keys(self) -> None:
        flow = Flow("f")
        assert {flow: 1}[flow] == 1

    def test_update_adds_the_other_flows_tasks_edges_and_constants(self) -> None:
        with Flow("first") as first:
            a = add(1)
        with Flow("second") as second:
            b = add(2)
            c = total(b, y=3)
        first.update(second)
        assert first.tasks == {a, b, c}
        assert first.edges == second.edges
        assert first.constants[b] == {"x": 2}
        assert len({t.slug for t in first.tasks}) == 3  # the other flow's made-up slugs clash
        assert first.run().result[c].result == 6

    def test_update_can_merge_parameters_and_reference_tasks(self) -> None:
        with Flow("first") as first:
            mine = Parameter("x")
            a = add(mine)
        with Flow("second") as second:
            theirs = Parameter("x", default=10)
            b = add(theirs)
        first.set_reference_tasks([a])
        first.update(second, merge_parameters=True, merge_reference_tasks=True)
        assert first.parameters() == {theirs}
        assert first.upstream_tasks(a) == {theirs}
        assert first.reference_tasks() == {a, b}

    def test_replace_moves_the_edges_and_the_reference_role_to_the_new_task(self) -> None:
        with Flow("f") as flow:
            x = Parameter("x")
            old = add(x)
            down = total(old, y=1)
        flow.set_reference_tasks([old, down])
        new = add.copy()
        flow.replace(old, new)
        assert old not in flow.tasks
        assert flow.edges == {Edge(x, new, key="x"), Edge(new, down, key="x")}
        assert flow.reference_tasks() == {new, down}
        assert flow.run(parameters={"x": 4}).result[down].result == 6

    def test_replace_refuses_a_task_that_is_not_in_the_flow(self) -> None:
        with pytest.raises(ValueError, match="is not a task of"):
            Flow("f").replace(named("a"), named("b"))

    def test_a_parameter_can_never_be_downstream_of_an_edge(self) -> None:
        flow = Flow("f")
        with pytest.raises(ValueError, match="are root tasks") as exc_info:
            flow.add_edge(named("a"), Parameter("x"))
        assert str(exc_info.value) == (
            "<Parameter: x> cannot depend on <Task: a>: parameters are root tasks and have no "
            "upstream dependencies"
        )
        assert flow.tasks == set()

    def test_add_edge_without_validation_defers_cycles_to_validate(self) -> None:
        a, b = named("a"), named("b")
        flow = Flow("f")
        flow.add_edge(a, b)
        flow.add_edge(b, a, validate=False)
        with pytest.raises(FlowValidationError, match="has a cycle"):
            flow.validate()

    def test_flow_validate_false_adds_its_edges_unchecked(self) -> None:
        a, b = named("a"), named("b")
        flow = Flow("f", edges=[Edge(a, b), Edge(b, a)], validate=False)
        assert len(flow.edges) == 2
        with pytest.raises(FlowValidationError, match="would create a cycle"):
            Flow("f", edges=[Edge(a, b), Edge(b, a)])

    def test_the_constructor_keeps_flattened_edges(self) -> None:
        a, b = named("a"), named("b")
        flow = Flow("f", edges=[Edge(flatten(a), b, mapped=True)])
        (edge,) = flow.edges
        assert (edge.mapped, edge.flattened) == (True, True)
