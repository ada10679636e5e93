"""Human approval: a run that pauses until someone says yes.

``publish`` has the ``manual_only`` trigger: the run reaches it, moves it to ``Paused`` and waits
(holding no thread; with a real clock it could wait for days). Each refund is a mapped child;
the one above the limit raises ``signals.PAUSE`` and waits for its own approval, while the other
refunds go through. Here the "human" is this script reading the run's events; in a web app it
would be an HTTP endpoint calling the same ``run.resume(task)`` / ``run.resume(task,
map_index=i)``. A resumed task does not ask its trigger again, and its code sees
``context.get("resume")``.

Expected output contains:
    refund 1 (250.0) is waiting for approval; run done: False
    approving refund 1
    publish is waiting for approval; run done: False
    approving publish
    refunds: [20.0, 250.0, 35.0]
    published: 3 refunds, 305.00 in total
    flow state: Success("All reference tasks succeeded.")
"""

from __future__ import annotations

from contextlib import aclosing

import anyio

from asyncflow import Flow, Parameter, context, task, triggers
from asyncflow.engine import signals
from asyncflow.engine.state import Paused

LIMIT = 100.0


@task
def refund(amount: float) -> float:
    if amount > LIMIT and not context.get("resume"):
        raise signals.PAUSE(f"refund of {amount} is above {LIMIT}")
    return amount


@task(trigger=triggers.manual_only)
def publish(refunds: list[float]) -> str:
    return f"{len(refunds)} refunds, {sum(refunds):.2f} in total"


with Flow("refunds") as flow:
    amounts = Parameter("amounts")
    refunds = refund.map(amounts)
    report = publish(refunds)


async def main() -> None:
    given = [20.0, 250.0, 35.0]
    async with (
        flow.start(parameters={"amounts": given}) as run,
        aclosing(run.events()) as events,
    ):
        async for event in events:
            if not isinstance(event.new_state, Paused):
                continue
            await anyio.sleep(0.05)  # a human takes a while; the run just waits
            i = event.map_index
            if i is not None:
                print(f"refund {i} ({given[i]}) is waiting for approval; run done: {run.done}")
                print(f"approving refund {i}")
                print(f"  (meanwhile the map is {run.task_states[refunds]!r})")
                run.resume(refunds, map_index=i)
            else:
                print(f"{event.task_name} is waiting for approval; run done: {run.done}")
                print(f"approving {event.task_name}")
                run.resume(event.subject)
    print(f"refunds: {run.task_states[refunds].result}")
    print(f"published: {run.task_states[report].result}")
    print(f"flow state: {run.state!r}")


if __name__ == "__main__":
    anyio.run(main)
