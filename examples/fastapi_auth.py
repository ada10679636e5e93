"""Authentication in front of asyncflow's routes: a FastAPI dependency on the whole router.

asyncflow adds no authentication of its own: the app decides who may start, follow and cancel
runs. Here every route of the router (the API, the event streams, the dashboard) requires a
bearer token, given once, as a dependency, where the router is included.

``python examples/fastapi_auth.py`` serves the app with uvicorn on a free loopback port, tries
to start a run without the token and with it, follows the run's events, and stops. It needs
only ``pip install 'asyncflow[fastapi]'``.

Expected output contains:
    without a token: 401 a valid token is required
    with the token: 201
    greet: Running -> Success
    stream ended: Success
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException

from asyncflow import Flow, Parameter, task
from asyncflow.integrations import Runtime
from asyncflow.integrations.fastapi import router

TOKEN = secrets.token_urlsafe(16)  # in a real service: from its secrets store


async def require_token(authorization: Annotated[str, Header()] = "") -> None:
    """Refuse a request without ``Authorization: Bearer <TOKEN>``."""
    if not secrets.compare_digest(authorization, f"Bearer {TOKEN}"):
        raise HTTPException(401, "a valid token is required")


@task
def greet(name: str) -> str:
    return f"hello, {name}"


with Flow("greet") as greet_flow:
    greet(Parameter("name"))


def make_app() -> FastAPI:
    runtime = Runtime({"greet": greet_flow})
    app = FastAPI(lifespan=runtime.lifespan)
    app.include_router(router(runtime), prefix="/api", dependencies=[Depends(require_token)])
    return app


def call(url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """One request with ``urllib``; the status and the parsed JSON answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def play_client(base: str) -> None:
    start = f"{base}/api/flows/greet/runs"
    status, answer = call(start, body={"parameters": {"name": "ada"}})
    print(f"without a token: {status} {answer['detail']}")
    status, answer = call(start, TOKEN, {"parameters": {"name": "ada"}})
    print(f"with the token: {status}")
    request = urllib.request.Request(
        f"{base}/api/runs/{answer['id']}/events", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as events:
        kind = None
        for raw in events:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if kind == "end":
                    print(f"stream ended: {data['state']['type']}")
                    break
                if data["task_name"] == "greet":
                    print(f"greet: {data['old_state']['type']} -> {data['new_state']['type']}")


async def main() -> None:
    config = uvicorn.Config(make_app(), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to await)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        await asyncio.to_thread(play_client, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await serving


if __name__ == "__main__":
    asyncio.run(main())
