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

from ..states import Mapped, Pending
from .units import Unit

if TYPE_CHECKING:
    import anyio

    from ..states import State

__all__ = ("MapRun", "Source", "STREAM_WINDOW", "items_of", "mapped_state")

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

    def state(self, i: int) -> State | None:
        """Child ``i``'s state for a per-index source (its trigger input), else ``None``."""
        return self.map.children[i].state if self.map is not None else None


class MapRun:
    """The children of one mapped parent and what they are made from."""

    __slots__ = (
        "base_inputs",
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

    def index_sources(self) -> list[Source]:
        return [s for s in self.sources if s.map is not None]

    def grow(self) -> list[Unit]:
        """Create the children the sources allow now; return those ready to run."""
        ready: list[Unit] = []
        target = min(s.count() for s in self.sources)
        index_sources = self.index_sources()
        parent = self.parent
        while len(self.children) < target:
            i = len(self.children)
            child = Unit(parent.spec, Pending(), f"{parent.run_id}[{i}]", map_index=i)
            child.parent = self
            child.pending = sum(not s.map.children[i].done for s in index_sources)  # type: ignore[union-attr]
            self.children.append(child)
            if child.pending == 0:
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
