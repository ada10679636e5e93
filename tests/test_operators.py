"""Specification of task operators (asyncflow/_task_operators.py, tasks/operators.py): inside
``with Flow(...)`` Python's operators and 1.x's named methods build operator tasks, as in
Prefect 1.x; ``|`` makes a state dependency; ``==`` and ``hash`` stay identity."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import Edge, Flow, Parameter, Task, case, task
from asyncflow._task_operators import OPERATOR_TASKS
from asyncflow.engine.results import LocalResult
from asyncflow.exceptions import NoActiveFlowError
from asyncflow.tasks import operators as ops

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from asyncflow import EventBus

# (id, build with x and y, the operator task class, the expected value for x=7, y=2)
BINARY: list[tuple[str, Callable[[Any, Any], Any], type[Task], Any]] = [
    ("add", lambda x, y: x + y, ops.Add, 9),
    ("sub", lambda x, y: x - y, ops.Sub, 5),
    ("mul", lambda x, y: x * y, ops.Mul, 14),
    ("truediv", lambda x, y: x / y, ops.Div, 3.5),
    ("floordiv", lambda x, y: x // y, ops.FloorDiv, 3),
    ("mod", lambda x, y: x % y, ops.Mod, 1),
    ("pow", lambda x, y: x**y, ops.Pow, 49),
    ("gt", lambda x, y: x > y, ops.GreaterThan, True),
    ("ge", lambda x, y: x >= y, ops.GreaterThanOrEqual, True),
    ("lt", lambda x, y: x < y, ops.LessThan, False),
    ("le", lambda x, y: x <= y, ops.LessThanOrEqual, False),
    ("and", lambda x, y: x & y, ops.And, 2),
    ("is_equal", lambda x, y: x.is_equal(y), ops.Equal, False),
    ("is_not_equal", lambda x, y: x.is_not_equal(y), ops.NotEqual, True),
    ("or_", lambda x, y: x.or_(y), ops.Or, 7),
    ("and_", lambda x, y: x.and_(y), ops.And, 2),
]


def run_result(flow: Flow, t: Task, **parameters: Any) -> Any:
    state = flow.run(parameters=parameters)
    assert state.is_successful(), state.result[t]
    return state.result[t].result


class TestBinaryOperators:
    @pytest.mark.parametrize(
        ("build", "cls", "expected"), [b[1:] for b in BINARY], ids=[b[0] for b in BINARY]
    )
    def test_an_operator_on_two_tasks_builds_its_task(
        self, build: Callable[[Any, Any], Any], cls: type[Task], expected: Any
    ) -> None:
        with Flow("ops") as flow:
            x, y = Parameter("x"), Parameter("y")
            z = build(x, y)
        assert type(z) is cls
        assert flow.edges == {Edge(x, z, key="x"), Edge(y, z, key="y")}
        assert run_result(flow, z, x=7, y=2) == expected

    @pytest.mark.parametrize(
        ("build", "cls", "expected"), [b[1:] for b in BINARY], ids=[b[0] for b in BINARY]
    )
    def test_a_constant_operand_becomes_a_constant(
        self, build: Callable[[Any, Any], Any], cls: type[Task], expected: Any
    ) -> None:
        with Flow("ops") as flow:
            x = Parameter("x")
            z = build(x, 2)
        assert flow.constants[z] == {"y": 2}
        assert run_result(flow, z, x=7) == expected

    @pytest.mark.parametrize(
        ("op", "expected"),
        [
            (operator.add, 12),
            (operator.sub, 8),
            (operator.mul, 20),
            (operator.truediv, 5.0),
            (operator.floordiv, 5),
            (operator.mod, 0),
            (operator.pow, 100),
            (operator.and_, 2),
        ],
        ids=lambda v: getattr(v, "__name__", str(v)),
    )
    def test_reflected_operators_put_the_constant_first(
        self, op: Callable[[Any, Any], Any], expected: Any
    ) -> None:
        with Flow("ops") as flow:
            x = Parameter("x")
            z = op(10, x)
        assert flow.constants[z] == {"x": 10}
        assert flow.edges == {Edge(x, z, key="y")}
        assert run_result(flow, z, x=2) == expected

    def test_a_reflected_comparison_is_the_mirrored_comparison(self) -> None:
        with Flow("ops") as flow:
            x = Parameter("x")
            z = x > 5  # Python asks x.__gt__(5)
        assert type(z) is ops.GreaterThan
        assert run_result(flow, z, x=7) is True

    def test_operators_chain_into_a_graph(self) -> None:
        with Flow("ops") as flow:
            x = Parameter("x")
            y = (x + 1) * 2 - x
        assert run_result(flow, y, x=3) == 5
        assert len(flow.tasks) == 4


class TestUnaryAndNamed:
    @pytest.mark.parametrize(("x", "expected"), [(True, False), (0, True)])
    def test_not_builds_a_not_task(self, x: Any, expected: bool) -> None:
        with Flow("ops") as flow:
            z = Parameter("x").not_()
        assert type(z) is ops.Not
        assert run_result(flow, z, x=x) is expected

    def test_a_condition_built_with_an_operator_drives_a_case(self) -> None:
        @task
        def big() -> str:
            return "big"

        with Flow("ops") as flow:
            x = Parameter("x")
            with case(x > 5, True):
                b = big()
        assert flow.run(parameters={"x": 7}).result[b].result == "big"
        assert flow.run(parameters={"x": 1}).result[b].is_skipped()


class TestGetItemAndGetAttr:
    def test_indexing_by_a_task_names_the_task(self) -> None:
        with Flow("ops") as flow:
            x, y = Parameter("x"), Parameter("y")
            z = x[y]
        with Flow("names"):
            assert (x[0].name, x["a"].name) == ("x[0]", "x['a']")
        assert z.name == "x[y]"
        assert run_result(flow, z, x={"a": 1, "b": 2}, y="b") == 2

    def test_get_item_keeps_the_upstreams_checkpoint_and_result(self, tmp_path: Path) -> None:
        result = LocalResult(dir=str(tmp_path))
        with Flow("ops"):
            z = Task(checkpoint=False, result=result)()[0]
        assert (z.checkpoint, z.result) == (False, result)

    def test_get_item_falls_back_to_a_default_for_a_missing_key(self) -> None:
        with Flow("ops") as flow:
            x = Parameter("x")
            a = ops.GetItem(default="foo")(x, "missing")
            b = ops.GetItem()(x, "missing", default="bar")
            c = ops.GetItem()(x, "missing")
        state = flow.run(parameters={"x": {}})
        assert (state.result[a].result, state.result[b].result) == ("foo", "bar")
        assert isinstance(state.result[c].result, KeyError)

    def test_get_attr_reads_dotted_attributes_with_a_default(self) -> None:
        class Obj:
            class inner:
                value = 3

        with Flow("ops") as flow:
            x = Parameter("x")
            nested = ops.GetAttr()(x, "inner.value")
            dflt = ops.GetAttr(default="foo")(x, "missing")
            missing = ops.GetAttr()(x, "missing")
        state = flow.run(parameters={"x": Obj()})
        assert (state.result[nested].result, state.result[dflt].result) == (3, "foo")
        assert isinstance(state.result[missing].result, AttributeError)


class TestPipeOperatorIsADependency:
    def test_a_pipe_makes_the_right_task_run_after_the_left_and_returns_it(self) -> None:
        with Flow("ops") as flow:
            t1, t2, t3, t4 = (Task(name=f"t{i}") for i in range(1, 5))
            result = t1 | t2 | t3 | t4
        assert result is t4
        assert flow.edges == {Edge(t1, t2), Edge(t2, t3), Edge(t3, t4)}

    def test_a_pipe_with_a_constant_adds_it_as_a_task(self) -> None:
        with Flow("ops") as flow:
            t1 = Task()
            t1 | 1
        with Flow("ops") as flow2:
            t2 = Task()
            1 | t2
        assert (len(flow.tasks), len(flow.edges)) == (2, 1)
        assert (len(flow2.tasks), len(flow2.edges)) == (2, 1)


class TestIdentity:
    def test_equality_and_hash_stay_identity(self) -> None:
        a, b = Task(name="same"), Task(name="same")
        assert a == a
        assert a != b
        assert {a: 1, b: 2}[a] == 1
        assert hash(a) != hash(b)

    def test_operators_outside_a_flow_are_refused_as_in_1x(self) -> None:
        with pytest.raises(NoActiveFlowError) as exc_info:
            Parameter("x") + 1
        assert isinstance(exc_info.value, ValueError)


class TestTheOperatorModule:
    def test_every_public_operator_task_is_exported_and_registered(self) -> None:
        public = [
            name
            for name, v in vars(ops).items()
            if isinstance(v, type)
            and issubclass(v, Task)
            and v.__module__ == ops.__name__
            and not name.startswith("_")
        ]
        assert sorted(ops.__all__) == sorted(public)
        assert sorted(OPERATOR_TASKS) == sorted(public)

    async def test_operator_tasks_run_like_any_task(self, bus: EventBus) -> None:
        with Flow("ops") as flow:
            z = ops.Add()(1, 2)
        state = await flow.run_async(bus=bus)
        assert state.result[z].result == 3
