"""asyncflow's main demo: a real flow with state handlers and a live event stream.

An order-processing flow runs in the background (``flow.start``) while this script streams its
events to the terminal as they happen. ``fetch_orders`` is an async task doing (simulated)
network I/O; ``charge`` fails its first attempt and retries on an event-loop timer; ``render``
is a sync task that runs in a worker thread; a sync state handler prints every retry and an
async one collects an audit trail. Run it with ``make demo``.

Expected output contains:
    charge failed and is retrying
    flow state: Success("All reference tasks succeeded.")
    invoice: 3 orders, total 60.00
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from asyncflow import Flow, Parameter, StateChange, context, task

if TYPE_CHECKING:
    from asyncflow.engine.state import State

AUDIT: list[str] = []


def announce_retries(task_obj: object, old: State, new: State) -> None:
    """A sync state handler: it intercepts every transition of the task it is attached to."""
    if new.is_retrying():
        print(f"  !! {task_obj} failed and is retrying at {new.start_time:%H:%M:%S.%f}")


async def audit(obj: object, old: State, new: State) -> None:
    """An async state handler: the engine awaits it before recording the transition."""
    await anyio.lowlevel.checkpoint()  # stands for a real async write (a database, a queue)
    AUDIT.append(f"{obj}: {type(old).__name__} -> {type(new).__name__}")


@task(state_handlers=[audit])
async def fetch_orders(customer: str) -> list[dict[str, float]]:
    await anyio.sleep(0.05)  # network I/O, on the event loop
    return [{"amount": 10.0}, {"amount": 20.0}, {"amount": 30.0}]


@task(max_retries=2, retry_delay=0.2, state_handlers=[announce_retries, audit])
async def charge(orders: list[dict[str, float]]) -> float:
    if context.task_run_count == 1:
        raise ConnectionError("payment gateway timed out")
    return sum(o["amount"] for o in orders)


@task(state_handlers=[audit])
def render(orders: list[dict[str, float]], total: float) -> str:
    time.sleep(0.02)  # blocking work: runs in a worker thread, not on the loop
    return f"invoice: {len(orders)} orders, total {total:.2f}"


with Flow("process-orders", state_handlers=[audit]) as flow:
    customer = Parameter("customer", default="ada")
    orders = fetch_orders(customer)
    total = charge(orders)
    invoice = render(orders, total)


def show(event: StateChange, started: float) -> None:
    who = event.task_name or f"flow {event.flow_name}"
    print(f"{event.timestamp - started:6.3f}s  #{event.seq:<2} {who:<14} {event.new_state!r}")


async def main() -> None:
    started = time.time()
    async with flow.start(parameters={"customer": "ada"}) as run:
        print(f"run {run.id} started; streaming its events live:")
        async for event in run.events():
            show(event, started)
            if event.new_state.is_retrying():
                print(f"  -> {event.task_name} failed and is retrying")
    print(f"flow state: {run.state!r}")
    print(run.task_states[invoice].result)
    print(f"audit trail: {len(AUDIT)} transitions recorded by the async handler")


if __name__ == "__main__":
    anyio.run(main)
