"""An async bus subscriber that forwards every failure to a local webhook service.

A tiny webhook receiver (newline-delimited JSON over TCP on loopback) stands in for Slack or
PagerDuty. ``bus.subscribe(notify, filter=by_state(Failed))`` delivers only failures to the
async subscriber, which awaits a real network round trip per event. Subscribers observe: the
flow never waits for them beyond their buffer, and when ``run_async`` returns every event has
been delivered.

Expected output contains:
    webhook got: flaky_sensor Failed
    webhook got: report TriggerFailed
    webhook got: flow sensors Failed
    subscription: delivered=3 dropped=0 errors=0
"""

from __future__ import annotations

import asyncio
import json

from asyncflow import EventBus, Flow, StateChange, by_state, task
from asyncflow.engine.state import Failed


async def main() -> None:
    received: list[dict[str, str]] = []

    async def webhook(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(json.loads(await reader.readline()))
        writer.write(b"ok\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(webhook, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def notify(event: StateChange) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = {
            "who": event.task_name or f"flow {event.flow_name}",
            "state": type(event.new_state).__name__,
            "message": event.new_state.message or "",
        }
        writer.write(json.dumps(body).encode() + b"\n")
        await writer.drain()
        await reader.readline()
        writer.close()
        await writer.wait_closed()

    @task
    async def read_sensor(n: int) -> float:
        await asyncio.sleep(0.01)
        return 20.0 + n

    @task
    async def flaky_sensor() -> float:
        raise OSError("sensor offline")

    @task
    def report(a: float, b: float) -> str:
        return f"{a} {b}"

    with Flow("sensors") as flow:
        report(read_sensor(1), flaky_sensor())

    bus = EventBus()
    subscription = bus.subscribe(notify, filter=by_state(Failed), buffer=16)
    async with server:
        state = await flow.run_async(bus=bus)
    for body in received:
        print(f"webhook got: {body['who']} {body['state']}")
    print(f"flow: {state!r}")
    print(
        f"subscription: delivered={subscription.delivered} dropped={subscription.dropped} "
        f"errors={subscription.errors}"
    )


if __name__ == "__main__":
    asyncio.run(main())
