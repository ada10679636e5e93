"""Specification of ``Parameter`` (asyncflow/parameter.py) and of how a run resolves parameter
values (``Flow.run`` / ``Flow.run_async``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import Edge, Flow, Parameter, ParameterError, Task, task
from asyncflow.states import Success

if TYPE_CHECKING:
    from asyncflow import EventBus


@task
def echo(x: Any) -> Any:
    return x


@task
def total(x: int, y: int) -> int:
    return x + y


def flow_with(*params: Parameter) -> tuple[Flow, Task]:
    """A flow whose single downstream task returns the list of the parameters' values."""
    with Flow("f") as flow:
        out = echo(list(params))
    return flow, out


class TestParameterObject:
    def test_repr_shows_the_name(self) -> None:
        assert repr(Parameter("x")) == "<Parameter: x>"

    def test_a_parameter_is_a_task_whose_slug_is_its_name(self) -> None:
        p = Parameter("x", tags=["input"])
        assert isinstance(p, Task)
        assert (p.name, p.slug, p.tags) == ("x", "x", {"input"})

    @pytest.mark.parametrize(
        ("kwargs", "required", "default"),
        [
            ({}, True, None),
            ({"default": None}, False, None),
            ({"default": 3}, False, 3),
            ({"default": 3, "required": True}, True, 3),
            ({"required": False}, False, None),
        ],
    )
    def test_required_unless_a_default_is_given(
        self, kwargs: dict[str, Any], required: bool, default: Any
    ) -> None:
        p = Parameter("x", **kwargs)
        assert (p.required, p.default) == (required, default)

    @pytest.mark.parametrize("name", ["", None, 3])
    def test_the_name_must_be_a_non_empty_string(self, name: Any) -> None:
        with pytest.raises(TypeError) as exc_info:
            Parameter(name)
        assert str(exc_info.value) == f"Parameter name must be a non-empty string, got {name!r}"

    def test_run_returns_the_default(self) -> None:
        assert Parameter("x", default=5).run() == 5

    def test_a_copy_takes_a_new_name_which_is_also_its_slug(self) -> None:
        c = Parameter("x", default=1).copy("y")
        assert isinstance(c, Parameter)
        assert (c.name, c.slug, c.default, c.required) == ("y", "y", 1, False)


class TestParameterInAFlow:
    def test_passing_a_parameter_binds_the_parameter_itself(self) -> None:
        x = Parameter("x")
        with Flow("f") as flow:
            out = echo(x)
        assert flow.tasks == {x, out}
        assert flow.edges == {Edge(x, out, key="x")}
        assert flow.parameters() == {x}

    def test_calling_a_parameter_adds_it_without_copying(self) -> None:
        x = Parameter("x")
        with Flow("f") as flow:
            assert x() is x
        assert flow.tasks == {x}

    def test_calling_a_parameter_with_flow_adds_it_there(self) -> None:
        x = Parameter("x")
        flow = Flow("f")
        assert x(flow=flow) is x
        assert flow.parameters() == {x}

    def test_a_parameter_takes_no_arguments(self) -> None:
        with Flow("f"), pytest.raises(TypeError) as exc_info:
            Parameter("x")(1)
        assert str(exc_info.value) == "<Parameter: x> takes no arguments"

    def test_two_parameters_with_one_name_are_refused(self) -> None:
        with Flow("f") as flow:
            echo(Parameter("x"))
            with pytest.raises(ValueError, match=r"already has a parameter with slug 'x'"):
                echo(Parameter("x"))
        assert len(flow.parameters()) == 1


class TestParameterValues:
    async def test_given_values_reach_downstream_tasks(self, bus: EventBus) -> None:
        x, y = Parameter("x"), Parameter("y")
        with Flow("f") as flow:
            out = total(x, y)
        state = await flow.run_async(parameters={"x": 2, "y": 40}, bus=bus)
        assert state.result[out] == Success("Task run succeeded.", result=42)
        assert state.result[x].result == 2
        assert state.result[y].result == 40

    async def test_defaults_are_used_when_no_value_is_given(self, bus: EventBus) -> None:
        flow, out = flow_with(Parameter("a", default=1), Parameter("b", default=None))
        state = await flow.run_async(bus=bus)
        assert state.result[out].result == [1, None]

    async def test_a_given_value_replaces_the_default(self, bus: EventBus) -> None:
        flow, out = flow_with(Parameter("a", default=1), Parameter("b", default=None))
        state = await flow.run_async(parameters={"a": 10, "b": "set"}, bus=bus)
        assert state.result[out].result == [10, "set"]

    async def test_a_required_parameter_with_a_default_takes_its_given_value(
        self, bus: EventBus
    ) -> None:
        flow, out = flow_with(Parameter("a", default=1, required=True))
        state = await flow.run_async(parameters={"a": 7}, bus=bus)
        assert state.result[out].result == [7]

    def test_the_sync_front_door_passes_values_too(self, bus: EventBus) -> None:
        flow, out = flow_with(Parameter("a"))
        state = flow.run(parameters={"a": "hello"}, bus=bus)
        assert state.result[out].result == ["hello"]

    async def test_parameters_do_not_leak_between_runs(self, bus: EventBus) -> None:
        flow, out = flow_with(Parameter("a", default=0))
        first = await flow.run_async(parameters={"a": 1}, bus=bus)
        second = await flow.run_async(bus=bus)
        assert (first.result[out].result, second.result[out].result) == ([1], [0])


class TestParameterErrors:
    @pytest.fixture
    def flow(self) -> Flow:
        flow, _ = flow_with(
            Parameter("needed"),
            Parameter("strict", default=1, required=True),
            Parameter("optional", default=None),
        )
        return flow

    async def test_missing_required_parameters_are_named(self, flow: Flow, bus: EventBus) -> None:
        with pytest.raises(ParameterError) as exc_info:
            await flow.run_async(bus=bus)
        assert str(exc_info.value) == (
            "<Flow: name=f> did not receive required parameter(s) ['needed', 'strict']"
        )

    async def test_a_required_parameter_with_a_default_must_still_be_given(
        self, flow: Flow, bus: EventBus
    ) -> None:
        with pytest.raises(ParameterError) as exc_info:
            await flow.run_async(parameters={"needed": 1}, bus=bus)
        assert str(exc_info.value) == (
            "<Flow: name=f> did not receive required parameter(s) ['strict']"
        )

    async def test_unknown_parameters_are_named(self, flow: Flow, bus: EventBus) -> None:
        with pytest.raises(ParameterError) as exc_info:
            await flow.run_async(
                parameters={"needed": 1, "strict": 2, "zeta": 0, "alpha": 0}, bus=bus
            )
        assert str(exc_info.value) == (
            "<Flow: name=f> received unexpected parameter(s) ['alpha', 'zeta']; "
            "its parameters are ['needed', 'optional', 'strict']"
        )

    def test_the_sync_front_door_refuses_missing_parameters(
        self, flow: Flow, bus: EventBus
    ) -> None:
        with pytest.raises(ParameterError) as exc_info:
            flow.run(bus=bus)
        assert str(exc_info.value) == (
            "<Flow: name=f> did not receive required parameter(s) ['needed', 'strict']"
        )

    def test_the_sync_front_door_refuses_unknown_parameters(
        self, flow: Flow, bus: EventBus
    ) -> None:
        with pytest.raises(ParameterError) as exc_info:
            flow.run(parameters={"needed": 1, "strict": 2, "extra": 3}, bus=bus)
        assert str(exc_info.value) == (
            "<Flow: name=f> received unexpected parameter(s) ['extra']; "
            "its parameters are ['needed', 'optional', 'strict']"
        )

    def test_unknown_and_missing_parameters_are_named_together(
        self, flow: Flow, bus: EventBus
    ) -> None:
        with pytest.raises(ParameterError) as exc_info:
            flow.run(parameters={"needed": 1, "extra": 3}, bus=bus)
        assert str(exc_info.value) == (
            "<Flow: name=f> received unexpected parameter(s) ['extra']; "
            "its parameters are ['needed', 'optional', 'strict']; "
            "and it did not receive required parameter(s) ['strict']"
        )
        assert exc_info.value.unknown == ("extra",)
        assert exc_info.value.missing == ("strict",)

    async def test_a_flow_without_parameters_refuses_any(self, bus: EventBus) -> None:
        with Flow("empty") as flow:
            echo(1)
        with pytest.raises(ParameterError) as exc_info:
            await flow.run_async(parameters={"x": 1}, bus=bus)
        assert str(exc_info.value) == (
            "<Flow: name=empty> received unexpected parameter(s) ['x']; its parameters are []"
        )

    async def test_a_refused_run_publishes_no_events(
        self, flow: Flow, bus: EventBus, recorder: Any
    ) -> None:
        with pytest.raises(ParameterError):
            await flow.run_async(bus=bus)
        assert recorder.events == []

    def test_parameter_error_is_a_value_error(self, flow: Flow, bus: EventBus) -> None:
        with pytest.raises(ValueError, match=r"did not receive required parameter"):
            flow.run(bus=bus)
