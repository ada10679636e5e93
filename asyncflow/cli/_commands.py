"""What each ``asyncflow`` command does; :mod:`asyncflow.cli` parses the arguments."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..bus import default_bus
from ..filters import by_run
from ._progress import PlainView, RichView, Tracker, family
from ._target import UsageError, load_flow, load_flows, parse_parameters, pick

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from ..events import StateChange
    from ..flow import Flow
    from ..states import State

__all__ = ("run", "visualize", "serve", "runs")

#: How often the live table redraws (its elapsed time moves even with no event).
_REDRAW = 0.1


def _view(tracker: Tracker, plain: bool) -> PlainView | RichView:
    out = sys.stdout
    if plain or not out.isatty():
        return PlainView(tracker, out)
    try:
        return RichView(tracker, out)
    except ImportError:
        print("(install 'asyncflow[cli]' for a live progress table)", file=sys.stderr)
        return PlainView(tracker, out)


@contextlib.asynccontextmanager
async def _store(path: str | None) -> AsyncIterator[Any]:
    if path is None:
        yield None
        return
    from ..store import SQLiteStore

    async with SQLiteStore(path) as store:
        yield store


async def _follow(flow: Flow, plain: bool, **options: Any) -> tuple[State, Tracker]:
    """Run ``flow`` while a view shows its events; return its final state and what was seen.

    The run goes through ``run_async`` (a paused task ends it, as ``flow.run()`` does, instead of
    waiting for an approval nobody can give here); its events come from the default bus,
    filtered by run id, so the flow's own subscribers still get them too.
    """
    tracker = Tracker(flow.name)
    view = _view(tracker, plain)
    run_id = options.get("resume") or options.setdefault("run_id", uuid.uuid4().hex)

    def show(event: StateChange) -> None:
        if not tracker.run_id:
            print(f"flow {flow.name!r}: run {run_id}", file=sys.stderr)
        view.show(event, tracker.update(event))

    subscription = default_bus().subscribe(show, filter=by_run(run_id), buffer=10_000)
    try:
        with view:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_redraw, view)
                state = await flow.run_async(**options)
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # what run_async raised, e.g. a ParameterError
            raise group.exceptions[0] from None
        raise
    finally:
        subscription.close()
    return state, tracker


async def _redraw(view: PlainView | RichView) -> None:
    while True:
        view.tick()
        await anyio.sleep(_REDRAW)


def _report(state: State, tracker: Tracker) -> int:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(tracker.counts().items()))
    print(f"flow {tracker.flow_name!r} finished {state!r} in {tracker.elapsed():.2f}s ({counts})")
    paused = [line for line in tracker.lines() if family(line.state) == "Paused"]
    if paused:
        names = ", ".join(line.label for line in paused)
        print(
            f"waiting for approval: {names}; approve on the run page (`asyncflow serve` with "
            "the same --store) to let the run go on"
        )
    if state.is_successful():
        return 0
    failures = tracker.failures()
    if failures:
        print("failed tasks:")
        for line in failures:
            print(f"  {line.label}: {line.state!r}")
            if isinstance(line.state.result, BaseException):
                print(textwrap.indent(_traceback(line.state.result), "    "), end="")
    return 1


def _logging(args: argparse.Namespace, *, reports_runs: bool) -> None:
    """asyncflow's records on stderr at ``--log-level`` (default WARNING).

    When this command reports the run itself (``run``, ``runs resume``) and no level was asked
    for, the engine's and flow runner's records are left out: their news (failures with their
    tracebacks, retries, the final state) is already on screen, and log lines would tear the
    live table apart. Task code's own records still show.
    """
    from .._logsetup import configure_logging

    configure_logging(level=args.log_level or "WARNING")
    if reports_runs and args.log_level is None:
        for name in ("asyncflow.engine", "asyncflow.FlowRunner"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


#: Frames from these places are the machinery around a task, not the task's code.
_MACHINERY = (
    str(Path(__file__).parents[1]) + os.sep,  # asyncflow itself
    f"{os.sep}anyio{os.sep}",
    f"{os.sep}asyncio{os.sep}",
    f"{os.sep}concurrent{os.sep}futures{os.sep}",
)


def _traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` through the user's code only (empty if none of it is)."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(_MACHINERY[0])
        and not any(m in f.filename for m in _MACHINERY[1:])
    ]
    if not frames:
        return ""
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    return "".join([*lines, *traceback.format_exception_only(exc)])


def run(args: argparse.Namespace) -> int:
    """``asyncflow run``: run the flow with live progress; 0 on success, 1 otherwise."""
    _logging(args, reports_runs=True)
    flow = load_flow(args.target)
    parameters = parse_parameters(args.param)

    async def main() -> tuple[State, Tracker]:
        async with _store(args.store) as store:
            options: dict[str, Any] = {"parameters": parameters}
            if store is not None:
                options["store"] = store
            return await _follow(flow, args.plain, **options)

    return _report(*anyio.run(main))


def visualize(args: argparse.Namespace) -> int:
    """``asyncflow visualize``: write the flow's graph to a file."""
    flow = load_flow(args.target)
    output = args.output or f"{flow.name}.svg"
    flow.visualize(filename=output, horizontal=args.horizontal)
    print(f"wrote {output}")
    return 0


def serve(args: argparse.Namespace) -> int:  # pragma: no cover - tested in a subprocess
    """``asyncflow serve``: the API under ``/api`` and the run page, until SIGINT/SIGTERM."""
    from ._serve import build_app, run_server

    _logging(args, reports_runs=False)
    flows, name = load_flows(args.target)
    chosen = [pick(flows, name, args.target)] if name else list(flows.values())
    app = build_app(chosen, store=None if args.no_store else args.store)
    run_server(app, args.host, args.port)
    return 0


def runs(args: argparse.Namespace) -> int:
    """``asyncflow runs ACTION``: read (or resume) the runs kept in a store."""
    if args.action != "resume" and not Path(args.store).exists():
        raise UsageError(f"no store at {args.store!r} (give one with --store PATH)")

    async def main() -> int:
        async with _store(args.store) as store:
            if args.action == "list":
                return await _list(store, args)
            if args.action == "show":
                return await _show(store, args)
            if args.action == "events":
                return await _events(store, args)
            return await _resume(store, args)

    return anyio.run(main)


def _when(seconds: float) -> str:
    """Seconds since the epoch as a UTC time a person reads."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _record_json(record: Any) -> dict[str, Any]:
    from ..integrations.serialize import state_json, to_json

    return {
        "id": record.id,
        "flow": record.flow_name,
        "flow_version": record.flow_version,
        "state": state_json(record.state),
        "parameters": to_json(record.parameters),
        "created": _when(record.created),
        "updated": _when(record.updated),
        "owner": record.owner,
    }


async def _list(store: Any, args: argparse.Namespace) -> int:
    records = await store.list_runs(
        flow=args.flow, state=args.state, limit=args.limit, before=args.before
    )
    if args.json:
        for r in records:
            print(json.dumps(_record_json(r)))
        return 0
    if not records:
        print("no runs")
        return 0
    print(f"{'run id':<32}  {'flow':<20}  {'state':<14}  {'created (UTC)':<19}  message")
    for r in records:
        print(
            f"{r.id:<32}  {r.flow_name[:20]:<20}  {family(r.state):<14}  "
            f"{_when(r.created):<19}  {r.state.message or ''}"
        )
    if len(records) == args.limit:
        print(f"(more: --before {records[-1].id})")
    return 0


async def _show(store: Any, args: argparse.Namespace) -> int:
    record = await store.get_run(args.run_id)
    tracker = Tracker(record.flow_name)
    async for event in store.events(record.id):
        tracker.update(event)
    if args.json:
        data = _record_json(record)
        data["tasks"] = {
            line.label: {"state": family(line.state), "message": line.state.message}
            for line in tracker.tasks.values()
        }
        print(json.dumps(data))
        return 0
    print(f"run      {record.id}")
    print(f"flow     {record.flow_name} (version {record.flow_version})")
    print(f"state    {record.state!r}")
    print(f"created  {_when(record.created)}   updated {_when(record.updated)}")
    if record.parameters:
        print(f"params   {json.dumps(record.parameters, default=repr)}")
    print("tasks:")
    for key, line in tracker.tasks.items():
        kids = tracker.children.get(key)
        runs = f" (ran {line.runs}x)" if line.runs > 1 else ""
        detail = line.state.message or ""
        if kids:
            counts: dict[str, int] = {}
            for k in kids.values():
                counts[family(k.state)] = counts.get(family(k.state), 0) + 1
            detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"  {line.label:<24} {family(line.state):<14}{runs} {detail}")
    return 0


async def _events(store: Any, args: argparse.Namespace) -> int:
    await store.get_run(args.run_id)  # an unknown id is a usage error, not an empty journal
    async for event in store.events(args.run_id, after=args.after):
        if args.json:
            from ..integrations.serialize import event_json

            print(json.dumps(event_json(event)))
            continue
        who = "flow" if event.task_name is None else event.task_name
        if event.map_index is not None:
            who += f"[{event.map_index}]"
        print(
            f"{event.seq:>6}  {_when(event.timestamp)}  {who:<24} "
            f"{event.old_state!r} -> {event.new_state!r}"
        )
    return 0


async def _resume(store: Any, args: argparse.Namespace) -> int:
    _logging(args, reports_runs=True)
    record = await store.get_run(args.run_id)
    flow = load_flow(args.target)
    if flow.name != record.flow_name:
        raise UsageError(
            f"run {record.id} is a run of flow {record.flow_name!r}, "
            f"but {args.target!r} is flow {flow.name!r}"
        )
    state, tracker = await _follow(flow, args.plain, store=store, resume=record.id)
    return _report(state, tracker)
