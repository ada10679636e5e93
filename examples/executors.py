"""One flow, run on this machine and then on a Dask cluster, with the same outcome.

The flow reads a few "documents" (async, I/O-like), scores each with a CPU-heavy sync function
(mapped, tagged ``cpu``), and sums the scores (async). The first run uses the default
``LocalExecutor``: async tasks on the loop, sync ones in threads. The second gives the run a
named executor, ``executors={"cpu": DaskExecutor(...)}``: the tasks tagged ``cpu`` go to a
``LocalCluster`` of two worker processes, everything else stays on the loop. States, retries and
events stay in this process either way; only the ``cpu`` task's code moves.

Expected output contains:
    local: flow Success("All reference tasks succeeded.")
    local: score Mapped("Ready to proceed with mapping.") -> [636, 3300, 8007, 14772]
    local: total Success("Task run succeeded.") -> 26715
    local: score ran in this process: True
    dask:  flow Success("All reference tasks succeeded.")
    dask:  score Mapped("Ready to proceed with mapping.") -> [636, 3300, 8007, 14772]
    dask:  total Success("Task run succeeded.") -> 26715
    dask:  score ran in this process: False
    same states and events locally and on Dask: True
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from asyncflow import EventBus, Flow, Parameter, task
from asyncflow.executors import DaskExecutor, Executor, LocalExecutor
from asyncflow.testing import EventRecorder

#: Where ``score`` ran, for each run: the process ids it reported.
PIDS: dict[str, set[int]] = {}


@task
async def fetch(n: int) -> list[str]:
    await asyncio.sleep(0.01)  # an API call
    return [f"doc-{i}" * (i + 1) for i in range(n)]


@task(tags=["cpu"])
def score(doc: str) -> tuple[int, int]:
    """CPU-bound: returns the score and the id of the process that computed it."""
    return sum(ord(c) * i for i, c in enumerate(doc)), os.getpid()


@task
async def total(scores: list[tuple[int, int]]) -> int:
    return sum(s for s, _ in scores)


def build() -> Flow:
    with Flow("scores") as flow:
        total(score.map(fetch(Parameter("n"))))
    return flow


async def run_on(label: str, flow: Flow, executors: dict[str, Executor]) -> dict[Any, list[str]]:
    """Run ``flow``, print its outcome; return each task run's transitions as the bus saw them."""
    bus = EventBus()
    recorder = EventRecorder()
    bus.subscribe(recorder)
    state = await flow.run_async({"n": 4}, executor=LocalExecutor(), executors=executors, bus=bus)
    tasks = {t.name: s for t, s in state.result.items()}
    scores = tasks["score"]
    pids = {pid for _, pid in scores.result}
    print(f"{label} flow {state!r}")
    print(f"{label} score {scores!r} -> {[s for s, _ in scores.result]}")
    print(f"{label} total {tasks['total']!r} -> {tasks['total'].result}")
    print(f"{label} score ran in this process: {pids == {os.getpid()}}")
    transitions: dict[Any, list[str]] = {}
    for e in recorder.events:
        transitions.setdefault((e.task_name, e.map_index), []).append(
            f"{type(e.old_state).__name__} -> {e.new_state!r}"
        )
    return transitions


async def main() -> None:
    flow = build()
    local = await run_on("local:", flow, {})
    dask = DaskExecutor(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",  # a free port; None would still bind 8787
        }
    )
    on_dask = await run_on("dask: ", flow, {"cpu": dask})
    print(f"same states and events locally and on Dask: {local == on_dask}")


if __name__ == "__main__":  # Dask starts worker processes that import this file
    asyncio.run(main())
