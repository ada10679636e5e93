"""Edges of the task graph, and the markers that change how a value is passed along one.

An :class:`Edge` says that ``downstream_task`` depends on ``upstream_task``, optionally receiving
its result as the keyword argument ``key``. ``mapped`` edges fan out (one child per item);
``unmapped(x)`` and ``flatten(x)`` mark a value when calling ``task.map(...)``.
"""

from __future__ import annotations

import keyword
from typing import TYPE_CHECKING, Any

import attrs

from .exceptions import EdgeError

if TYPE_CHECKING:
    from .task import Task

__all__ = ("Edge", "unmapped", "flatten")


@attrs.frozen(eq=False, repr=False, init=False)
class Edge:
    """A dependency ``upstream_task -> downstream_task``.

    Args:
        upstream_task: the task that must finish first; wrapped in :class:`unmapped` or
            :class:`flatten`, the marker decides ``mapped`` / ``flattened`` (over the flags).
        downstream_task: the task that waits for it.
        key: the keyword argument of ``downstream_task.run`` that receives the upstream result,
            or ``None`` for a pure ordering dependency.
        mapped: the downstream task maps over the upstream result.
        flattened: the upstream result (a list of lists) is flattened first.

    Raises:
        ValueError: the edge joins a task to itself, or ``key`` is not a valid identifier
            (an :class:`~asyncflow.exceptions.EdgeError`), as in Prefect 1.x.
    """

    upstream_task: Task
    downstream_task: Task
    key: str | None
    mapped: bool
    flattened: bool

    def __init__(
        self,
        upstream_task: Any,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
    ) -> None:
        while isinstance(upstream_task, unmapped | flatten):  # markers may nest
            if isinstance(upstream_task, unmapped):
                mapped = False
            else:
                flattened = True
            upstream_task = upstream_task.value
        if upstream_task is downstream_task:
            raise EdgeError(f"an edge cannot join {upstream_task!r} to itself")
        if key is not None and not (
            isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)
        ):
            raise EdgeError(f"edge key {key!r} (to {downstream_task!r}) is not a valid identifier")
        self.__attrs_init__(upstream_task, downstream_task, key, mapped, flattened)

    @property
    def tasks(self) -> set[Task]:
        """Both ends of the edge."""
        return {self.upstream_task, self.downstream_task}

    def _key(self) -> tuple[int, int, str | None, bool, bool]:
        return (
            id(self.upstream_task),
            id(self.downstream_task),
            self.key,
            self.mapped,
            self.flattened,
        )

    def __eq__(self, other: object) -> bool:
        # Tasks compare by identity, so an edge compares by the identities it joins.
        return isinstance(other, Edge) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        key = f" (key={self.key})" if self.key else ""
        return f"<Edge{key}: {self.upstream_task.name} to {self.downstream_task.name}>"


@attrs.frozen
class unmapped:
    """Pass ``value`` whole to every mapped child instead of mapping over it."""

    value: Any


@attrs.frozen
class flatten:
    """Map over the concatenation of ``value``'s items (a list of lists becomes one list)."""

    value: Any
