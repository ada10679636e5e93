"""A FastAPI service that runs flows in the background and streams their events (SSE).

The service has a small price catalogue (``/catalog``, ``/prices/{sku}``) and mounts asyncflow's
router under ``/api``. The ``prices`` flow fetches the catalogue from the service itself, which
answers 503 the first time, so the task retries; then it fans out with ``map`` to fetch every
price at once and adds them up.

``python examples/fastapi_app.py`` serves the app with uvicorn on a free loopback port, plays the
client for one run (``POST /api/flows/prices/runs``, then the run's event stream to its end,
then ``GET /api/runs/{id}``), prints what it saw and shuts the server down. With ``--serve`` it
stays up on http://127.0.0.1:8000 instead: open http://127.0.0.1:8000/api/dashboard (Ctrl-C
stops it at once: open streams get their runs' last events first). It needs nothing but
``pip install 'asyncflow[fastapi]'``: the tasks and the client speak HTTP with the standard
library's ``urllib`` (the tasks are plain functions, so they run in worker threads).

Expected output contains:
    POST /api/flows/prices/runs -> 201
    fetch_catalog: Running -> Failed
    fetch_catalog: Failed -> Retrying
    fetch_catalog: Running -> Success
    fetch_price[3]: Running -> Success
    flow: Running -> Success ("All reference tasks succeeded.")
    stream ended: Success
    total: 42.5
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException

from asyncflow import Flow, Parameter, task, unmapped
from asyncflow.integrations import Runtime
from asyncflow.integrations.fastapi import router

PRICES = {"apple": 1.25, "bread": 3.5, "cheese": 12.75, "wine": 25.0}


def get_json(url: str) -> Any:
    """GET ``url`` and parse its JSON (an HTTP error status raises ``HTTPError``)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@task(max_retries=2, retry_delay=0.05)
def fetch_catalog(base_url: str) -> list[str]:
    skus: list[str] = get_json(f"{base_url}/catalog")["skus"]
    return skus


@task(max_retries=2, retry_delay=0.05)
def fetch_price(base_url: str, sku: str) -> float:
    price: float = get_json(f"{base_url}/prices/{sku}")["price"]
    return price


@task
def add_up(prices: list[float]) -> float:
    return round(sum(prices), 2)


with Flow("prices") as prices_flow:
    base_url = Parameter("base_url")
    add_up(fetch_price.map(unmapped(base_url), fetch_catalog(base_url)))


def make_app() -> FastAPI:
    runtime = Runtime({"prices": prices_flow})
    app = FastAPI(title="price service", lifespan=runtime.lifespan)
    calls = {"catalog": 0}

    @app.get("/catalog")
    async def catalog() -> dict[str, list[str]]:
        calls["catalog"] += 1
        if calls["catalog"] == 1:  # a flaky upstream: the first call fails
            raise HTTPException(503, "warming up")
        return {"skus": sorted(PRICES)}

    @app.get("/prices/{sku}")
    async def price(sku: str) -> dict[str, Any]:
        if sku not in PRICES:
            raise HTTPException(404, f"no such sku {sku!r}")
        return {"sku": sku, "price": PRICES[sku]}

    app.include_router(router(runtime), prefix="/api")
    return app


def describe(event: dict[str, Any]) -> str:
    """One line per event: ``task[i]: Old -> New``."""
    who = event["task_name"] or "flow"
    if event["map_index"] is not None:
        who += f"[{event['map_index']}]"
    old, new = event["old_state"]["type"], event["new_state"]["type"]
    line = f"{who}: {old} -> {new}"
    return line + (f' ("{event["new_state"]["message"]}")' if who == "flow" else "")


def play_client(base: str) -> None:
    """The client side, blocking (it runs in a thread beside the server)."""
    body = json.dumps({"parameters": {"base_url": base}}).encode()
    request = urllib.request.Request(
        f"{base}/api/flows/prices/runs", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        print(f"POST /api/flows/prices/runs -> {response.status}")
        run_id = json.load(response)["id"]
    with urllib.request.urlopen(f"{base}/api/runs/{run_id}/events", timeout=30) as events:
        kind = None
        for raw in events:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if kind == "state":
                    print(describe(data))
                else:
                    print(f"stream ended: {data['state']['type']}")
                    break
    run = get_json(f"{base}/api/runs/{run_id}")
    print(f"total: {run['tasks']['add_up']['result']}")


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
    if "--serve" in sys.argv:
        uvicorn.run(make_app(), host="127.0.0.1", port=8000)
    else:
        asyncio.run(main())
