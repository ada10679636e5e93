"""Retry scenario: ``retry_n`` independent async tasks, each failing once, retried after a delay.

Every task raises on its first attempt and succeeds on its second, with ``max_retries=1`` and a
real ``retry_delay`` (0.2 s by default) on the system clock. Since every task waits at the same
time, the ideal wall time is the delay plus the cost of running every task twice; the overshoot
is the wall time minus the delay. A sampler thread records the process's thread count during
each run: waiting retries must hold no thread, so the peak should stay at the count before.

Baseline: the plain-asyncio DAG executor with the same failures, re-queuing each failed task with
``loop.call_later(delay, ...)``.

Logging stays on at its default level (INFO); asyncflow logs a retry at DEBUG, so no line per
retry is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asyncflow import EventBus, Flow

from . import baseline
from .flows import FailOnce, check_count, check_success
from .measure import Measured, Record, ThreadSampler, fmt_ratio, fmt_time, timed
from .shapes import wide

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .session import Session

__all__ = ("run", "table")


def build(n: int, delay: float) -> Flow:
    """``n`` tasks that fail once each and retry once after ``delay`` seconds."""
    flow = Flow(f"retries-{n}")
    for i in range(n):
        flow.add_task(FailOnce(name=f"t{i}", max_retries=1, retry_delay=delay))
    flow.compile()
    return flow


def fail_once_body(n: int) -> baseline.Body:
    """A baseline body whose first call for each task raises."""
    failed = bytearray(n)

    def body(i: int) -> Awaitable[Any]:
        if not failed[i]:
            failed[i] = 1
            raise RuntimeError("first attempt fails")
        return baseline.async_noop()

    return body


async def run(session: Session) -> None:
    """asyncflow and the baseline, interleaved, with a thread sampler around every run."""
    cfg = session.config
    n, delay = cfg.retry_n, cfg.retry_delay
    record = Record(
        "retries",
        "fail once, retry after delay",
        n,
        baseline_label="asyncio DAG executor, loop.call_later re-queue",
    )
    try:
        flow = build(n, delay)
        graph = wide(n)
        bus = EventBus()
        check_flow, check_base = check_success(n), check_count(n)
        af, base = Measured(), Measured()
        threads: dict[str, list[tuple[int, int]]] = {"asyncflow": [], "baseline": []}

        async def run_asyncflow() -> None:
            with ThreadSampler() as sampler:
                seconds, state = await timed(lambda: flow.run_async(bus=bus))
            check_flow(state)
            af.times.append(seconds)
            threads["asyncflow"].append((sampler.before, sampler.peak))

        async def run_baseline() -> None:
            body = fail_once_body(n)
            with ThreadSampler() as sampler:
                seconds, done = await timed(
                    lambda: baseline.run_dag(graph, body, max_retries=1, retry_delay=delay)
                )
            check_base(done)
            base.times.append(seconds)
            threads["baseline"].append((sampler.before, sampler.peak))

        for r in range(cfg.big_repeats):  # each run is seconds long: as many as at 100k
            for side in (
                (run_baseline, run_asyncflow) if r % 2 == 0 else (run_asyncflow, run_baseline)
            ):
                await side()
        record.asyncflow, record.baseline = af, base
        record.extra.update(
            delay_s=delay,
            overshoot_s=af.median - delay,
            baseline_overshoot_s=base.median - delay,
            threads_before=max(b for b, _ in threads["asyncflow"]),
            threads_peak=max(p for _, p in threads["asyncflow"]),
            baseline_threads_before=max(b for b, _ in threads["baseline"]),
            baseline_threads_peak=max(p for _, p in threads["baseline"]),
            thread_samples=threads,
        )
    except Exception as exc:
        session.failed(record, exc)
        return
    session.add(record)


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The retries section of the printed table."""
    rows = []
    for r in records:
        if r.error is not None:
            rows.append([f"{r.n:,}", "ERROR", r.error, "", "", "", "", ""])
            continue
        assert r.asyncflow is not None
        assert r.baseline is not None
        x = r.extra
        rows.append(
            [
                f"{r.n:,}",
                f"{x['delay_s']:g} s",
                fmt_time(r.asyncflow.median),
                fmt_time(x["overshoot_s"]),
                f"{x['threads_before']} -> {x['threads_peak']}",
                fmt_time(r.baseline.median),
                fmt_time(x["baseline_overshoot_s"]),
                fmt_ratio(r.ratio),
            ]
        )
    headers = [
        "tasks",
        "delay",
        "asyncflow",
        "overshoot",
        "threads",
        "baseline",
        "overshoot",
        "ratio",
    ]
    return "Retries (each task fails once; wall time of the run)", headers, rows
