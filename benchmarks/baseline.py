"""The plain-asyncio baseline: a hand-written DAG executor with dependency counters.

This is the least an asyncio program can do to run a dependency graph: one counter per task,
decremented as its upstream tasks finish, and an :class:`asyncio.Task` created only when a task
becomes ready. It carries no states, no handlers, no bus and no logging, so the ratio
``asyncflow / baseline`` is the price of everything asyncflow adds. Errors propagate (a task
that raises fails the whole run) and retries, when asked for, wait on a ``loop.call_later`` timer
(no task, no thread held while waiting), so the baseline stays an honest minimal executor rather
than a loop over coroutines.

The bodies below are what a task *does*; asyncflow's tasks (see :mod:`benchmarks.flows`) do the
same: an ``async def`` that returns ``None``, a sync function sent to a worker thread with
``anyio.to_thread.run_sync`` (same default of 40 threads as asyncflow's ``LocalExecutor``), and
optionally one sync and one async state handler called on each of the two transitions
``Pending -> Running -> Success``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread

if TYPE_CHECKING:
    from .shapes import Graph

__all__ = (
    "Body",
    "async_body",
    "async_noop",
    "run_dag",
    "sync_body",
    "sync_noop",
    "with_handlers",
)

#: What one task does: ``body(i)`` returns an awaitable.
Body = Callable[[int], Awaitable[Any]]


async def async_noop() -> None:
    """The async no-op task."""


def sync_noop() -> None:
    """The sync no-op task (runs in a worker thread)."""


def async_body(i: int) -> Awaitable[None]:
    """An async no-op, awaited on the loop."""
    return async_noop()


def sync_body(i: int) -> Awaitable[None]:
    """A sync no-op in a worker thread."""
    return anyio.to_thread.run_sync(sync_noop)


# Stand-ins for the states a task moves through; the handlers only receive them.
PENDING, RUNNING, SUCCESS = "Pending", "Running", "Success"


def with_handlers(
    body: Body,
    sync_handler: Callable[[Any, Any, Any], Any],
    async_handler: Callable[[Any, Any, Any], Awaitable[Any]],
) -> Body:
    """``body`` with both handlers called on ``Pending -> Running`` and ``Running -> Success``."""

    async def handled(i: int) -> None:
        sync_handler(i, PENDING, RUNNING)
        await async_handler(i, PENDING, RUNNING)
        await body(i)
        sync_handler(i, RUNNING, SUCCESS)
        await async_handler(i, RUNNING, SUCCESS)

    return handled


async def run_dag(
    graph: Graph, body: Body, *, max_retries: int = 0, retry_delay: float = 0.0
) -> int:
    """Run ``body(i)`` for every task of ``graph`` once its upstream tasks have finished.

    Args:
        graph: the dependency structure.
        body: what each task does.
        max_retries: how many times a task that raised is run again.
        retry_delay: seconds to wait before each retry (a loop timer).

    Returns:
        How many tasks finished (always ``graph.n``).

    Raises:
        Exception: the first error of a task that ran out of retries.
    """
    n = graph.n
    if n == 0:
        return 0
    loop = asyncio.get_running_loop()
    remaining = [len(u) for u in graph.upstream]
    downstream = graph.downstream
    attempts = [0] * n if max_retries else None
    finished: asyncio.Future[None] = loop.create_future()
    tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks
    done = 0

    async def run(i: int) -> None:
        nonlocal done
        try:
            await body(i)
        except Exception:
            if attempts is not None and attempts[i] < max_retries:
                attempts[i] += 1
                loop.call_later(retry_delay, spawn, i)
                return
            raise
        done += 1
        for d in downstream[i]:
            remaining[d] -= 1
            if remaining[d] == 0:
                spawn(d)
        if done == n:
            finished.set_result(None)

    def reap(t: asyncio.Task[None]) -> None:
        tasks.discard(t)
        exc = None if t.cancelled() else t.exception()
        if exc is not None and not finished.done():
            finished.set_exception(exc)

    def spawn(i: int) -> None:
        t = loop.create_task(run(i))
        tasks.add(t)
        t.add_done_callback(reap)

    for i in graph.roots:
        spawn(i)
    try:
        await finished
    finally:
        for t in tasks:
            t.cancel()
    return done
