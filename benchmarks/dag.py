"""DAG scenarios: wide, chain and lattice graphs of no-op tasks, three kinds of task.

- ``async``: ``async def run`` that returns at once; baseline: the plain-asyncio DAG executor
  awaiting an ``async def`` no-op.
- ``sync``: ``def run`` in a worker thread; baseline: the same executor calling
  ``anyio.to_thread.run_sync`` on a sync no-op (same 40-thread limit).
- ``handlers``: the async task with one sync and one async state handler; baseline: the executor
  calling the same two handlers on ``Pending -> Running`` and ``Running -> Success``.

No bus subscribers (a fresh :class:`asyncflow.EventBus` is passed as ``bus=``). The performance
targets apply to ``wide`` and ``chain`` at 10,000 tasks: at most 4x the baseline for async tasks and
1.5x for sync tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncflow import EventBus

from . import baseline
from .flows import async_handler, check_count, check_success, sync_handler
from .measure import Record, compare, fmt_ratio, fmt_time
from .shapes import SHAPES, make

if TYPE_CHECKING:
    from .session import Session

__all__ = ("KINDS", "TARGETS", "run", "table")

KINDS = ("async", "sync", "handlers")

#: (kind, n) -> the largest ratio the performance targets allow on ``wide`` and ``chain``.
TARGETS = {("async", 10_000): 4.0, ("sync", 10_000): 1.5}

_BODIES: dict[str, baseline.Body] = {
    "async": baseline.async_body,
    "sync": baseline.sync_body,
    "handlers": baseline.with_handlers(baseline.async_body, sync_handler, async_handler),
}
_BASELINE_LABELS = {
    "async": "asyncio DAG executor",
    "sync": "asyncio DAG executor + anyio.to_thread.run_sync",
    "handlers": "asyncio DAG executor + the same 2 handlers x 2 transitions",
}


def sizes_for(session: Session, kind: str) -> tuple[int, ...]:
    """The DAG sizes run for ``kind`` (sync tasks stop at ``sync_max_n``)."""
    cfg = session.config
    if kind == "sync":
        return tuple(n for n in cfg.sizes if n <= cfg.sync_max_n)
    return cfg.sizes


async def measure(session: Session, kind: str, shape: str, n: int) -> Record:
    """asyncflow beside the baseline for one kind, shape and size."""
    cfg = session.config
    record = Record(
        "dag",
        f"{kind} {shape}",
        n,
        units=n,
        baseline_label=_BASELINE_LABELS[kind],
        target=TARGETS.get((kind, n)) if shape in ("wide", "chain") else None,
    )
    try:
        graph = make(shape, n, cfg.width)
        record.extra["edges"] = graph.n_edges
        if shape == "lattice":
            record.extra["width"] = cfg.width
        flow, setup = session.flow(graph, kind)
        record.extra["setup"] = setup
        bus = EventBus()
        body = _BODIES[kind]
        record.asyncflow, record.baseline = await compare(
            lambda: flow.run_async(bus=bus),
            lambda: baseline.run_dag(graph, body),
            cfg.repeats_for(n),
            check_asyncflow=check_success(n),
            check_baseline=check_count(n),
        )
    except Exception as exc:
        return session.failed(record, exc)
    return session.add(record)


async def run(session: Session) -> None:
    """Every kind, size and shape."""
    for kind in KINDS:
        for n in sizes_for(session, kind):
            for shape in SHAPES:
                await measure(session, kind, shape, n)


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The DAG section of the printed table."""
    rows = []
    for r in records:
        if r.error is not None:
            rows.append([r.name, f"{r.n:,}", "ERROR", r.error, "", "", "", ""])
            continue
        assert r.asyncflow is not None
        assert r.baseline is not None
        assert r.units
        verdict = ""
        if r.target is not None:
            verdict = f"<={r.target:g}x " + ("ok" if r.meets_target else "MISS")
        rows.append(
            [
                r.name,
                f"{r.n:,}",
                fmt_time(r.asyncflow.median),
                f"{r.asyncflow.median / r.units * 1e6:.1f}",
                fmt_time(r.baseline.median),
                f"{r.baseline.median / r.units * 1e6:.1f}",
                fmt_ratio(r.ratio),
                verdict,
            ]
        )
    headers = ["tasks", "N", "asyncflow", "µs/task", "baseline", "µs/task", "ratio", "target"]
    return "DAG of no-op tasks (no subscribers)", headers, rows
