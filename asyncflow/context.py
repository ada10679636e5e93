"""The run context that task code reads: ``asyncflow.context``.

Inside a task, ``context.flow_name``, ``context.get("task_run_count")``, ``context.logger`` and
the other Prefect 1.x keys describe the current run. The context lives in a
:class:`~contextvars.ContextVar`, so it follows each task coroutine (and sync tasks into their
worker threads) and never leaks between concurrent runs. The engine sets it; user code reads it.
``with context(key=value):`` adds keys for the code inside the block (handy in tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

__all__ = ("Context", "context", "TaskScope", "current")

_EMPTY: Mapping[str, Any] = {}
_current: ContextVar[Mapping[str, Any]] = ContextVar("asyncflow.context", default=_EMPTY)


def current() -> Mapping[str, Any]:
    """The mapping in force for the running code (empty outside a run)."""
    return _current.get()


class TaskScope(Mapping[str, Any]):
    """The keys of one task run, falling back to the keys of its flow run.

    Built once per attempt on the engine's hot path, hence slots and no copying of the parent.
    """

    __slots__ = ("_local", "_parent")

    def __init__(self, local: dict[str, Any], parent: Mapping[str, Any]) -> None:
        self._local = local
        self._parent = parent

    def __getitem__(self, key: str) -> Any:
        try:
            return self._local[key]
        except KeyError:
            return self._parent[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._local
        yield from (k for k in self._parent if k not in self._local)

    def __len__(self) -> int:
        return len(self._local.keys() | self._parent.keys())


class Context:
    """Read-only view of the current run context (the object behind ``asyncflow.context``)."""

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        return _current.get().get(key, default)

    def __getattr__(self, key: str) -> Any:
        try:
            return _current.get()[key]
        except KeyError:
            raise AttributeError(f"context has no key {key!r} (outside a run?)") from None

    def __getitem__(self, key: str) -> Any:
        return _current.get()[key]

    def __contains__(self, key: object) -> bool:
        return key in _current.get()

    def to_dict(self) -> dict[str, Any]:
        """A plain copy of every key in force."""
        return dict(_current.get())

    @contextlib.contextmanager
    def __call__(self, **values: Any) -> Iterator[None]:
        """Add ``values`` to the context for the duration of the block."""
        token = _current.set(TaskScope(values, _current.get()))
        try:
            yield
        finally:
            _current.reset(token)

    def __repr__(self) -> str:
        return f"<Context: {sorted(_current.get())}>"


#: The process-wide view of the current run context.
context = Context()
