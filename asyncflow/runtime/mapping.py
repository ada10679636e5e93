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
import attrs

from .._log import get_logger
from ..states import Failed, Mapped, Paused, Pending
from . import pipeline
from .pipeline import all_finished
from .task_run import resume_if_asked
from .units import Unit

if TYPE_CHECKING:
    from ..edges import Edge
    from ..states import State
    from .scheduler import Scheduler

__all__ = (
    "READY",
    "STREAM_WINDOW",
    "MapRun",
    "Source",
    "complete",
    "consume",
    "flattened_children",
    "items_of",
    "mappable",
    "run_parent",
)

_log = get_logger("asyncflow.engine")
#: The state a mapped parent enters when it expands, as in Prefect 1.x.
READY = Mapped("Ready to proceed with mapping.")

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
        "edge_states",
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
        # Flattened mapped upstreams: the upstream state each child sees at its position.
        self.edge_states: dict[Edge, list[State]] = {}
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


def mappable(value: Any) -> bool:
    """Whether a result can be mapped over: Prefect 1.x's test (``__getitem__``), plus any
    iterable (a set, a generator) and async iterables."""
    return hasattr(value, "__getitem__") or isinstance(value, Iterable | AsyncIterable)


def items_of(value: Any, flattened: bool) -> list[Any] | AsyncIterable[Any]:
    """The items a mapped argument maps over (``value`` is :func:`mappable`).

    Flattening follows Prefect 1.x: the items' items, unless one of them is not iterable, in
    which case ``value`` is mapped over as it is.

    Raises:
        TypeError: an async iterable to flatten (the caller names the task and argument).
    """
    if isinstance(value, AsyncIterable):
        if flattened:
            raise TypeError("an async iterable cannot be flattened")
        return value
    items = list(value)
    if flattened:
        try:
            return [inner for item in items for inner in item]
        except TypeError:
            _log.warning("flatten was used on a result that is not a list of lists; mapped as is")
    return items


def flattened_children(children: list[Unit]) -> tuple[list[Any], list[State]]:
    """The items of a mapped upstream flattened child by child, with each item's state.

    As in Prefect 1.x, a successful child gives one item per element of its result (or its
    result itself when that is not a sequence), and a skipped or failed child keeps its
    place: one item whose state is that child's, so that the downstream child at that
    position is skipped or trigger-failed instead of the whole map failing.
    """
    items: list[Any] = []
    states: list[State] = []
    for child in children:
        state = child.state
        result = state.result
        if not state.is_successful() or state.is_skipped():
            items.append(None)
            states.append(state)
        elif hasattr(result, "__len__") and hasattr(result, "__getitem__"):
            for item in result:
                items.append(item)
                states.append(attrs.evolve(state, result=item))
        else:
            items.append(result)
            states.append(state)
    return items, states


def complete(state: Mapped, children: list[Unit]) -> Mapped:
    """The parent's ``Mapped`` state once every child finished: its children's states and
    results filled in (the state itself was entered when the map was ready, as in 1.x)."""
    results = [c.state.result for c in children]
    return attrs.evolve(state, result=results, map_states=[c.state for c in children])


# -- running a mapped parent --------------------------------------------------------------


async def run_parent(sched: Scheduler, unit: Unit) -> None:
    """Expand a mapped task into children, or complete its ``Mapped`` state once they finished.

    As in Prefect 1.x, the parent goes ``Pending -> Mapped("Ready to proceed with mapping.")``
    (its handlers called once) when it expands; each child judges the trigger with its own
    upstream states. When the last child finishes, the parent's state gets their states and
    results (one more event, no handler call).
    """
    m = unit.mapping
    if m is not None:
        if unit.finalizing:
            if m.error is not None:
                failed = Failed(f"Error while reading the mapped input: {m.error!r}", m.error)
                sched.route(unit, await sched.transition(unit, failed))
            else:
                assert isinstance(unit.state, Mapped)  # it expanded: it is ready to map
                old, unit.state = unit.state, complete(unit.state, m.children)
                ts = unit.spec
                await sched.emit(ts.name, unit.run_id, None, old, unit.state, ts.task)
                sched.route(unit, unit.state)
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
    per_index_sources = len(upstream) < len(ts.upstream_edges)
    decision = pipeline.ready_to_map(ts, upstream, per_index_sources, mappable)
    settled = await sched.transition(unit, decision)
    if not isinstance(settled, Mapped):
        sched.route(unit, settled)
        return

    base = dict(ts.constants)
    sources: list[Source] = []
    streams: list[tuple[Source, AsyncIterable[Any]]] = []
    edge_states: dict[Edge, list[State]] = {}
    for e, j, per_index in zip(ts.upstream_edges, ts.upstream_index, ts.per_index, strict=True):
        up = units[j]
        if per_index and up.mapping is not None:
            sources.append(Source(e.key, map=up.mapping))  # keyless: a per-index ordering
        elif not e.mapped:
            if e.key is not None:
                base[e.key] = up.state.result
        elif e.flattened and up.mapping is not None:
            items, edge_states[e] = flattened_children(up.mapping.children)
            sources.append(Source(e.key, items=items))
        else:
            try:
                found = items_of(up.state.result, e.flattened)
            except TypeError as exc:
                failed = Failed(
                    f"Cannot map {ts.task!r} over argument {e.key!r} "
                    f"(from {e.upstream_task!r}): {exc}",
                    exc,
                )
                sched.route(unit, await sched.transition(unit, failed))
                return
            if isinstance(found, list):
                sources.append(Source(e.key, items=found))
            else:
                source = Source(e.key, items=[], closed=False)
                sources.append(source)
                streams.append((source, found))
    m = unit.mapping = MapRun(unit, sources, base)
    m.edge_states = edge_states
    if not any(ts.per_index) and not edge_states:
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
