"""Mapping: fan a task out over a list, chain maps index by index, reduce, and stream.

``fetch.map(urls)`` runs one child per URL; ``measure.map(pages)`` maps over the *children* of
``fetch``, so each page is measured as soon as it arrives (a slow URL holds up only its own
index); ``total(sizes)`` is an ordinary task and receives the list of child results (a reduce).

The second flow maps over an async generator, something no Prefect version can do: the engine
pulls ticks from the feed lazily and starts a child per tick as it arrives, with back-pressure,
so the first children run long before the feed is exhausted.

Expected output contains:
    fetch: Mapped("Ready to proceed with mapping.")
    sizes: [22, 23, 24]
    total size: 69
    first child started after 1 tick(s) were pulled from the feed
    prices: [101.0, 102.0, 103.0, 104.0, 105.0]
    flow state: Success("All reference tasks succeeded.")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from asyncflow import Flow, Parameter, context, task, unmapped

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# -- 1. fan out, per-index chain, reduce ------------------------------------------------------


@task(task_run_name="fetch {url}")
async def fetch(url: str, delay: float) -> str:
    # The second URL is slow: only its own index waits for it.
    await anyio.sleep(delay * (3 if url.endswith("b") else 1))
    print(f"  fetched {url} ({context.task_run_name}, map_index={context.map_index})")
    return f"<html>{url}</html>"


@task
def measure(page: str) -> int:
    return len(page)


@task
def total(sizes: list[int]) -> int:
    return sum(sizes)


with Flow("crawl") as crawl:
    urls = Parameter("urls")
    pages = fetch.map(urls, delay=unmapped(0.01))
    sizes = measure.map(pages)
    size = total(sizes)


# -- 2. an async generator as the mapped input ------------------------------------------------

pulled = 0
pulled_when_first_child_started: list[int] = []


async def ticker(n: int) -> AsyncIterator[float]:
    """A live feed: one price every 10 ms."""
    global pulled
    for i in range(n):
        await anyio.sleep(0.01)
        pulled += 1
        yield 100.0 + i


@task
async def enrich(price: float) -> float:
    if not pulled_when_first_child_started:
        pulled_when_first_child_started.append(pulled)
    return price + 1.0


with Flow("stream") as stream:
    prices = enrich.map(ticker(5))


async def main() -> None:
    state = await crawl.run_async(parameters={"urls": ["https://a", "https://bb", "https://ccc"]})
    print(f"fetch: {state.result[pages]!r}")
    print(f"sizes: {state.result[sizes].result}")
    print(f"total size: {state.result[size].result}")

    state = await stream.run_async()
    print(
        f"first child started after {pulled_when_first_child_started[0]} tick(s) "
        "were pulled from the feed"
    )
    print(f"prices: {state.result[prices].result}")
    print(f"flow state: {state!r}")


if __name__ == "__main__":
    anyio.run(main)
