"""The Prefect 1.x state hierarchy, as frozen values.

A state says where a task run or flow run is, with an optional human message and a result. States
never change: the engine moves a run to a *new* state (use :func:`attrs.evolve` to derive one).
The class tree is exactly Prefect 1.x's, because users' ``isinstance`` checks and ``is_*``
predicates depend on it::

    State
    ├── Pending ── Scheduled ── {Paused, Resume, Retrying}
    ├── Running ── Cancelling
    └── Finished
        ├── Success ── {Cached, Mapped, Skipped}
        ├── Failed ── {TimedOut, TriggerFailed, ValidationFailed}
        ├── Cancelled
        └── Looped

``repr`` follows the seed document: ``Success("Task run succeeded.")``, ``Pending()``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import attrs

__all__ = (
    "State",
    "Pending",
    "Scheduled",
    "Paused",
    "Resume",
    "Retrying",
    "Running",
    "Cancelling",
    "Finished",
    "Success",
    "Cached",
    "Mapped",
    "Skipped",
    "Failed",
    "TimedOut",
    "TriggerFailed",
    "ValidationFailed",
    "Cancelled",
    "Looped",
)


_T = TypeVar("_T", bound=type)


def _state(cls: _T) -> _T:
    """A frozen attrs class that compares by value and hashes by identity.

    States hold arbitrary results (lists, dicts), so a value hash would fail; Prefect 1.x
    states hash by identity too.
    """
    new = attrs.frozen(repr=False, hash=False)(cls)
    new.__hash__ = object.__hash__  # type: ignore[assignment]
    return new  # type: ignore[no-any-return]


@_state
class State:
    """Base class of every state.

    Args:
        message: a human-readable explanation of the state.
        result: the value the state carries (a task's return value, or the exception of a
            failure, or the signal that produced it).
        context: extra keys merged into the run context when the run resumes from this state.
        cached_inputs: the inputs a task run saw, kept for restarts and caching.
    """

    message: str | None = None
    result: Any = None
    context: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    cached_inputs: dict[str, Any] | None = attrs.field(default=None, kw_only=True)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f'{name}("{self.message}")' if self.message is not None else f"{name}()"

    def is_pending(self) -> bool:
        """True for :class:`Pending` and its subclasses (scheduled, paused, retrying)."""
        return isinstance(self, Pending)

    def is_scheduled(self) -> bool:
        """True for :class:`Scheduled` and its subclasses."""
        return isinstance(self, Scheduled)

    def is_paused(self) -> bool:
        """True for :class:`Paused`."""
        return isinstance(self, Paused)

    def is_retrying(self) -> bool:
        """True for :class:`Retrying`."""
        return isinstance(self, Retrying)

    def is_running(self) -> bool:
        """True for :class:`Running` and :class:`Cancelling`."""
        return isinstance(self, Running)

    def is_finished(self) -> bool:
        """True for every :class:`Finished` state."""
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        """True for :class:`Success` and its subclasses (cached, mapped, skipped)."""
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        """True for :class:`Failed` and its subclasses."""
        return isinstance(self, Failed)

    def is_skipped(self) -> bool:
        """True for :class:`Skipped`."""
        return isinstance(self, Skipped)

    def is_cached(self) -> bool:
        """True for :class:`Cached`."""
        return isinstance(self, Cached)

    def is_mapped(self) -> bool:
        """True for :class:`Mapped`."""
        return isinstance(self, Mapped)

    def is_looped(self) -> bool:
        """True for :class:`Looped`."""
        return isinstance(self, Looped)

    def is_cancelled(self) -> bool:
        """True for :class:`Cancelled`."""
        return isinstance(self, Cancelled)


@_state
class Pending(State):
    """Not yet run."""


@_state
class Scheduled(Pending):
    """Due to run at ``start_time`` (``None`` means now)."""

    start_time: datetime | None = attrs.field(default=None, kw_only=True)


@_state
class Paused(Scheduled):
    """Waiting for an explicit resume (manual approval)."""


@_state
class Resume(Scheduled):
    """Approved to run after a pause."""


@_state
class Retrying(Scheduled):
    """Failed, and due to run again at ``start_time``; ``run_count`` attempts have been made."""

    run_count: int = attrs.field(default=1, kw_only=True)


@_state
class Running(State):
    """Running now."""


@_state
class Cancelling(Running):
    """Asked to stop; finishing its cancellation."""


@_state
class Finished(State):
    """Done, for good or ill."""


@_state
class Success(Finished):
    """Finished without error; ``result`` is the return value."""


@_state
class Cached(Success):
    """Finished by reusing an earlier result."""

    cached_parameters: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    cached_result_expiration: datetime | None = attrs.field(default=None, kw_only=True)


@_state
class Mapped(Success):
    """A mapped parent: its children's states are in ``map_states``."""

    map_states: list[State] = attrs.field(factory=list, kw_only=True)

    @property
    def n_map_states(self) -> int:
        """How many children the map produced."""
        return len(self.map_states)


@_state
class Skipped(Success):
    """Not run on purpose (an upstream skip or a ``SKIP`` signal)."""


@_state
class Failed(Finished):
    """Finished with an error; ``result`` is the exception (or signal)."""


@_state
class TimedOut(Failed):
    """Stopped at its deadline."""


@_state
class TriggerFailed(Failed):
    """Not run because its trigger refused the upstream states."""


@_state
class ValidationFailed(Failed):
    """Its result failed validation."""


@_state
class Cancelled(Finished):
    """Stopped by a cancellation of the run."""


@_state
class Looped(Finished):
    """One iteration of a ``LOOP`` finished; the next starts with ``loop_count + 1``."""

    loop_count: int = attrs.field(default=1, kw_only=True)
