"""Stream a run's events to the terminal while it runs, with ``bus.stream()``.

Twelve downloads (slugs ``download-1`` .. ``download-12``) run concurrently (async tasks on
one loop), a merge step waits for all of them, and the terminal shows each transition as it
happens, then a summary line.

Expected output contains:
    download-11
    merge-1
    12 downloads finished; flow Success("All reference tasks succeeded.")
"""

from __future__ import annotations

import functools
import random
import time

import anyio

from asyncflow import EventBus, Flow, by_flow, task


@task
async def download(n: int) -> int:
    await anyio.sleep(random.uniform(0.01, 0.1))  # network I/O
    return n * 1024


@task
def merge(sizes: list[int]) -> int:
    return sum(sizes)


with Flow("downloads") as flow:
    merged = merge([download(n) for n in range(12)])


async def main() -> None:
    bus = EventBus()
    started = time.monotonic()
    finished = 0
    async with anyio.create_task_group() as tg, bus.stream(by_flow("downloads")) as events:
        tg.start_soon(functools.partial(flow.run_async, bus=bus))
        async for event in events:
            at = time.monotonic() - started
            state = type(event.new_state).__name__
            if event.task_name is None:
                if event.new_state.is_finished():
                    print(f"{finished} downloads finished; flow {event.new_state!r}")
                    break
                continue
            label = (event.task_run_id or "").rpartition("/")[2]  # the task's slug
            if event.task_name == "download" and event.new_state.is_successful():
                finished += 1
            print(f"{at:6.3f}s {label:<30} {state}")


if __name__ == "__main__":
    anyio.run(main)
