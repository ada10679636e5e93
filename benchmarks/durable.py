"""Durable scenario: the wide and chain shapes with and without a SQLite store, and recovery.

- ``sqlite wide`` / ``sqlite chain``: the same flow of async no-op tasks run in memory (the
  baseline) and with ``store=SQLiteStore(...)`` (synchronous ``normal``), interleaved. In the
  chain every link waits for its upstream's final state to be durable: one commit per link
  (a ``write`` to the store's run log, committed to the database by its writer thread).
- ``sqlite chain, thread``: the chain with ``SQLiteStore(..., log=False)``, every link waiting
  for the writer thread's database commit (two thread hand-offs per link); no target: it shows
  what the run log saves.
- ``recovery``: a child process runs a chain with the store under a ``Runtime`` and is killed
  with SIGKILL while a task runs; this process then enters a ``Runtime`` on the same file and
  measures the time from entering it to the first resumed task starting. Baseline: a
  ``Runtime`` without a store starting a fresh run of the same flow, to its first task.

The anchor is DBOS Transact, a durable-execution library that commits each step. With ``dbos``
installed (``pip install 'asyncflow[bench]'``) it is measured first, in child processes (see
``dbos_anchor``): the cost per step of a workflow of steps in sequence, beside the chain's cost
per task, and its recovery time, beside asyncflow's; the ``dbos anchor`` record carries its
figures. Without it, the figures quoted for this machine class (3.0 ms per step, 1.1 s to
recover) stand in, labelled ``quoted``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import TYPE_CHECKING

import anyio

from asyncflow import EventBus, Flow, task
from asyncflow.integrations import Runtime
from asyncflow.store import SQLiteStore

from . import dbos_anchor
from .flows import AsyncNoop, build_flow, check_success
from .measure import Measured, Record, compare, fmt_ratio, fmt_time, timed
from .shapes import make

if TYPE_CHECKING:
    from .session import Session

__all__ = ("ANCHOR", "SHAPES", "TARGETS", "run", "table")

#: The name of the record that carries DBOS's figures (``extra``), or why they failed.
ANCHOR = "dbos anchor"
#: name -> (what, limit): wide as a ratio to in-memory, chain in µs per task, recovery in s;
#: no limit: a figure shown for what it explains.
TARGETS: dict[str, tuple[str, float | None]] = {
    "sqlite wide": ("ratio", 2.0),
    "sqlite chain": ("us", 40.0),
    "sqlite chain, thread": ("us", None),
    "recovery": ("s", 0.1),
}
#: The figures measured: name -> (shape, SQLiteStore keywords).
SHAPES = {
    "sqlite wide": ("wide", {}),
    "sqlite chain": ("chain", {}),
    # Every commit through the writer thread (two thread hand-offs per link): what committing
    # small batches on the loop's thread saves.
    "sqlite chain, thread": ("chain", {"log": False}),
}
RECOVERY_STEPS = 5

_CHILD = """
import sys, anyio
from asyncflow.integrations import Runtime
from asyncflow.store import SQLiteStore
from benchmarks.durable import recovery_flow

async def main():
    flow = recovery_flow(hang=True)
    async with Runtime([flow], store=SQLiteStore(sys.argv[1])) as runtime:
        await runtime.start(flow.name, run_id="crashed")
        await anyio.sleep(120)

anyio.run(main)
"""


def recovery_flow(hang: bool = False, started: list[float] | None = None) -> Flow:
    """A chain of :data:`RECOVERY_STEPS` tasks; with ``hang``, the last one never ends (and
    says so on stdout); with ``started``, each task appends when it started."""

    @task
    async def step(i: int) -> int:
        if started is not None:
            started.append(time.perf_counter())
        if hang and i == RECOVERY_STEPS:
            print("hanging", flush=True)
            await anyio.sleep(120)
        return i

    with Flow("recovery") as flow:
        previous = None
        for i in range(1, RECOVERY_STEPS + 1):
            previous = step(i, upstream_tasks=[previous] if previous is not None else None)
    return flow


def crash(path: str) -> None:
    """Run :func:`recovery_flow` in a child process and kill it with SIGKILL as it hangs."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD), path],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    ) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait()
    if line != "hanging\n":
        raise RuntimeError(f"the child process did not reach its last step: {line!r}")


async def time_to_first_task(store: SQLiteStore | None) -> float:
    """Enter a Runtime (with ``store``: it adopts the crashed run; without: it starts a run)
    and return the seconds until a task starts."""
    started: list[float] = []
    flow = recovery_flow(started=started)
    begin = time.perf_counter()
    async with Runtime([flow], store=store) as runtime:
        if store is None:
            await runtime.start(flow.name)
        with anyio.fail_after(30):
            while not started:  # noqa: ASYNC110  # the task appends; polling adds < 0.5 ms
                await anyio.sleep(0.0005)
        first = started[0] - begin
        for record in runtime.runs():
            await record.wait()
    return first


def measure_anchor(session: Session, tmp: str) -> None:
    """DBOS's figures, measured when ``dbos`` is installed, as the ``dbos anchor`` record."""
    cfg = session.config
    cap = dbos_anchor.QUICK_MAX_STEPS if cfg.quick else dbos_anchor.MAX_STEPS
    steps = min(max(1, cfg.durable_n // 5), cap)
    version = dbos_anchor.installed()
    if version is None:
        anchor = dbos_anchor.quoted("dbos is not installed: pip install 'asyncflow[bench]'")
        session.progress(f"durable: {anchor.describe()}")
        session.records.append(Record("durable", ANCHOR, None, extra=anchor.to_json()))
        return
    record = Record("durable", ANCHOR, steps)
    try:
        anchor = dbos_anchor.measure(tmp, steps, cfg.repeats, version)
    except Exception as exc:
        record.extra = dbos_anchor.quoted(f"measuring dbos {version} failed").to_json()
        session.failed(record, exc)
        return
    record.extra = anchor.to_json()
    session.progress(
        f"durable: DBOS {fmt_time(anchor.step_s)} per step (N={steps}), "
        f"{fmt_time(anchor.recovery_s)} to recover (medians)"
    )
    session.records.append(record)


async def run(session: Session) -> None:
    """The durable figures (see the module docstring)."""
    cfg = session.config
    repeats = cfg.repeats
    with tempfile.TemporaryDirectory() as tmp:
        measure_anchor(session, tmp)
        sizes = {"wide": cfg.durable_n, "chain": max(1, cfg.durable_n // 5)}
        for i, (name, (shape, options)) in enumerate(SHAPES.items()):
            n = sizes[shape]
            record = Record(
                "durable",
                name,
                n,
                units=n,
                baseline_label="the same flow in memory (no store)",
            )
            try:
                flow = build_flow(make(shape, n), AsyncNoop)
                flow.compile()
                async with SQLiteStore(os.path.join(tmp, f"{i}.db"), **options) as store:
                    af, base = await compare(
                        lambda: flow.run_async(bus=EventBus(), store=store),  # noqa: B023
                        lambda: flow.run_async(bus=EventBus()),  # noqa: B023
                        repeats,
                        check_asyncflow=check_success(n),
                        check_baseline=check_success(n),
                    )
                record.asyncflow, record.baseline = af, base
            except Exception as exc:
                session.failed(record, exc)
                continue
            session.add(record)

        record = Record(
            "durable",
            "recovery",
            RECOVERY_STEPS,
            baseline_label="Runtime without a store, a fresh run to its first task",
        )
        try:
            af, base = Measured(), Measured()
            for r in range(repeats):
                path = os.path.join(tmp, f"recovery-{r}.db")
                crash(path)
                seconds, _ = await timed(lambda: time_to_first_task(SQLiteStore(path)))  # noqa: B023
                af.times.append(seconds)
                seconds, _ = await timed(lambda: time_to_first_task(None))
                base.times.append(seconds)
            record.asyncflow, record.baseline = af, base
        except Exception as exc:
            session.failed(record, exc)
        else:
            session.add(record)


def verdict(r: Record) -> tuple[str, str]:
    """The measured figure against its target, and ``ok`` or ``MISS``."""
    kind, limit = TARGETS[r.name]
    assert r.asyncflow is not None
    if limit is None:
        return "", ""
    if kind == "ratio":
        value = r.ratio or 0.0
        return f"{value:.2f}x", "ok" if value <= limit else "MISS"
    if kind == "us":
        value = r.asyncflow.median / (r.n or 1) * 1e6
        return f"{value:.1f} µs", "ok" if value <= limit else "MISS"
    value = r.asyncflow.median
    return fmt_time(value), "ok" if value <= limit else "MISS"


def versus(dbos: float, ours: float, better: str, worse: str) -> str:
    """``12x cheaper`` when asyncflow's figure is the smaller, ``1.5x dearer`` otherwise."""
    if dbos >= ours:
        return f"{dbos / ours:,.0f}x {better}"
    return f"{ours / dbos:,.1f}x {worse}"


def anchor_of(records: list[Record]) -> dbos_anchor.Anchor:
    """DBOS's figures from the ``dbos anchor`` record (quoted when there is none)."""
    for r in records:
        if r.name == ANCHOR and r.extra:
            return dbos_anchor.Anchor(**r.extra)
    return dbos_anchor.quoted("not measured in this run")


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The durable section of the printed table."""
    anchor = anchor_of(records)
    rows = []
    for r in records:
        if r.error is not None:
            n = "" if r.n is None else f"{r.n:,}"
            rows.append([r.name, n, "ERROR", r.error, "", "", "", "", ""])
            continue
        if r.name == ANCHOR:
            continue
        assert r.asyncflow is not None
        assert r.baseline is not None
        figure, ok = verdict(r)
        kind, limit = TARGETS[r.name]
        if r.name == "recovery":
            per, dbos = fmt_time(r.asyncflow.median), fmt_time(anchor.recovery_s)
            assert limit is not None
            target = f"<= {fmt_time(limit)}"
            against = versus(anchor.recovery_s, r.asyncflow.median, "faster", "slower")
        else:
            us = r.asyncflow.median / (r.n or 1) * 1e6
            per, dbos = f"{us:.1f} µs", fmt_time(anchor.step_s)
            if anchor.steps is not None:
                dbos += f" (N={anchor.steps:,})"
            if limit is None:
                target = "(no target)"
            else:
                target = f"<= {limit:g}x" if kind == "ratio" else f"<= {limit:g} µs"
            against = versus(anchor.step_s * 1e6, us, "cheaper", "dearer")
        rows.append(
            [
                r.name,
                f"{r.n:,}",
                fmt_time(r.asyncflow.median),
                per,
                fmt_time(r.baseline.median),
                fmt_ratio(r.ratio),
                f"{target}: {figure} {ok}" if ok else target,
                dbos,
                against,
            ]
        )
    headers = [
        "durable",
        "tasks",
        "with store",
        "per task",
        "in memory",
        "ratio",
        "target",
        anchor.label,
        "vs DBOS",
    ]
    return (
        "Durable runs (SQLite store, synchronous=normal; baseline: the same run in memory)\n"
        + anchor.describe(),
        headers,
        rows,
    )
