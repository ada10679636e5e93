"""Build scenario: what it costs to build and compile a flow before its first run.

``Flow.compile()`` validates the graph and freezes it into the spec the engine runs; it is cached
until the flow changes, so every other scenario excludes it (flows are compiled before timing).
A flow's first run pays for it, though, so it is measured here: building ``build_n`` async no-op
tasks with ``add_task``/``add_edge``, then compiling, for each shape. Baseline: building the
executor's own structure (``shapes.Graph``: upstream tuples and downstream lists) for the same
shape. The run time beside it comes from the DAG scenario at the same size, when it ran.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING

from .flows import TASK_KINDS, build_flow
from .measure import Measured, Record, fmt_ratio, fmt_time, median
from .shapes import SHAPES, make

if TYPE_CHECKING:
    from .session import Session

__all__ = ("run", "table")


async def run(session: Session) -> None:
    """Build and compile each shape ``build_repeats`` times, beside the baseline's build."""
    cfg = session.config
    n = cfg.build_n
    for shape in SHAPES:
        record = Record("build", shape, n, units=n, baseline_label="shapes.Graph")
        try:
            graph = make(shape, n, cfg.width)
            af, base = Measured(), Measured()
            build_s: list[float] = []
            compile_s: list[float] = []
            for _ in range(cfg.build_repeats):
                gc.collect()
                start = time.perf_counter()
                flow = build_flow(graph, TASK_KINDS["async"])
                built = time.perf_counter()
                flow.compile()
                compiled = time.perf_counter()
                del flow
                build_s.append(built - start)
                compile_s.append(compiled - built)
                af.times.append(compiled - start)
                gc.collect()
                start = time.perf_counter()
                make(shape, n, cfg.width)
                base.times.append(time.perf_counter() - start)
            record.asyncflow, record.baseline = af, base
            record.extra.update(build_s=build_s, compile_s=compile_s)
            record.extra["build_median_s"] = median(build_s)
            record.extra["compile_median_s"] = median(compile_s)
            ran = session.find("dag", f"async {shape}", n)
            if ran is not None and ran.asyncflow is not None:
                record.extra["run_median_s"] = ran.asyncflow.median
        except Exception as exc:
            session.failed(record, exc)
            continue
        session.add(record)


def table(records: list[Record]) -> tuple[str, list[str], list[list[str]]]:
    """The build section of the printed table."""
    rows = []
    for r in records:
        if r.error is not None:
            rows.append([r.name, f"{r.n:,}", "ERROR", r.error, "", "", "", ""])
            continue
        assert r.asyncflow is not None
        assert r.baseline is not None
        assert r.units
        x, per = r.extra, 1e6 / r.units
        run = x.get("run_median_s")
        rows.append(
            [
                r.name,
                f"{r.n:,}",
                f"{x['build_median_s'] * per:.1f}",
                f"{x['compile_median_s'] * per:.1f}",
                "-" if run is None else f"{run * per:.1f}",
                fmt_time(r.asyncflow.median),
                fmt_time(r.baseline.median),
                fmt_ratio(r.ratio),
            ]
        )
    headers = [
        "shape",
        "tasks",
        "build µs/task",
        "compile µs/task",
        "run µs/task",
        "build+compile",
        "baseline",
        "ratio",
    ]
    return "Graph build before the first run (async no-op tasks)", headers, rows
