"""Measuring: interleaved repeats, medians, a thread sampler, tracemalloc peaks, table rows.

Every timed figure is the median of several repeats. asyncflow and its baseline are measured in
the same process and on the same event loop, alternately (baseline first on even repeats,
asyncflow first on odd ones), with a full garbage collection before each timed call, so that
drift in machine load and leftover garbage hit both sides alike. The garbage collector stays
enabled while timing: its cost is part of running many tasks.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = (
    "Measured",
    "Record",
    "ThreadSampler",
    "compare",
    "fmt_bytes",
    "fmt_ratio",
    "fmt_time",
    "median",
    "timed",
    "traced_peak",
)

Check = Callable[[Any], None]


def median(times: list[float]) -> float:
    """The median of ``times``."""
    return statistics.median(times)


@dataclass
class Measured:
    """The repeats of one side of a comparison, in seconds."""

    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.times)

    def to_json(self, units: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"median_s": self.median, "times_s": self.times}
        if units:
            out["median_us_per_unit"] = self.median / units * 1e6
        return out


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Collect garbage, then time one call of ``fn``; returns (seconds, result)."""
    gc.collect()
    start = time.perf_counter()
    result = await fn()
    return time.perf_counter() - start, result


async def compare(
    asyncflow_fn: Callable[[], Awaitable[Any]],
    baseline_fn: Callable[[], Awaitable[Any]],
    repeats: int,
    *,
    check_asyncflow: Check | None = None,
    check_baseline: Check | None = None,
) -> tuple[Measured, Measured]:
    """Time both sides ``repeats`` times, interleaved; each result is checked after timing."""
    af, base = Measured(), Measured()
    sides = [(asyncflow_fn, check_asyncflow, af), (baseline_fn, check_baseline, base)]
    for r in range(repeats):
        for fn, check, out in sides if r % 2 else sides[::-1]:
            seconds, result = await timed(fn)
            if check is not None:
                check(result)
            out.times.append(seconds)
    return af, base


class ThreadSampler:
    """Samples ``threading.active_count()`` from a thread of its own while active.

    ``before`` is the count when entered and ``peak`` the highest count seen; both exclude the
    sampler's own thread.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.before = 0
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, threading.active_count() - 1)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> ThreadSampler:
        self.before = self.peak = threading.active_count()
        self._thread = threading.Thread(target=self._sample, name="bench-thread-sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, threading.active_count())


async def traced_peak(fn: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
    """Peak bytes allocated (tracemalloc) during one call of ``fn``, above what was live before."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = await fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, result


def traced_build(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated (tracemalloc) after ``fn()`` returns, with its result kept alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = fn()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before, result


@dataclass
class Record:
    """One line of results: asyncflow beside its baseline.

    Attributes:
        section: the scenario family (``dag``, ``bus``, ...).
        name: what was measured, e.g. ``async wide``.
        n: the size (tasks, events, items).
        units: how many units the time covers, for the per-unit figure (``None``: no such figure).
        asyncflow: asyncflow's repeats.
        baseline: the baseline's repeats.
        baseline_label: what the baseline is.
        target: the largest ratio the performance targets allow here, if it sets one.
        extra: figures specific to the scenario.
        error: why the scenario could not be measured.
    """

    section: str
    name: str
    n: int | None
    units: int | None = None
    asyncflow: Measured | None = None
    baseline: Measured | None = None
    baseline_label: str = ""
    target: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        """asyncflow's median over the baseline's (or ``extra["ratio"]`` for untimed figures)."""
        if self.asyncflow is None or self.baseline is None:
            ratio: float | None = self.extra.get("ratio")
            return ratio
        return self.asyncflow.median / self.baseline.median

    @property
    def meets_target(self) -> bool | None:
        ratio = self.ratio
        if self.target is None or ratio is None:
            return None
        return ratio <= self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "n": self.n,
            "units": self.units,
            "asyncflow": self.asyncflow.to_json(self.units) if self.asyncflow else None,
            "baseline": self.baseline.to_json(self.units) if self.baseline else None,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "target_ratio": self.target,
            "meets_target": self.meets_target,
            "extra": self.extra,
            "error": self.error,
        }


def fmt_time(seconds: float) -> str:
    """``seconds`` with a readable unit (s, ms, µs)."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_ratio(ratio: float | None) -> str:
    """``2.37x``, or ``-`` when there is none."""
    return "-" if ratio is None else f"{ratio:.2f}x"


def fmt_bytes(n: float) -> str:
    """Bytes with a readable unit."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
