"""``task_run_name``: formatted, as in Prefect 1.x, with the parameters, the context and the inputs.

A template sees every context key (``{task_name}``, ``{map_index}``, ``{flow_name}``, ...), the
run's parameters by name, and the task's inputs, the inputs winning over the context and the
context over the parameters. A callable gets the same keywords (those its signature accepts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import Flow, Parameter, context, task, unmapped

if TYPE_CHECKING:
    from asyncflow import EventBus


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{task_name}-{x}", ["named-5", "named-6"]),
        ("{flow_name}/{map_index}", ["names/0", "names/1"]),
        ("{who}:{x}", ["ada:5", "ada:6"]),
        (
            lambda **kw: f"{kw['task_name']}[{kw['map_index']}]={kw['x']}",
            ["named[0]=5", "named[1]=6"],
        ),
        (lambda x, who: f"{who}-{x}", ["ada-5", "ada-6"]),
    ],
    ids=["task-name", "flow-name-and-map-index", "parameter", "callable-kwargs", "callable-named"],
)
async def test_the_template_sees_context_parameters_and_inputs(
    bus: EventBus, template: Any, expected: list[str]
) -> None:
    @task(task_run_name=template)
    def named(x: int, who: str) -> str:
        return context.task_run_name

    with Flow("names") as flow:
        m = named.map([5, 6], who=unmapped(Parameter("who")))

    state = await flow.run_async(who="ada", bus=bus)

    assert state.result[m].result == expected


async def test_an_input_wins_over_a_context_key_of_the_same_name(bus: EventBus) -> None:
    @task(task_run_name="{task_name}")
    def shadow(task_name: str) -> str:
        return context.task_run_name

    with Flow("shadow") as flow:
        t = shadow("from-input")

    assert (await flow.run_async(bus=bus)).result[t].result == "from-input"
