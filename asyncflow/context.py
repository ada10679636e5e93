"""The run context that task code reads and writes: ``asyncflow.context``, as Prefect 1.x's.

Inside a task, ``context.flow_name``, ``context.get("task_run_count")``, ``context.logger`` and
the other Prefect 1.x keys describe the current run. ``with context(KEY=value):`` (or
``context(dict(...))``) adds keys for the code inside the block, runs started inside it
included: their tasks see the caller's keys under the run's own. Inside a block the context is
writable (``context.x = 1``, ``context.update(...)``, ``context.setdefault(...)``) and leaving
the block undoes every write made in it.

The context lives in a :class:`~contextvars.ContextVar` holding a chain of layers, so it follows
each task coroutine (and sync tasks into their worker threads), never leaks between concurrent
runs, and adding a layer never copies the ones below it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._typing import FlowBuilder

__all__ = ("Context", "context", "TaskScope", "active_flow", "current", "layered")

_EMPTY: Mapping[str, Any] = {}
_current: ContextVar[Mapping[str, Any]] = ContextVar("asyncflow.context", default=_EMPTY)


def current() -> Mapping[str, Any]:
    """The mapping in force for the running code (empty outside a run and any block)."""
    return _current.get()


def layered(top: Mapping[str, Any], below: Mapping[str, Any]) -> Mapping[str, Any]:
    """``top``'s keys over ``below``'s, without copying either (``top`` itself if nothing below).

    This is how a run puts its own keys over the caller's context.
    """
    return TaskScope(top, below) if below else top


class TaskScope(Mapping[str, Any]):
    """One layer of keys over the layers below (a task run's keys over its flow run's).

    Built once per attempt on the engine's hot path, hence slots and no copying of the parent.
    """

    __slots__ = ("_local", "_parent")

    def __init__(self, local: Mapping[str, Any], parent: Mapping[str, Any]) -> None:
        self._local = local
        self._parent = parent

    def __getitem__(self, key: str) -> Any:
        try:
            return self._local[key]
        except KeyError:
            return self._parent[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` in the nearest layer that has it, else ``default``."""
        # Without the KeyErrors Mapping.get would raise and catch at every layer: tasks
        # read the context while they are created and bound.
        local = self._local
        if key in local:
            return local[key]
        return self._parent.get(key, default)

    def __iter__(self) -> Iterator[str]:
        yield from self._local
        yield from (k for k in self._parent if k not in self._local)

    def __len__(self) -> int:
        return len(self._local.keys() | self._parent.keys())


class _Written(TaskScope):
    """The keys written with assignment, ``update`` or ``setdefault`` at one level."""

    __slots__ = ()


class Context:
    """The current run context (the object behind ``asyncflow.context``).

    Reads: ``context.key``, ``context["key"]``, ``context.get(key, default)``, ``key in
    context``, iteration, ``to_dict()``. Writes: ``context.key = value``, ``context["key"] =
    value``, ``update(...)``, ``setdefault(...)``; a write lasts until the enclosing ``with
    context(...)`` block (or task run) ends.
    """

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        return _current.get().get(key, default)

    def __getattr__(self, key: str) -> Any:
        try:
            return _current.get()[key]
        except KeyError:
            raise AttributeError(f"context has no key {key!r}") from None

    def __getitem__(self, key: str) -> Any:
        return _current.get()[key]

    def __contains__(self, key: object) -> bool:
        return key in _current.get()

    def __iter__(self) -> Iterator[str]:
        return iter(_current.get())

    def __len__(self) -> int:
        return len(_current.get())

    def keys(self) -> list[str]:
        """The keys in force."""
        return list(_current.get())

    def items(self) -> list[tuple[str, Any]]:
        """The ``(key, value)`` pairs in force."""
        return list(_current.get().items())

    def to_dict(self) -> dict[str, Any]:
        """A plain copy of every key in force."""
        return dict(_current.get())

    # -- writing ----------------------------------------------------------------------------

    def __setattr__(self, key: str, value: Any) -> None:
        self._write({key: value})

    def __setitem__(self, key: str, value: Any) -> None:
        self._write({key: value})

    def update(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        """Set several keys, as ``dict.update`` does."""
        self._write(dict(*args, **kwargs))

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``; if it is not set, set it to ``default`` first."""
        scope = _current.get()
        if key in scope:
            return scope[key]
        self._write({key: default})
        return default

    @staticmethod
    def _write(values: Mapping[str, Any]) -> None:
        # Writes go to a layer of their own over the current one (merged with the writes
        # already made at this level), so a block's exit, which restores the layer in force
        # before it, undoes them; the layers below are never mutated.
        top = _current.get()
        if isinstance(top, _Written):
            _current.set(_Written({**top._local, **values}, top._parent))
        else:
            _current.set(_Written(dict(values), top))

    @contextlib.contextmanager
    def __call__(self, *args: Mapping[str, Any], **kwargs: Any) -> Iterator[Context]:
        """Add keys (a mapping and/or keywords) for the duration of the block.

        Yields:
            The context itself.
        """
        token = _current.set(TaskScope(dict(*args, **kwargs), _current.get()))
        try:
            yield self
        finally:
            _current.reset(token)

    def __repr__(self) -> str:
        return f"<Context: {sorted(_current.get())}>"


#: The process-wide view of the current run context.
context = Context()


class _ActiveFlow:
    """The flow that tasks called now are added to: the context's ``flow`` key, as in 1.x.

    ``with Flow(...)`` sets it; so does ``with context(flow=f)``.
    """

    __slots__ = ()

    def get(self) -> FlowBuilder | None:
        """The active flow, or ``None`` outside ``with Flow(...)``."""
        flow: FlowBuilder | None = _current.get().get("flow")
        return flow


#: The flow that tasks called now are added to, if any.
active_flow = _ActiveFlow()
