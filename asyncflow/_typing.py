"""Protocols shared across layers: what a state handler and a flow builder look like.

Kept at the bottom layer so that any module can name these shapes without importing the
modules that implement them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Mapping

    from .states import State
    from .task import Task

__all__ = ("FlowBuilder", "StateHandler")


class StateHandler(Protocol):
    """``handler(obj, old_state, new_state)``: return a replacement state or ``None``.

    May be a plain function or a coroutine function; ``obj`` is the ``Task`` or ``Flow``.
    """

    def __call__(
        self, obj: Any, old_state: State, new_state: State, /
    ) -> State | Awaitable[State | None] | None: ...


class FlowBuilder(Protocol):
    """The part of ``Flow`` that tasks need while a graph is being built."""

    name: str

    @property
    def tasks(self) -> set[Task]: ...

    def upstream_tasks(self, task: Task) -> set[Task]: ...

    def add_task(self, task: Task) -> Task: ...

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: Mapping[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None: ...

    def add_edge(
        self,
        upstream_task: Any,
        downstream_task: Any,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
        validate: bool | None = None,
    ) -> Any: ...
