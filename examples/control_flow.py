"""Control flow: ``case`` + ``merge``, ``switch``, ``ifelse``, ``FilterTask`` and ``LOOP``.

A branch that is not taken ends ``Skipped`` and the skip cascades downstream; ``merge`` returns
the result of the branch that ran. ``FilterTask`` drops the ``None``s and errors of a mapped
result (it runs even though some children failed). A task that raises ``signals.LOOP`` runs
again with ``context.task_loop_result``, publishing one ``Looped`` state per iteration.

Expected output contains:
    case: weekday -> send report: report sent | weekend -> send report: Skipped
    case: weekend -> merge picked: nothing to do today
    switch('medium'): small=Skipped medium=ran large=Skipped
    ifelse(0): true branch Skipped, false branch ran
    filtered reciprocals: [1.0, 0.5, 0.25]
    loop: Looped(1) Looped(2) Looped(3) Looped(4) then Success with 5! = 120
"""

from __future__ import annotations

import anyio

from asyncflow import FilterTask, Flow, Parameter, case, context, ifelse, merge, switch, task
from asyncflow.engine import signals
from asyncflow.engine.state import Looped, State


def outcome(state: State) -> str:
    return "ran" if type(state).__name__ == "Success" else type(state).__name__


# -- case and merge --------------------------------------------------------------------------------


@task
def day_kind(day: str) -> str:
    return "weekend" if day in ("sat", "sun") else "weekday"


@task
def send_report() -> str:
    return "report sent"


@task
def rest() -> str:
    return "nothing to do today"


@task
def log(message: str) -> str:
    return f"logged: {message}"


with Flow("daily") as daily:
    kind = day_kind(Parameter("day"))
    with case(kind, "weekday"):
        report = send_report()
    with case(kind, "weekend"):
        idle = rest()
    result = merge(report, idle)
    logged = log(result)


# -- switch and ifelse -----------------------------------------------------------------------------


@task
def size_of(n: int) -> str:
    return "small" if n < 10 else "medium" if n < 100 else "large"


@task
def small() -> str:
    return "small"


@task
def medium() -> str:
    return "medium"


@task
def large() -> str:
    return "large"


@task
def identity(x: int) -> int:
    return x


@task
def when_true() -> str:
    return "true"


@task
def when_false() -> str:
    return "false"


with Flow("sizes") as sizes:
    branches = {"small": small(), "medium": medium(), "large": large()}
    switch(size_of(42), branches)
    yes, no = when_true(), when_false()
    ifelse(identity(0), yes, no)


# -- FilterTask over a mapped result ---------------------------------------------------------------


@task
def reciprocal(x: int) -> float | None:
    if x < 0:
        return None  # "no answer"
    return 1 / x  # x == 0 fails this child


with Flow("filter") as filtering:
    kept = FilterTask()(reciprocal.map([1, 0, 2, -1, 4]))


# -- LOOP ------------------------------------------------------------------------------------------


LOOPS: list[str] = []


def watch(task: object, old: State, new: State) -> None:
    """A state handler: it sees every ``Looped`` state the loop goes through."""
    if isinstance(new, Looped):
        LOOPS.append(f"Looped({new.loop_count})")


@task(state_handlers=[watch])
def factorial(n: int) -> int:
    i = context.get("task_loop_count", 1)
    acc = context.get("task_loop_result") or 1
    if i < n:
        raise signals.LOOP(result=acc * i)
    return acc * i


with Flow("loop") as looping:
    fact = factorial(5)


async def main() -> None:
    weekday = await daily.run_async(parameters={"day": "mon"})
    weekend = await daily.run_async(parameters={"day": "sun"})
    print(
        f"case: weekday -> send report: {weekday.result[report].result} | "
        f"weekend -> send report: {type(weekend.result[report]).__name__}"
    )
    print(f"case: weekend -> merge picked: {weekend.result[result].result}")
    print(f"  ({weekend.result[logged].result})")

    state = await sizes.run_async()
    print(
        "switch('medium'): "
        + " ".join(f"{k}={outcome(state.result[t])}" for k, t in branches.items())
    )
    print(
        f"ifelse(0): true branch {outcome(state.result[yes])}, "
        f"false branch {outcome(state.result[no])}"
    )

    state = await filtering.run_async()
    print(f"filtered reciprocals: {state.result[kept].result}")

    state = await looping.run_async()
    print(f"loop: {' '.join(LOOPS)} then Success with 5! = {state.result[fact].result}")


if __name__ == "__main__":
    anyio.run(main)
