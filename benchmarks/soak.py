"""``python -m benchmarks.soak``: the reliability campaign, for thousands of examples.

Each example is a random flow with random faults, misbehaving handlers and subscribers and a
random cancellation (see :mod:`benchmarks.chaos`), drawn from ``random.Random(seed + i)``, so a
failing example is reproduced by its seed. The soak prints how many runs were tried, hung, lost
events or leaked, and lists the seeds of the failures. For scale it also runs each example's
*calm twin* (the same DAG, with no fault, no misbehaving observer and no cancellation) and
prints the median time per example of both, as a ratio.

Usage::

    python -m benchmarks.soak --examples 5000 [--seed 0] [--max-tasks 8] [--bound 10]

The exit status is 1 when any example failed.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
from typing import TYPE_CHECKING

import anyio
import attrs

from asyncflow import configure_logging

from .chaos import Outcome, RandomDraw, Scenario, draw_scenario, run_scenario, summary

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("calm", "main", "soak")


def calm(scenario: Scenario) -> Scenario:
    """The same DAG with every fault, misbehaviour and cancellation taken out."""
    tasks = tuple(attrs.evolve(t, fault="ok", handler="quiet") for t in scenario.tasks)
    subscribers = tuple(
        attrs.evolve(s, kind="sync", overflow="block") for s in scenario.subscribers
    )
    return attrs.evolve(
        scenario, tasks=tasks, flow_handler="quiet", subscribers=subscribers, cancel="none"
    )


async def soak(
    examples: int, seed: int, max_tasks: int, bound: float, progress: bool
) -> tuple[list[tuple[int, Outcome, Scenario]], list[float], list[float]]:
    """Run ``examples`` examples; return ``(seed, outcome, scenario)`` each, and the times."""
    results: list[tuple[int, Outcome, Scenario]] = []
    chaos_times: list[float] = []
    calm_times: list[float] = []
    for i in range(examples):
        scenario = draw_scenario(RandomDraw(random.Random(seed + i)), max_tasks=max_tasks)
        started = time.perf_counter()
        outcome = await run_scenario(scenario, bound=bound)
        chaos_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        await run_scenario(calm(scenario), bound=bound)
        calm_times.append(time.perf_counter() - started)
        results.append((seed + i, outcome, scenario))
        if progress and (i + 1) % 500 == 0:
            print(f"... {i + 1} examples", file=sys.stderr, flush=True)
    return results, chaos_times, calm_times


def report(
    results: Sequence[tuple[int, Outcome, Scenario]],
    chaos_times: list[float],
    calm_times: list[float],
    wall: float,
) -> str:
    counts = summary([o for _, o, _ in results])
    lines = [
        f"runs tried {counts['tried']:,} / hung {counts['hung']} / lost {counts['lost']} "
        f"(events) / leaked {counts['leaked']} / other violations {counts['violations']}",
        f"events published: {counts['events']:,}; flows ended: "
        + ", ".join(
            f"{k.removeprefix('final ')} {v}" for k, v in sorted(counts.items()) if "final" in k
        ),
    ]
    chaos, quiet = statistics.median(chaos_times), statistics.median(calm_times)
    lines.append(
        f"median per example: {chaos * 1e3:.2f} ms with faults, {quiet * 1e3:.2f} ms for its "
        f"calm twin (same DAG, no faults; the baseline): ratio {chaos / quiet:.2f}x; "
        f"wall {wall:.1f} s"
    )
    failed = [(s, o) for s, o, _ in results if not o.ok]
    for seed, outcome in failed[:20]:
        lines.append(f"FAILED seed {seed}: {outcome}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tasks", type=int, default=8)
    parser.add_argument("--bound", type=float, default=10.0, help="seconds before 'hung'")
    args = parser.parse_args(argv)
    # The campaign fails tasks on purpose: keep the engine's error logs out of the report.
    configure_logging(level=logging.CRITICAL)
    started = time.perf_counter()
    results, chaos_times, calm_times = anyio.run(
        soak, args.examples, args.seed, args.max_tasks, args.bound, True
    )
    print(report(results, chaos_times, calm_times, time.perf_counter() - started))
    return 0 if all(o.ok for _, o, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
