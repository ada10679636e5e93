"""Mapping scenario: one async no-op task mapped over ``map_n`` items.

asyncflow: ``AsyncNoop().map(items)`` inside ``with Flow(...)`` (a constant task holding the
list, the mapped parent, one child per item; every child goes through the whole state machine).
Baseline: ``asyncio.gather`` over the same coroutines (``task.run(item)`` for every item).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from asyncflow import EventBus, Flow
from asyncflow.engine.state import Mapped

from .flows import AsyncNoop
from .measure import Record, compare, fmt_ratio, fmt_time

if TYPE_CHECKING:
    from .session import Session

__all__ = ("run", "table")


async def run(session: Session) -> None:
    """asyncflow's map beside ``asyncio.gather``."""
    cfg = session.config
    n = cfg.map_n
    record = Record("mapping", "map over items", n, units=n, baseline_label="asyncio.gather")
    try:
        items = list(range(n))
        noop = AsyncNoop(name="item")
        with Flow(f"map-{n}") as flow:
            mapped = noop.map(items)
        flow.compile()
        bus = EventBus()

        def check_flow(state: Any) -> None:
            child = state.result[mapped] if state.is_successful() else None
            if (
                not isinstance(child, Mapped)
                or len(child.map_states) != n
                or not all(s.is_successful() for s in child.map_states)
            ):
                raise AssertionError(f"the mapped task ended {child!r} (flow: {state!r})")

        def check_gather(results: Any) -> None:
            if len(results) != n:
                raise AssertionError(f"gather returned {len(results)} results, not {n}")

        record.asyncflow, record.baseline = await compare(
            lambda: flow.run_async(bus=bus),
            lambda: asyncio.gather(*(noop.run(x) for x in items)),
            cfg.repeats,
            check_asyncflow=check_flow,
            check_baseline=check_gather,
        )
    except Exception as exc:
        session.failed(record, exc)
        return
    session.add(record)


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The mapping section of the printed table."""
    rows = []
    for r in records:
        if r.error is not None:
            rows.append([f"{r.n:,}", "ERROR", r.error, "", "", ""])
            continue
        assert r.asyncflow is not None
        assert r.baseline is not None
        assert r.units
        rows.append(
            [
                f"{r.n:,}",
                fmt_time(r.asyncflow.median),
                f"{r.asyncflow.median / r.units * 1e6:.1f}",
                fmt_time(r.baseline.median),
                f"{r.baseline.median / r.units * 1e6:.1f}",
                fmt_ratio(r.ratio),
            ]
        )
    headers = ["items", "asyncflow", "µs/item", "asyncio.gather", "µs/item", "ratio"]
    return "Mapping (one async no-op task mapped over a list)", headers, rows
