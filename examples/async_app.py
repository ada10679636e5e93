"""asyncflow inside an existing asyncio application.

The application already runs an event loop and a TCP echo service (``asyncio.start_server`` on
loopback). A flow of async tasks runs on that same loop with ``await flow.run_async()``; its
async state handler reports every transition over a real TCP connection to the service and
waits for the echo before the engine records the state.

Expected output contains:
    echoed: fetch_user Running -> Success
    echoed: greet Running -> Success
    result: Hello, Ada Lovelace!
    flow: Success("All reference tasks succeeded.")
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from asyncflow import Flow, Parameter, task

if TYPE_CHECKING:
    from asyncflow.engine.state import State


class Reporter:
    """An async state handler that sends each transition to a TCP service and awaits the echo."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.echoes: list[str] = []

    async def __call__(self, obj: object, old: State, new: State) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        name = getattr(obj, "name", obj)
        writer.write(f"{name} {type(old).__name__} -> {type(new).__name__}\n".encode())
        await writer.drain()
        echo = (await reader.readline()).decode().strip()
        writer.close()
        await writer.wait_closed()
        self.echoes.append(echo)
        if new.is_finished():
            print(f"echoed: {echo}")


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reporter = Reporter(port)

    @task(state_handlers=[reporter])
    async def fetch_user(user_id: int) -> dict[str, str]:
        await asyncio.sleep(0.01)  # an API call
        return {"first": "Ada", "last": "Lovelace"}

    @task(state_handlers=[reporter])
    async def greet(user: dict[str, str]) -> str:
        return f"Hello, {user['first']} {user['last']}!"

    with Flow("greeter") as flow:
        greeting = greet(fetch_user(Parameter("user_id")))

    async with server:
        state = await flow.run_async(parameters={"user_id": 1})
    print(f"result: {state.result[greeting].result}")
    print(f"flow: {state!r}")
    print(f"{len(reporter.echoes)} transitions went over TCP and back")


if __name__ == "__main__":
    asyncio.run(main())
