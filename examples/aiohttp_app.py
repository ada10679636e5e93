"""An aiohttp service that runs a deployment flow with a human approval step.

The service knows a few services and their health (``/services``, ``/health/{name}``) and mounts
asyncflow's sub-application under ``/api/``. The ``deploy`` flow fetches the list of services
from the service itself (the first call fails with 503, so the task retries), checks the health
of each one at once with ``map``, then waits for a human: its ``approve`` task has the
``manual_only`` trigger, so it stays ``Paused`` until someone calls
``POST /api/runs/{id}/tasks/approve/resume``. Then ``release`` runs.

``python examples/aiohttp_app.py`` serves the app with aiohttp's own runner on a free loopback
port, plays the client (starts a run, follows its event stream, approves the paused step when it
sees it, reads the result), prints what it saw and stops the server. With ``--serve`` it stays
up on http://127.0.0.1:8080 instead: open http://127.0.0.1:8080/api/dashboard and approve there.

Expected output contains:
    POST /api/flows/deploy/runs -> 201
    fetch_services: Failed -> Retrying
    check_health[2]: Running -> Success
    approve: Pending -> Paused
    POST /api/runs/<id>/tasks/approve/resume -> 202
    approve: Running -> Success
    flow: Running -> Success
    released: api, web, worker
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp
from aiohttp import web

from asyncflow import Flow, Parameter, task, unmapped
from asyncflow.integrations import Runtime
from asyncflow.integrations.aiohttp import subapp
from asyncflow.triggers import manual_only

HEALTH = {"api": "ok", "web": "ok", "worker": "ok"}


@task(max_retries=2, retry_delay=0.05)
async def fetch_services(base_url: str) -> list[str]:
    async with aiohttp.ClientSession(base_url) as session, session.get("/services") as response:
        response.raise_for_status()
        names: list[str] = (await response.json())["services"]
        return names


@task(max_retries=1, retry_delay=0.05)
async def check_health(base_url: str, name: str) -> str:
    async with (
        aiohttp.ClientSession(base_url) as session,
        session.get(f"/health/{name}") as response,
    ):
        response.raise_for_status()
        status: str = (await response.json())["status"]
        if status != "ok":
            raise RuntimeError(f"{name} is {status}")
        return name


@task(trigger=manual_only)
async def approve(names: list[str]) -> list[str]:
    return names


@task
async def release(names: list[str]) -> str:
    return ", ".join(names)


with Flow("deploy") as deploy_flow:
    base_url = Parameter("base_url")
    healthy = check_health.map(unmapped(base_url), fetch_services(base_url))
    release(approve(healthy))


def make_app() -> web.Application:
    calls = {"services": 0}

    async def services(request: web.Request) -> web.Response:
        calls["services"] += 1
        if calls["services"] == 1:  # a flaky upstream: the first call fails
            return web.json_response({"error": "warming up"}, status=503)
        return web.json_response({"services": sorted(HEALTH)})

    async def health(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response({"name": name, "status": HEALTH.get(name, "unknown")})

    app = web.Application()
    app.router.add_get("/services", services)
    app.router.add_get("/health/{name}", health)
    # The sub-application enters the runtime for the app's lifetime and shuts it down first.
    app.add_subapp("/api/", subapp(Runtime({"deploy": deploy_flow})))
    return app


def describe(event: dict[str, Any]) -> str:
    """One line per event: ``task[i]: Old -> New``."""
    who = event["task_name"] or "flow"
    if event["map_index"] is not None:
        who += f"[{event['map_index']}]"
    return f"{who}: {event['old_state']['type']} -> {event['new_state']['type']}"


async def play_client(base: str) -> None:
    async with aiohttp.ClientSession(base) as client:
        body = {"parameters": {"base_url": base}}
        async with client.post("/api/flows/deploy/runs", json=body) as response:
            print(f"POST /api/flows/deploy/runs -> {response.status}")
            run_id = (await response.json())["id"]
        async with client.get(f"/api/runs/{run_id}/events") as events:
            kind = None
            async for raw in events.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind == "state":
                    event = json.loads(line.removeprefix("data: "))
                    print(describe(event))
                    if event["task_name"] == "approve" and event["new_state"]["type"] == "Paused":
                        # A human looks at the health checks and says yes.
                        url = f"/api/runs/{run_id}/tasks/approve/resume"
                        async with client.post(url) as approved:
                            print(f"POST /api/runs/<id>/tasks/approve/resume -> {approved.status}")
        async with client.get(f"/api/runs/{run_id}") as response:
            run = await response.json()
        print(f"released: {run['tasks']['release']['result']}")


async def main() -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        await play_client(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        web.run_app(make_app(), host="127.0.0.1", port=8080)
    else:
        asyncio.run(main())
