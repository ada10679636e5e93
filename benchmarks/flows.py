"""The asyncflow side: task classes, and flows built from a :class:`~benchmarks.shapes.Graph`.

Flows are built with the imperative API (``add_task`` / ``add_edge``), the fastest way to build
large graphs. Each task gets a unique name, so that slugs read like the graph's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asyncflow import Flow, Task, context

if TYPE_CHECKING:
    from collections.abc import Callable

    from .shapes import Graph

__all__ = (
    "AsyncNoop",
    "FailOnce",
    "SyncNoop",
    "TASK_KINDS",
    "async_handler",
    "build_flow",
    "check_count",
    "check_success",
    "sync_handler",
)


class AsyncNoop(Task):
    """An ``async def`` task that does nothing."""

    async def run(self, x: Any = None) -> Any:
        return None


class SyncNoop(Task):
    """A sync task that does nothing (runs in a worker thread)."""

    def run(self, x: Any = None) -> Any:
        return None


class FailOnce(Task):
    """An async task whose first attempt raises and whose second succeeds."""

    async def run(self, x: Any = None) -> Any:
        if context.get("task_run_count") == 1:
            raise RuntimeError("first attempt fails")
        return None


def sync_handler(obj: Any, old: Any, new: Any) -> None:
    """A sync state handler that leaves the state alone."""


async def async_handler(obj: Any, old: Any, new: Any) -> None:
    """An async state handler that leaves the state alone."""


def _async(i: int) -> Task:
    return AsyncNoop(name=f"t{i}")


def _sync(i: int) -> Task:
    return SyncNoop(name=f"t{i}")


def _handlers(i: int) -> Task:
    return AsyncNoop(name=f"t{i}", state_handlers=[sync_handler, async_handler])


#: How to make task ``i`` for each task kind of the DAG scenarios.
TASK_KINDS: dict[str, Callable[[int], Task]] = {
    "async": _async,
    "sync": _sync,
    "handlers": _handlers,
}


def build_flow(graph: Graph, make_task: Callable[[int], Task], name: str | None = None) -> Flow:
    """A flow with one task per node of ``graph`` and one edge per dependency."""
    flow = Flow(name or f"{graph.shape}-{graph.n}")
    tasks = [make_task(i) for i in range(graph.n)]
    for t in tasks:
        flow.add_task(t)
    for i, ups in enumerate(graph.upstream):
        for j in ups:
            flow.add_edge(tasks[j], tasks[i])
    return flow


def check_success(n_tasks: int) -> Callable[[Any], None]:
    """A check that a flow state is successful and covers ``n_tasks`` tasks."""

    def check(state: Any) -> None:
        if not state.is_successful():
            raise AssertionError(f"the flow ended {state!r}")
        if len(state.result) != n_tasks:
            raise AssertionError(f"the flow ran {len(state.result)} tasks, not {n_tasks}")

    return check


def check_count(n: int) -> Callable[[Any], None]:
    """A check that the baseline finished ``n`` tasks."""

    def check(done: Any) -> None:
        if done != n:
            raise AssertionError(f"the baseline finished {done} tasks, not {n}")

    return check
