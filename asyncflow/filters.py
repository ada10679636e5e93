"""Event filters: predicates over :class:`~asyncflow.events.StateChange` for bus subscribers.

Any ``event -> bool`` callable filters events; :class:`EventFilter` adds ``&``, ``|`` and ``~``,
and :func:`by_flow`, :func:`by_task`, :func:`by_state`, :func:`by_run` cover the common cases
("tell me about every ``Failed``": ``by_state(Failed)``). Re-exported by :mod:`asyncflow.bus`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from .events import StateChange
    from .states import State

__all__ = ("EventFilter", "by_flow", "by_run", "by_state", "by_task")


class EventFilter:
    """A predicate over events that combines with ``&``, ``|`` and ``~``."""

    __slots__ = ("_label", "_predicate")

    def __init__(self, predicate: Callable[[StateChange], bool], label: str = "filter") -> None:
        self._predicate = predicate
        self._label = label

    def __call__(self, event: StateChange) -> bool:
        return self._predicate(event)

    def __and__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: self(e) and other(e), f"({self._label} & {_label(other)})")

    def __or__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: self(e) or other(e), f"({self._label} | {_label(other)})")

    def __rand__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: other(e) and self(e), f"({_label(other)} & {self._label})")

    def __ror__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: other(e) or self(e), f"({_label(other)} | {self._label})")

    def __invert__(self) -> EventFilter:
        return EventFilter(lambda e: not self(e), f"~{self._label}")

    def __repr__(self) -> str:
        return f"<EventFilter {self._label}>"


def _label(f: Callable[..., Any]) -> str:
    return f._label if isinstance(f, EventFilter) else getattr(f, "__name__", repr(f))


def by_flow(name: str) -> EventFilter:
    """Events of flows named ``name``."""
    return EventFilter(lambda e: e.flow_name == name, f"by_flow({name!r})")


def by_task(name: str) -> EventFilter:
    """Events of tasks named ``name`` (flow transitions excluded)."""
    return EventFilter(lambda e: e.task_name == name, f"by_task({name!r})")


def by_state(*state_classes: type[State]) -> EventFilter:
    """Events whose new state is an instance of one of ``state_classes`` (subclasses count)."""
    if not state_classes:
        raise TypeError("by_state() needs at least one State class")
    names = ", ".join(c.__name__ for c in state_classes)
    return EventFilter(lambda e: isinstance(e.new_state, state_classes), f"by_state({names})")


def by_run(run_id: str) -> EventFilter:
    """Events of the flow run ``run_id``."""
    return EventFilter(lambda e: e.run_id == run_id, f"by_run({run_id!r})")
