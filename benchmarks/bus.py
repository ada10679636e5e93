"""Bus scenario: how many events a run publishes and delivers per second, by subscriber count.

One flow of ``bus_n`` independent async no-op tasks; every run publishes ``2 * bus_n + 2``
``StateChange`` events (``Pending -> Running -> Success`` per task, ``Scheduled -> Running ->
Success`` for the flow). Each configuration has an :class:`asyncflow.EventBus` of its own, passed
as ``bus=``, with 0, 1 sync, 1 async or 10 async subscribers that count what they get (each count
is checked after every run). The baseline is the same flow on a bus with no subscribers; the
``0 subscribers`` row is that very configuration measured again, so its ratio shows the noise.

``events/s`` is events published per second of run time; ``deliveries/s`` counts one per event per
subscriber; ``µs/event`` is the extra time per published event over the baseline.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from asyncflow import EventBus

from .flows import check_success
from .measure import Measured, Record, fmt_ratio, fmt_time, timed
from .shapes import wide

if TYPE_CHECKING:
    from collections.abc import Callable

    from .session import Session

__all__ = ("CONFIGS", "run", "table")

#: (name, sync subscribers, async subscribers)
CONFIGS = (
    ("0 subscribers", 0, 0),
    ("1 sync subscriber", 1, 0),
    ("1 async subscriber", 0, 1),
    ("10 async subscribers", 0, 10),
)


def _sync_counter(counts: list[int], i: int) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        counts[i] += 1

    return on_event


def _async_counter(counts: list[int], i: int) -> Callable[[Any], Any]:
    async def on_event(event: Any) -> None:
        counts[i] += 1

    return on_event


async def run(session: Session) -> None:
    """Every subscriber configuration, interleaved with the baseline."""
    cfg = session.config
    n = cfg.bus_n
    events = 2 * n + 2
    records = [
        Record("bus", name, events, units=events, baseline_label="same flow, no subscribers")
        for name, _, _ in CONFIGS
    ]
    try:
        flow, setup = session.flow(wide(n), "async")
        check = check_success(n)
        # One side per configuration, the baseline (no subscribers) first: (bus, counts, times).
        base = Measured()
        sides: list[tuple[EventBus, list[int], Measured]] = [(EventBus(), [], base)]
        for (_, n_sync, n_async), record in zip(CONFIGS, records, strict=True):
            bus = EventBus()
            got = [0] * (n_sync + n_async)
            for i in range(n_sync):
                bus.subscribe(_sync_counter(got, i))
            for i in range(n_sync, n_sync + n_async):
                bus.subscribe(_async_counter(got, i))
            record.asyncflow = Measured()
            record.baseline = base
            record.extra.update(
                tasks=n,
                sync_subscribers=n_sync,
                async_subscribers=n_async,
                events_per_run=events,
                deliveries_per_run=events * (n_sync + n_async),
                setup=setup,
            )
            sides.append((bus, got, record.asyncflow))
        for r in range(cfg.repeats):
            shift = r % len(sides)  # rotate the order so that no side always runs first
            for bus, got, out in sides[shift:] + sides[:shift]:
                got[:] = [0] * len(got)
                seconds, state = await timed(functools.partial(flow.run_async, bus=bus))
                check(state)
                if any(c != events for c in got):
                    raise AssertionError(f"subscribers got {got} events, expected {events} each")
                out.times.append(seconds)
        for record, (bus, _, measured) in zip(records, sides[1:], strict=True):
            t = measured.median
            subs = record.extra["sync_subscribers"] + record.extra["async_subscribers"]
            record.extra.update(
                events_per_s=events / t,
                deliveries_per_s=events * subs / t,
                extra_us_per_event=(t - base.median) / events * 1e6,
            )
            for sub in bus.subscriptions:
                sub.close()
    except Exception as exc:
        for record in records:
            session.failed(record, exc)
        return
    for record in records:
        session.add(record)


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The bus section of the printed table."""
    rows = []
    for r in records:
        if r.error is not None:
            rows.append([r.name, "ERROR", r.error, "", "", "", ""])
            continue
        assert r.asyncflow is not None
        x = r.extra
        rows.append(
            [
                r.name,
                f"{r.n:,}",
                fmt_time(r.asyncflow.median),
                f"{x['events_per_s']:,.0f}",
                f"{x['deliveries_per_s']:,.0f}" if x["deliveries_per_run"] else "-",
                f"{x['extra_us_per_event']:+.2f}",
                fmt_ratio(r.ratio),
            ]
        )
    headers = ["bus", "events/run", "run", "events/s", "deliveries/s", "µs/event", "ratio"]
    n = records[0].extra.get("tasks", "?") if records else "?"
    title = f"Event bus ({n:,} async no-op tasks; baseline: same flow, no subscribers)"
    return title, headers, rows
