"""Profile asyncflow on one DAG scenario: ``python -m benchmarks.profiling [--shape ...] [--n N]``.

Builds and compiles the flow, runs it once untimed (warm-up), then runs it ``--runs`` times under
:mod:`cProfile` and prints the top entries by own time (``tottime``) for each shape. Logging stays
at its default, as in the benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
from typing import TYPE_CHECKING

from asyncflow import EventBus

from .flows import TASK_KINDS, build_flow, check_success
from .shapes import SHAPES, make

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("main", "profile")


async def profile(shape: str, n: int, kind: str = "async", runs: int = 1, top: int = 12) -> str:
    """The top ``top`` entries by tottime of ``runs`` runs of one DAG flow, as text."""
    flow = build_flow(make(shape, n), TASK_KINDS[kind])
    flow.compile()
    bus = EventBus()
    check = check_success(n)
    check(await flow.run_async(bus=bus))
    profiler = cProfile.Profile()
    for _ in range(runs):
        profiler.enable()
        state = await flow.run_async(bus=bus)
        profiler.disable()
        check(state)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return f"== {kind} {shape}, {n:,} tasks, {runs} run(s) ==\n{out.getvalue()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the profile of each shape asked for."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    p.add_argument("--shape", nargs="+", choices=SHAPES, default=["wide", "chain"])
    p.add_argument("--n", type=int, default=10_000, help="tasks (default 10,000)")
    p.add_argument("--kind", choices=sorted(TASK_KINDS), default="async")
    p.add_argument("--runs", type=int, default=1, help="profiled runs per shape")
    p.add_argument("--top", type=int, default=12, help="entries to print")
    args = p.parse_args(argv)
    for shape in args.shape:
        text = asyncio.run(profile(shape, args.n, args.kind, args.runs, args.top))
        print(text, file=sys.stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
