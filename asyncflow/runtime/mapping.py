"""Mapping: a mapped task expands into one child per item of its mapped inputs.

A mapped parent expands once its ordinary upstream tasks have finished. Each mapped argument
is a *source* of items:

- a finished upstream result or constant (a list, tuple, range ...): all items known at once;
- another mapped task (``b.map(a)`` where ``a`` is mapped): item ``i`` is child ``i`` of ``a``,
  and child ``i`` of ``b`` starts as soon as child ``i`` of ``a`` finished — each index flows
  on independently;
- an async iterable (an async generator): consumed lazily, a child started per item as it
  arrives, with back-pressure (at most ``window`` unfinished children).

The number of children is the shortest source's length. When every child has finished, the
parent ends ``Mapped`` with ``map_states`` and the list of child results as its result (what
a downstream "reduce" task receives). This module holds the bookkeeping; the scheduler acts.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any

import anyio

from .._log import get_logger
from ..states import Failed, Mapped, Paused, Pending, Running
from . import pipeline
from .pipeline import all_finished
from .task_run import resume_if_asked
from .units import Unit

if TYPE_CHECKING:
    from ..states import State
    from .scheduler import Scheduler

__all__ = ("STREAM_WINDOW", "MapRun", "Source", "consume", "items_of", "mapped_state", "run_parent")

_log = get_logger("asyncflow.engine")
_MAPPING = Running("Starting mapped task run.")

#: How many children of an async-iterable map may be unfinished before the engine stops pulling
#: new items from the iterable (back-pressure).
STREAM_WINDOW = 64


class Source:
    """The items one mapped argument gives, by index."""

    __slots__ = ("closed", "items", "key", "map")

    def __init__(
        self,
        key: str | None,  # None: a per-index ordering that passes no argument
        items: list[Any] | None = None,
        map: MapRun | None = None,
        closed: bool = True,
    ) -> None:
        self.key = key
        self.items = items
        self.map = map  # per-index source: the upstream mapped task's children
        self.closed = closed

    def count(self) -> int:
        if self.map is not None:
            return len(self.map.children)
        assert self.items is not None
        return len(self.items)

    def is_closed(self) -> bool:
        return self.map.closed if self.map is not None else self.closed

    def value(self, i: int) -> Any:
        if self.map is not None:
            return self.map.children[i].state.result
        assert self.items is not None
        return self.items[i]


class MapRun:
    """The children of one mapped parent and what they are made from."""

    __slots__ = (
        "base_inputs",
        "child_decision",
        "children",
        "closed",
        "dependents",
        "error",
        "n_done",
        "parent",
        "room",
        "sources",
    )  # fmt: skip

    def __init__(self, parent: Unit, sources: list[Source], base_inputs: dict[str, Any]) -> None:
        self.parent = parent
        self.sources = sources
        self.base_inputs = base_inputs  # the unmapped arguments, the same for every child
        self.children: list[Unit] = []
        self.n_done = 0
        self.closed = False
        self.dependents: list[MapRun] = []  # maps that take our children index by index
        self.room: anyio.Event | None = None  # back-pressure for async-iterable sources
        self.error: BaseException | None = None  # an async-iterable source raised
        # The trigger's verdict for every child when they all see the same upstream states
        # (no per-index source): decided once here instead of once per child.
        self.child_decision: State | None = pipeline.GENERAL

    def index_sources(self) -> list[Source]:
        return [s for s in self.sources if s.map is not None]

    def grow(self) -> list[Unit]:
        """Create the children the sources allow now; return those ready to run."""
        ready: list[Unit] = []
        if not self.sources:  # nothing left to map over (its source never expanded): no child
            self.closed = True
            return ready
        target = min(s.count() for s in self.sources)
        index_sources = self.index_sources()
        parent = self.parent
        spec, run_id, children = parent.spec, parent.run_id, self.children
        while len(children) < target:
            i = len(children)
            child = Unit(spec, Pending(), f"{run_id}[{i}]", map_index=i)
            child.parent = self
            children.append(child)
            if index_sources:
                child.pending = sum(not s.map.children[i].done for s in index_sources)  # type: ignore[union-attr]
                if child.pending:
                    continue
            ready.append(child)
        if not self.closed and any(s.is_closed() and s.count() == target for s in self.sources):
            self.closed = True
        return ready

    def inputs(self, i: int) -> dict[str, Any]:
        """The arguments of child ``i``."""
        inputs = dict(self.base_inputs)
        for s in self.sources:
            if s.key is not None:
                inputs[s.key] = s.value(i)
        return inputs

    def unfinished(self) -> int:
        return len(self.children) - self.n_done

    def complete(self) -> bool:
        return self.closed and self.n_done == len(self.children)


def items_of(value: Any, flattened: bool) -> list[Any] | AsyncIterable[Any]:
    """The items a mapped argument maps over.

    Raises:
        TypeError: ``value`` cannot be mapped over (the caller names the task and argument).
    """
    if isinstance(value, AsyncIterable):
        if flattened:
            raise TypeError("an async iterable cannot be flattened")
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"cannot map over {value!r}: it is not a list or other iterable")
    items = list(value)
    if flattened:
        flat: list[Any] = []
        for item in items:
            if isinstance(item, str | bytes) or not isinstance(item, Iterable):
                raise TypeError(f"cannot flatten {value!r}: item {item!r} is not iterable")
            flat.extend(item)
        return flat
    return items


def mapped_state(children: list[Unit]) -> Mapped:
    """The parent's final state once every child finished."""
    return Mapped(
        f"Mapped {len(children)} children.",
        [c.state.result for c in children],
        map_states=[c.state for c in children],
    )


# -- running a mapped parent --------------------------------------------------------------


async def run_parent(sched: Scheduler, unit: Unit) -> None:
    """Expand a mapped task into children, or end it ``Mapped`` once they all finished."""
    m = unit.mapping
    if m is not None:
        if unit.finalizing:
            state = (
                Failed(f"Error while reading the mapped input: {m.error!r}", m.error)
                if m.error is not None
                else mapped_state(m.children)
            )
            sched.route(unit, await sched.transition(unit, state))
        return
    ts = unit.spec
    if unit.resumed and isinstance(unit.state, Paused) and not await resume_if_asked(sched, unit):
        return
    units = sched.units
    # The parent decides on its ordinary upstream tasks; per-index sources that expanded
    # are decided child by child.
    upstream = {
        e: units[j].state
        for e, j, per_index in zip(ts.upstream_edges, ts.upstream_index, ts.per_index, strict=True)
        if not (per_index and units[j].mapping is not None)
    }
    if not all_finished(upstream.values()):
        sched.finish(unit)
        return
    # As in Prefect 1.x, each child judges the trigger with its own upstream states; the
    # parent only stops on an upstream skip, or when what it maps over is not there.
    sources_ok = all(s.is_successful() for e, s in upstream.items() if e.mapped)
    decision = pipeline.check_upstream(ts, upstream, resumed=unit.resumed or sources_ok)
    if decision is not None:
        sched.route(unit, await sched.transition(unit, decision))
        return
    settled = await sched.transition(unit, _MAPPING)
    if not settled.is_running():
        sched.route(unit, settled)
        return

    base = dict(ts.constants)
    sources: list[Source] = []
    streams: list[tuple[Source, AsyncIterable[Any]]] = []
    for e, j, per_index in zip(ts.upstream_edges, ts.upstream_index, ts.per_index, strict=True):
        up = units[j]
        if per_index and up.mapping is not None:
            sources.append(Source(e.key, map=up.mapping))  # keyless: a per-index ordering
        elif e.key is None:
            continue
        elif not e.mapped:
            base[e.key] = up.state.result
        else:
            try:
                items = items_of(up.state.result, e.flattened)
            except TypeError as exc:
                failed = Failed(
                    f"Cannot map {ts.task!r} over argument {e.key!r} "
                    f"(from {e.upstream_task!r}): {exc}",
                    exc,
                )
                sched.route(unit, await sched.transition(unit, failed))
                return
            if isinstance(items, list):
                sources.append(Source(e.key, items=items))
            else:
                source = Source(e.key, items=[], closed=False)
                sources.append(source)
                streams.append((source, items))
    m = unit.mapping = MapRun(unit, sources, base)
    if not any(ts.per_index):
        m.child_decision = pipeline.check_upstream(ts, upstream)
    for source in sources:
        if source.map is not None:
            source.map.dependents.append(m)
    sched.release(ts.index_downstream)
    sched.grow(m)
    for source, iterable in streams:
        assert sched.tg is not None
        sched.tg.start_soon(consume, sched, m, source, iterable)


async def consume(
    sched: Scheduler, m: MapRun, source: Source, iterable: AsyncIterable[Any]
) -> None:
    """Pull items from an async iterable, a child per item, at most a window ahead."""
    assert source.items is not None
    iterator = aiter(iterable)
    try:
        while True:
            while m.unfinished() >= STREAM_WINDOW:
                m.room = m.room or anyio.Event()
                await m.room.wait()
            sched.busy += 1
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                break
            finally:
                sched.busy -= 1
            source.items.append(item)
            sched.grow(m)
            sched.ensure_worker()
    except Exception as exc:
        m.error = exc
        _log.error("mapped input raised", task=m.parent.spec.name, exc_info=exc)
    finally:
        source.closed = True
        sched.grow(m)  # decides whether the map is complete now
        sched.ensure_worker()
