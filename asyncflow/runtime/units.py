"""``Unit``: one schedulable task run — a task, or one mapped child of it.

The scheduler's ready queue, worker loop, retries and transitions all work on units, so a
mapped child has exactly the life of a task: its own states, retries, handlers and events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from ..states import State
    from .mapping import MapRun
    from .spec import TaskSpec

__all__ = ("Unit",)


class Unit:
    """Bookkeeping of one task run (identity matters; never copied)."""

    __slots__ = (
        "done",
        "finalizing",
        "loop",
        "map_index",
        "mapping",
        "not_before",
        "parent",
        "pending",
        "resumed",
        "run_count",
        "run_id",
        "spec",
        "state",
    )

    def __init__(
        self, spec: TaskSpec, state: State, run_id: str, map_index: int | None = None
    ) -> None:
        self.spec = spec
        self.map_index = map_index
        self.state = state
        self.run_id = run_id
        self.run_count = 0
        self.loop: tuple[int, Any] | None = None  # (loop_count, loop_result) after a LOOP
        self.done = False
        self.resumed = False
        self.pending = 0  # children: per-index upstream children not yet done
        self.parent: MapRun | None = None  # children: the map they belong to
        self.mapping: MapRun | None = None  # mapped parents: their children, once expanded
        self.finalizing = False  # mapped parents: all children done, Mapped state due
        #: Given a ``Scheduled`` (or ``Retrying``) state with a start time: not run before it.
        self.not_before: datetime | None = None

    def __repr__(self) -> str:
        index = "" if self.map_index is None else f"[{self.map_index}]"
        return f"<Unit {self.spec.name}{index}: {self.state!r}>"
