"""The benchmark runner: ``python -m benchmarks [--quick] [--n N ...] [--json PATH]``.

Runs the scenarios in one process and one event loop, prints a table (stdout) and writes every
figure, with all repeats, to JSON (default ``benchmarks/results/latest.json``). Progress lines and
asyncflow's own INFO logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

import asyncflow

from . import baseline, build, bus, dag, durable, growth, mapping, memory, retries
from .flows import TASK_KINDS, build_flow, check_count, check_success
from .session import SCENARIOS, Config, Session
from .shapes import wide

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .measure import Record

__all__ = ("DEFAULT_JSON", "config_from_args", "main", "render", "run")

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

_RUNNERS = {
    "dag": dag.run,
    "bus": bus.run,
    "retries": retries.run,
    "mapping": mapping.run,
    "memory": memory.run,
    "build": build.run,
    "durable": durable.run,
}
_TABLES: dict[str, Callable[[list[Record]], tuple[str, list[str], list[list[str]]]]] = {
    "dag": dag.table,
    "growth": growth.table,
    "bus": bus.table,
    "retries": retries.table,
    "mapping": mapping.table,
    "memory": memory.table,
    "build": build.table,
    "durable": durable.table,
}


_SIZE_OPTIONS = (
    "width",
    "sync_max_n",
    "bus_n",
    "retry_n",
    "retry_delay",
    "map_n",
    "memory_n",
    "graph_n",
    "build_n",
    "durable_n",
)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="asyncflow beside a plain-asyncio baseline: medians, ratios, a JSON report.",
    )
    p.add_argument(
        "--quick", action="store_true", help="sizes up to 10,000 and 3 repeats (about 30 s)"
    )
    p.add_argument("--n", type=int, nargs="+", metavar="N", help="DAG sizes (default: by mode)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH", help="JSON output")
    p.add_argument(
        "--only", nargs="+", choices=SCENARIOS, metavar="SCENARIO", help=f"one of {SCENARIOS}"
    )
    p.add_argument("--repeats", type=int, help="repeats per figure (the median is reported)")
    p.add_argument("--width", type=int, help="lattice width (default 100)")
    p.add_argument("--sync-max-n", type=int, help="largest DAG size run with sync tasks")
    p.add_argument("--bus-n", type=int, help="tasks in the bus scenario's flow")
    p.add_argument("--retry-n", type=int, help="tasks in the retry scenario")
    p.add_argument("--retry-delay", type=float, help="retry delay in seconds (default 0.2)")
    p.add_argument("--map-n", type=int, help="items in the mapping scenario")
    p.add_argument("--memory-n", type=int, help="tasks in the memory scenario's runs")
    p.add_argument("--graph-n", type=int, help="tasks of the flow whose memory is measured")
    p.add_argument("--build-n", type=int, help="tasks in the build scenario")
    p.add_argument(
        "--durable-n", type=int, help="wide tasks in the durable scenario (chain: a fifth)"
    )
    return p


def config_from_args(argv: Sequence[str] | None = None) -> tuple[Config, Path]:
    """The configuration and JSON path that ``argv`` asks for."""
    args = parser().parse_args(argv)
    cfg = Config.quick_config() if args.quick else Config()
    changes: dict[str, Any] = {}
    if args.n:
        changes["sizes"] = tuple(args.n)
    if args.only:
        changes["scenarios"] = tuple(s for s in SCENARIOS if s in args.only)
    if args.repeats is not None:
        changes["repeats"] = changes["big_repeats"] = changes["build_repeats"] = args.repeats
    for name in _SIZE_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    cfg = replace(cfg, **changes)
    if cfg.repeats < 1 or cfg.big_repeats < 1 or cfg.build_repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    return cfg, args.json


async def _warm_up() -> None:
    """One small untimed run of each side: imports, logging setup, thread pool."""
    graph = wide(100)
    flow = build_flow(graph, TASK_KINDS["async"])
    check_success(100)(await flow.run_async(bus=asyncflow.EventBus()))
    check_count(100)(await baseline.run_dag(graph, baseline.async_body))


async def run(config: Config, log: TextIO | None = None) -> Session:
    """Run the scenarios of ``config``; returns the session with every record."""
    session = Session(config) if log is None else Session(config, log=log)
    if "bus" in config.scenarios:
        session.keep.add(("wide", config.bus_n, "async"))
    if "memory" in config.scenarios:
        session.keep.update(("wide", config.memory_n, "async"), ("chain", config.memory_n, "async"))
    await _warm_up()
    for name in config.scenarios:
        session.progress(f"scenario {name}")
        await _RUNNERS[name](session)
        if name == "dag":
            growth.derive(session)
        if name == "memory":
            session.drop_flows()
    session.drop_flows()
    return session


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def meta(config: Config, load_before: float | None, seconds: float) -> dict[str, Any]:
    """Where and how the figures were taken."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "asyncflow": asyncflow.__version__,
        "anyio": anyio.__version__ if hasattr(anyio, "__version__") else None,
        "git_commit": _git_commit(),
        "mode": "quick" if config.quick else "full",
        "duration_s": seconds,
    }


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def render(session: Session, info: dict[str, Any]) -> str:
    """The printed table: one block per scenario, then the performance targets."""
    cfg = session.config
    load = info.get("load_average_before")
    lines = [
        f"asyncflow benchmarks ({info['mode']} run, {info['duration_s']:.0f} s): "
        f"Python {info['python']}, {info['cpus']} CPUs"
        + (f", load average {load:.1f} at start" if load is not None else ""),
        f"Times are medians of {cfg.repeats} repeats ({cfg.big_repeats} at 100,000 tasks and "
        f"for retries, {cfg.build_repeats} for builds); ratio = asyncflow / baseline "
        "(plain asyncio, same process, interleaved).",
    ]
    by_section: dict[str, list[Record]] = {}
    for r in session.records:
        by_section.setdefault(r.section, []).append(r)
    for section, table in _TABLES.items():
        records = by_section.get(section)
        if records:
            title, headers, rows = table(records)
            lines += ["", title, *_align(headers, rows)]
    lines += _targets(session.records)
    return "\n".join(lines)


def _align(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=False)]
        return "  ".join(out).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _targets(records: list[Record]) -> list[str]:
    rows = []
    for r in records:
        if r.section == "dag" and r.target is not None and r.error is None:
            ratio = r.ratio or 0.0
            verdict = "ok" if r.meets_target else "MISS"
            rows.append([f"{r.name} {r.n:,}", f"<= {r.target:g}x", f"{ratio:.2f}x", verdict])
        if (
            r.section == "growth"
            and r.name in ("async wide", "async chain")
            and r.extra["to_n"] == 100_000
        ):
            g = r.extra["asyncflow_growth"]
            verdict = "ok" if r.extra["linear"] else "MISS"
            rows.append([f"{r.name} 10k -> 100k", "linear (<= 12x)", f"{g:.1f}x", verdict])
    if not rows:
        return []
    headers = ["target", "allowed", "measured", ""]
    return ["", "Performance targets (no subscribers)", *_align(headers, rows)]


def write_json(path: Path, session: Session, info: dict[str, Any]) -> None:
    """Every record with all its repeats, the configuration and ``info``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": info,
        "config": asdict(session.config),
        "records": [r.to_json() for r in session.records],
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmarks; 0 when every scenario was measured, 1 when one raised."""
    config, json_path = config_from_args(argv)
    # The flow runs' start and end lines (INFO) would drown the progress lines; warnings stay.
    logger = logging.getLogger("asyncflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    load_before = _load()
    start = time.perf_counter()
    try:
        session = asyncio.run(run(config))
    finally:
        logger.setLevel(level)
    info = meta(config, load_before, time.perf_counter() - start)
    print(render(session, info), file=out or sys.stdout, flush=True)
    write_json(json_path, session, info)
    print(f"\nJSON: {json_path}", file=out or sys.stdout)
    return 1 if any(r.error is not None for r in session.records) else 0
