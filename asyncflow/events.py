"""The event every state transition becomes: :class:`StateChange`.

Events are immutable values; the bus hands the same object to every subscriber.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .states import State

__all__ = ("StateChange",)


@attrs.frozen
class StateChange:
    """One transition of one task run or flow run.

    Attributes:
        run_id: the flow run's id.
        seq: position of the event in its flow run, strictly increasing from 1.
        timestamp: when the transition was recorded (seconds, from the run's clock).
        flow_name: the flow's name.
        task_name: the task's name, or ``None`` for the flow run's own transitions.
        task_run_id: the task run's id, or ``None`` for the flow.
        map_index: the child's index for a mapped child, else ``None``.
        old_state: the state before the transition.
        new_state: the state after it, as settled by the state handlers.
        subject: the object that moved (the ``Task`` or the ``Flow``).
    """

    run_id: str
    seq: int
    timestamp: float
    flow_name: str
    task_name: str | None
    task_run_id: str | None
    map_index: int | None
    old_state: State
    new_state: State
    subject: Any = attrs.field(eq=False, repr=False)

    @property
    def is_flow_event(self) -> bool:
        """True for the flow run's own transitions."""
        return self.task_name is None
