"""``StoreResult``: a task value checkpointed into a run store.

A run given ``store=`` keeps the return value of each task that has no Result of its own in the
store itself, pickled, in the same transaction as the task's final state. The state's
``checkpoint`` is then a :class:`StoreResult` whose ``location`` is the task run's id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..results.base import Result

if TYPE_CHECKING:
    from .base import Store

__all__ = ("StoreResult",)


class StoreResult(Result):
    """A value kept in a run store at ``location``.

    Args:
        value: the value.
        location: where the store keeps it (the task run's id).
        store: the store.
    """

    def __init__(self, value: Any = None, location: str | None = None, *, store: Store) -> None:
        super().__init__(value, location)
        self.store = store

    def __repr__(self) -> str:
        return f"<StoreResult: {self.location} in {self.store.where}>"

    def exists(self, location: str, **kwargs: Any) -> bool:
        """Whether the store holds a value at ``location`` (blocks: call it in a thread)."""
        return location in self.store.read_values([location])

    def read(self, location: str) -> Result:
        """A copy holding the value stored at ``location`` (blocks: call it in a thread).

        Raises:
            KeyError: the store holds no value there.
        """
        values = self.store.read_values([location])
        if location not in values:
            raise KeyError(f"no checkpointed value at {location!r} in {self.store.where}")
        new = self.copy()
        new.value, new.location = values[location], location
        return new
