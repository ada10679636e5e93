"""What the scenarios share: the configuration, the records so far, and built flows.

Building and compiling a large flow costs more than running it (see the ``build`` scenario), so
flows another scenario will reuse are kept; the others are dropped as soon as measured.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from .flows import TASK_KINDS, build_flow
from .shapes import LATTICE_WIDTH

if TYPE_CHECKING:
    from asyncflow import Flow

    from .measure import Record
    from .shapes import Graph

__all__ = ("FULL_SIZES", "QUICK_SIZES", "SCENARIOS", "Config", "Session")

#: In the order they run. Retries go first, before sync tasks leave anyio's idle worker threads
#: behind, so that their thread counts read plainly (the table prints them in its own order).
SCENARIOS = ("retries", "dag", "bus", "mapping", "memory", "build", "durable")
FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)


@dataclass
class Config:
    """Sizes and repeats of one benchmark run (the defaults are the full run)."""

    quick: bool = False
    scenarios: tuple[str, ...] = SCENARIOS
    sizes: tuple[int, ...] = FULL_SIZES  # DAG sizes (async and handler tasks)
    sync_max_n: int = 10_000  # sync DAG sizes above this are skipped (threads: ~100 µs a call)
    repeats: int = 5
    big_repeats: int = 3  # repeats at 100,000 tasks and more
    width: int = LATTICE_WIDTH
    bus_n: int = 10_000
    retry_n: int = 10_000
    retry_delay: float = 0.2
    map_n: int = 10_000
    memory_n: int = 100_000
    graph_n: int = 10_000  # tasks of the flow whose built size is measured (memory scenario)
    build_n: int = 10_000
    build_repeats: int = 3
    durable_n: int = 10_000  # wide tasks in the durable scenario (its chain has a fifth of them)

    @classmethod
    def quick_config(cls) -> Config:
        """The ``--quick`` defaults: no 100,000 sizes, smaller sync/retry/memory runs, 3 repeats."""
        return cls(
            quick=True,
            sizes=QUICK_SIZES,
            sync_max_n=1_000,
            repeats=3,
            retry_n=2_000,
            memory_n=10_000,
            graph_n=1_000,
            build_n=1_000,
        )

    def repeats_for(self, n: int) -> int:
        """How many times a scenario of size ``n`` is repeated."""
        return self.big_repeats if n >= 100_000 else self.repeats


@dataclass
class Session:
    """One benchmark run in progress."""

    config: Config
    log: TextIO = field(default_factory=lambda: sys.stderr)
    records: list[Record] = field(default_factory=list)
    keep: set[tuple[str, int, str]] = field(default_factory=set)
    _flows: dict[tuple[str, int, str], Flow] = field(default_factory=dict)
    _started: float = field(default_factory=time.perf_counter)

    def progress(self, message: str) -> None:
        """One line of progress on the log stream (stderr, beside asyncflow's own logs)."""
        elapsed = time.perf_counter() - self._started
        print(f"[bench {elapsed:6.1f}s] {message}", file=self.log, flush=True)

    def flow(self, graph: Graph, kind: str) -> tuple[Flow, dict[str, Any]]:
        """The compiled flow of ``graph`` with ``kind`` tasks, and what building it cost.

        The setup figures are single measurements (see the ``build`` scenario for medians).
        """
        key = (graph.shape, graph.n, kind)
        flow = self._flows.get(key)
        if flow is not None:
            return flow, {"reused": True}
        start = time.perf_counter()
        flow = build_flow(graph, TASK_KINDS[kind])
        built = time.perf_counter()
        flow.compile()
        compiled = time.perf_counter()
        if key in self.keep:
            self._flows[key] = flow
        setup = {
            "build_s": built - start,
            "compile_s": compiled - built,
            "single_measurement": True,
        }
        return flow, setup

    def drop_flows(self) -> None:
        """Forget every kept flow."""
        self._flows.clear()
        gc.collect()

    def add(self, record: Record) -> Record:
        """Keep ``record`` and report it on the log stream."""
        self.records.append(record)
        if record.error is not None:
            self.progress(f"{record.section}: {record.name}: ERROR {record.error}")
        elif record.asyncflow is not None and record.baseline is not None:
            self.progress(
                f"{record.section}: {record.name} n={record.n}: asyncflow "
                f"{record.asyncflow.median:.4f} s, baseline {record.baseline.median:.4f} s "
                f"(medians), ratio {record.ratio:.2f}"
            )
        else:
            self.progress(f"{record.section}: {record.name} n={record.n}: done")
        return record

    def failed(self, record: Record, exc: BaseException) -> Record:
        """Record that measuring ``record`` raised ``exc``."""
        traceback.print_exception(exc, file=self.log)
        record.error = f"{type(exc).__name__}: {exc}"
        return self.add(record)

    def find(self, section: str, name: str, n: int) -> Record | None:
        """A successful record measured earlier in this run."""
        for r in self.records:
            if r.section == section and r.name == name and r.n == n and r.error is None:
                return r
        return None
