"""Executors: 10,000 small CPU-bound tasks on threads, processes and Dask, beside plain Dask.

Every task computes ``sum(j * j for j in range(2000)) + i`` (about 0.1 ms of pure Python, so
the figures are dominated by what it costs to send a task somewhere and get its result back).
One asyncflow flow maps the function over ``range(10_000)`` and runs on:

- ``LocalExecutor``: sync tasks in worker threads (40, anyio's default); the GIL serialises
  the arithmetic, so this is the engine's per-task cost plus one thread hop per task;
- ``ProcessExecutor``: one ``anyio.to_process`` call per task (cloudpickle there, pickle back),
  as many worker processes as CPUs;
- ``DaskExecutor`` on a ``LocalCluster`` of 2 single-threaded worker processes: one
  ``client.submit`` per task, each future awaited by the engine;

next to **plain Dask** on the same cluster, ``client.map(work, range(10_000))`` then
``client.gather``: the same work with no engine, the figure the Dask row is divided by.
A serial loop in this process gives the cost of the arithmetic alone.

Run with ``python -m benchmarks.executors`` (``--n``, ``--repeats``, ``--size``). Each figure
is the median of ``--repeats`` (3) timed runs. The variants are interleaved (the order rotates on
each repeat) with a ``gc.collect()`` before each timed call, after one small warm-up run of each
so that worker processes are started and functions imported before timing. Every timed run is
checked: its results must add up to the serial loop's. asyncflow's INFO logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
import traceback
from functools import partial
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from asyncflow import EventBus, Flow, task, unmapped
from asyncflow.executors import DaskExecutor, LocalExecutor, ProcessExecutor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from asyncflow.executors import Executor

__all__ = ("main", "work")

#: How many ``j * j`` each task adds up (``--size``).
SIZE = 2000
#: Tasks in the warm-up run of each variant.
WARM_UP = 50


def work(i: int, size: int = SIZE) -> int:
    """One small CPU-bound task."""
    return sum(j * j for j in range(size)) + i


def expected_total(n: int, size: int) -> int:
    return n * sum(j * j for j in range(size)) + n * (n - 1) // 2


def build_flow(n: int, size: int) -> Flow:
    with Flow("cpu-bound") as flow:
        task(name="work")(work).map(list(range(n)), size=unmapped(size))
    return flow


async def run_flow(flow: Flow, executor: Executor) -> int:
    state = await flow.run_async(executor=executor, bus=EventBus())
    (mapped,) = [s for t, s in state.result.items() if t.name == "work"]
    if not (state.is_successful() and mapped.is_mapped()):
        raise RuntimeError(f"the flow did not succeed: {state!r}, {mapped!r}")
    return sum(mapped.result)


async def plain_dask(client: Any, n: int, size: int) -> int:
    futures = client.map(work, range(n), size=size, pure=False)
    return sum(await client.gather(futures))


def serial(n: int, size: int) -> int:
    return sum(work(i, size) for i in range(n))


async def timed(fn: Callable[[], Awaitable[int]], expected: int) -> float:
    gc.collect()
    start = time.perf_counter()
    total = await fn()
    elapsed = time.perf_counter() - start
    if total != expected:
        raise RuntimeError(f"wrong total: {total} != {expected}")
    return elapsed


SERIAL = "serial loop (no engine)"
PLAIN_DASK = "plain Dask client.map + gather"


async def measure(n: int, size: int, repeats: int) -> tuple[dict[str, list[float]], set[str]]:
    """Time every variant ``repeats`` times; return the times and the variants that failed."""
    import distributed

    flows = {n: build_flow(n, size), WARM_UP: build_flow(WARM_UP, size)}
    expected = expected_total(n, size)
    # The cluster's scheduler runs on this event loop, as it does under DaskExecutor() without
    # an address; its two workers are processes of their own.
    async with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            asynchronous=True,
        ) as cluster,
        distributed.Client(cluster, asynchronous=True, set_as_default=False) as client,
    ):
        local = LocalExecutor()
        processes = ProcessExecutor()
        dask = DaskExecutor(address=cluster.scheduler_address)
        # Held open across repeats, like a long-lived service would: process workers and the
        # Dask client start once, not once per run.
        async with processes, dask:
            variants: dict[str, Callable[[int], Awaitable[int]]] = {
                "asyncflow LocalExecutor (threads)": lambda k: run_flow(flows[k], local),
                "asyncflow ProcessExecutor": lambda k: run_flow(flows[k], processes),
                "asyncflow DaskExecutor (2 processes)": lambda k: run_flow(flows[k], dask),
                PLAIN_DASK: lambda k: plain_dask(client, k, size),
            }

            async def run_serial(k: int) -> int:
                return serial(k, size)

            variants[SERIAL] = run_serial
            for name, variant in variants.items():  # warm-up: start workers, import code
                print(f"warming up {name}", file=sys.stderr)
                await variant(WARM_UP)
            times: dict[str, list[float]] = {SERIAL: []}
            times.update({name: [] for name in variants})
            failed: set[str] = set()
            names = [name for name in variants if name != SERIAL]
            for r in range(repeats):
                order = [*names[r % len(names) :], *names[: r % len(names)], SERIAL]
                for name in order:
                    if name in failed:
                        continue
                    print(f"repeat {r + 1}/{repeats}: {name}", file=sys.stderr)
                    try:
                        times[name].append(await timed(partial(variants[name], n), expected))
                    except Exception:
                        traceback.print_exc()
                        failed.add(name)
    return times, failed


def table(times: dict[str, list[float]], failed: set[str], n: int) -> str:
    """One row per variant: median, per task, ratio to plain Dask, every repeat."""
    medians = {name: statistics.median(ts) for name, ts in times.items() if name not in failed}
    reference = medians.get(PLAIN_DASK)
    header = f"{'variant':40} {'median s':>9} {'per task':>10} {'vs plain Dask':>14}  repeats (s)"
    lines = [header, "-" * len(header)]
    for name, ts in times.items():
        if name in failed:
            lines.append(f"{name:40} {'ERROR':>9}  (see stderr)")
            continue
        m = medians[name]
        per_task = f"{m / n * 1e6:,.0f} µs"
        ratio = f"{m / reference:13.2f}x" if reference else f"{'-':>14}"
        repeats = " ".join(f"{t:.2f}" for t in ts)
        lines.append(f"{name:40} {m:9.2f} {per_task:>10} {ratio}  {repeats}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table; return 1 when a variant failed, else 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.executors", description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="tasks per run (10,000)")
    parser.add_argument("--size", type=int, default=SIZE, help="range of each task's sum (2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (3)")
    args = parser.parse_args(argv)

    times, failed = asyncio.run(measure(args.n, args.size, args.repeats))
    print(
        f"{args.n:,} tasks of sum(j * j for j in range({args.size})), "
        f"median of {args.repeats}; Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"dask {version('dask')}, distributed {version('distributed')}"
    )
    print(table(times, failed, args.n))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
