"""Memory scenario: peak memory per task during a run, and what the built graph holds.

With :mod:`tracemalloc` on (it slows the run down, so nothing is timed here), one run of the
``wide`` and the ``chain`` flow of ``memory_n`` async no-op tasks (100,000 in the full run) is
measured: the peak of memory allocated during the run above what was live before it, divided by
the number of tasks. ``wide`` makes every task ready at once; ``chain`` has one running at a time,
so its peak is mostly what asyncflow keeps per finished task (its states). Baseline: the
plain-asyncio DAG executor on the same graph.

The flow itself (tasks, edges and the compiled spec) is measured separately, as memory still
held after building and compiling it, at ``graph_n`` tasks (10,000; per-task cost is flat and
building under tracemalloc is slow). Baseline: the executor's graph (``shapes.Graph``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncflow import EventBus

from . import baseline
from .flows import TASK_KINDS, build_flow, check_count, check_success
from .measure import Record, fmt_bytes, fmt_ratio, traced_build, traced_peak
from .shapes import make

if TYPE_CHECKING:
    from asyncflow import Flow

    from .session import Session

__all__ = ("SHAPES", "run", "table")

SHAPES = ("wide", "chain")


async def run(session: Session) -> None:
    """Run peaks for ``wide`` and ``chain``, then the graph's own footprint."""
    n = session.config.memory_n
    for shape in SHAPES:
        record = Record("memory", f"run peak, async {shape}", n, baseline_label="asyncio DAG")
        try:
            graph = make(shape, n, session.config.width)
            flow, _ = session.flow(graph, "async")
            bus = EventBus()
            af_bytes, state = await traced_peak(lambda: flow.run_async(bus=bus))  # noqa: B023
            check_success(n)(state)
            base_bytes, done = await traced_peak(
                lambda: baseline.run_dag(graph, baseline.async_body)  # noqa: B023
            )
            check_count(n)(done)
            record.extra.update(
                asyncflow_bytes=af_bytes,
                baseline_bytes=base_bytes,
                asyncflow_bytes_per_task=af_bytes / n,
                baseline_bytes_per_task=base_bytes / n,
                ratio=af_bytes / base_bytes,
            )
        except Exception as exc:
            session.failed(record, exc)
            continue
        session.add(record)

    gn = session.config.graph_n
    record = Record("memory", "graph (built + compiled)", gn, baseline_label="shapes.Graph")
    try:

        def build() -> Flow:
            flow = build_flow(make("wide", gn), TASK_KINDS["async"])
            flow.compile()
            return flow

        af_bytes, _ = traced_build(build)
        base_bytes, _ = traced_build(lambda: make("wide", gn))
        record.extra.update(
            asyncflow_bytes=af_bytes,
            baseline_bytes=base_bytes,
            asyncflow_bytes_per_task=af_bytes / gn,
            baseline_bytes_per_task=base_bytes / gn,
            ratio=af_bytes / base_bytes,
        )
    except Exception as exc:
        session.failed(record, exc)
        return
    session.add(record)


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The memory section of the printed table."""
    rows = []
    for r in records:
        if r.error is not None:
            rows.append([r.name, f"{r.n:,}", "ERROR", r.error, "", "", ""])
            continue
        x = r.extra
        rows.append(
            [
                r.name,
                f"{r.n:,}",
                fmt_bytes(x["asyncflow_bytes"]),
                f"{x['asyncflow_bytes_per_task']:,.0f}",
                fmt_bytes(x["baseline_bytes"]),
                f"{x['baseline_bytes_per_task']:,.0f}",
                fmt_ratio(x["ratio"]),
            ]
        )
    headers = ["memory", "tasks", "asyncflow", "B/task", "baseline", "B/task", "ratio"]
    return "Memory (tracemalloc; one measurement, not timed)", headers, rows
