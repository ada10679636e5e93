"""Growth: how run time grows with the number of tasks (derived from the DAG scenario).

For each kind and shape, the largest pair of measured sizes ``N -> 10 N`` is compared (10,000 ->
100,000 in the full run, 1,000 -> 10,000 with ``--quick``). Linear growth is 10x; the targets ask
for linear growth to 100,000. A row counts as linear when asyncflow's time grows at most 12x (20%
slack for noise and the garbage collector); the baseline's growth on the same machine is shown
beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dag import KINDS, sizes_for
from .measure import Record
from .shapes import SHAPES

if TYPE_CHECKING:
    from .session import Session

__all__ = ("FACTOR", "SLACK", "derive", "table")

FACTOR = 10
SLACK = 1.2


def pair(sizes: tuple[int, ...]) -> tuple[int, int] | None:
    """The largest ``(n, 10 n)`` among ``sizes``."""
    pairs = [(a, a * FACTOR) for a in sizes if a * FACTOR in sizes]
    return max(pairs) if pairs else None


def derive(session: Session) -> None:
    """A growth record for every DAG kind and shape measured at both sizes of a pair."""
    for kind in KINDS:
        sizes = pair(sizes_for(session, kind))
        if sizes is None:
            continue
        lo, hi = sizes
        for shape in SHAPES:
            small = session.find("dag", f"{kind} {shape}", lo)
            large = session.find("dag", f"{kind} {shape}", hi)
            if small is None or large is None:
                continue
            assert small.asyncflow is not None
            assert small.baseline is not None
            assert large.asyncflow is not None
            assert large.baseline is not None
            growth = large.asyncflow.median / small.asyncflow.median
            record = Record("growth", f"{kind} {shape}", hi, baseline_label="asyncio DAG")
            record.extra.update(
                from_n=lo,
                to_n=hi,
                asyncflow_growth=growth,
                baseline_growth=large.baseline.median / small.baseline.median,
                asyncflow_us_per_task=(
                    small.asyncflow.median / lo * 1e6,
                    large.asyncflow.median / hi * 1e6,
                ),
                linear=growth <= FACTOR * SLACK,
            )
            session.add(record)


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The growth section of the printed table."""
    rows = []
    for r in records:
        x = r.extra
        small, large = x["asyncflow_us_per_task"]
        rows.append(
            [
                r.name,
                f"{x['from_n']:,} -> {x['to_n']:,}",
                f"{small:.1f} -> {large:.1f}",
                f"{x['asyncflow_growth']:.1f}x",
                f"{x['baseline_growth']:.1f}x",
                "linear" if x["linear"] else "SUPERLINEAR",
            ]
        )
    headers = ["tasks", "N", "µs/task", "asyncflow", "baseline", f"<={FACTOR * SLACK:g}x"]
    return f"Growth of run time from N to {FACTOR} N tasks (linear = {FACTOR}x)", headers, rows
