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

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .results.base import Result

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


# As in Prefect 1.x: the message, the context and the Result the value went through (1.x's
# ``_result``) take no part in equality.
_NOT_COMPARED = frozenset({"message", "context", "checkpoint"})


@attrs.frozen(repr=False, eq=False)
class State:
    """Base class of every state.

    Equality is Prefect 1.x's: two states are equal when they have the same class and equal
    fields, the message and the context aside.

    Attributes:
        message: a human-readable explanation of the state.
        result: the value the state carries (a task's return value, or the exception of a
            failure, or the signal that produced it).
        context: extra keys merged into the run context when the run resumes from this state
            (a new empty dict by default).
        cached_inputs: the inputs a task run saw, kept for restarts and caching.
        checkpoint: the :class:`~asyncflow.engine.result.Result` the value was written
            through (or read back from), with its ``location``; ``None`` when nothing was
            persisted.
    """

    message: str | None = None
    result: Any = None
    context: dict[str, Any] = attrs.field(factory=dict, kw_only=True)
    cached_inputs: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    checkpoint: Result | None = attrs.field(default=None, kw_only=True)

    def __eq__(self, other: object) -> bool:
        # By value, within one class, as in Prefect 1.x: the message and the context do not
        # count. Written by hand (not by attrs) so that every subclass inherits it together
        # with the identity hash below.
        if type(self) is not type(other):
            return NotImplemented
        return all(
            getattr(self, f.name) == getattr(other, f.name)
            for f in attrs.fields(type(self))
            if f.name not in _NOT_COMPARED
        )

    # States hold arbitrary results (lists, dicts), so a value hash would fail; like Prefect
    # 1.x states, they hash by identity.
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        name = type(self).__name__
        return f'{name}("{self.message}")' if self.message is not None else f"{name}()"

    @property
    def location(self) -> str | None:
        """Where the value was checkpointed (``None`` when nothing was written)."""
        return self.checkpoint.location if self.checkpoint is not None else None

    def load_result(self, result: Result | None = None) -> State:
        """This state with its value read back from its location.

        Args:
            result: the Result to read with (default: the state's own ``checkpoint``).

        Returns:
            A new state holding the value (and the Result it was read with); this state
            itself when it has no location or already holds a value.
        """
        reader = result if result is not None else self.checkpoint
        location = self.location
        if self.result is not None or location is None or reader is None:
            return self
        loaded = reader.read(location)
        return attrs.evolve(self, result=loaded.value, checkpoint=loaded)

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


@attrs.frozen(repr=False, eq=False)
class Pending(State):
    """Not yet run."""


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(repr=False, eq=False)
class Scheduled(Pending):
    """Due to run at ``start_time`` (by default now, in UTC, as in Prefect 1.x)."""

    start_time: datetime | None = attrs.field(factory=_now, kw_only=True)


@attrs.frozen(repr=False, eq=False)
class Paused(Scheduled):
    """Waiting for an explicit resume (manual approval), or until ``start_time`` if given."""

    start_time: datetime | None = attrs.field(default=None, kw_only=True)


@attrs.frozen(repr=False, eq=False)
class Resume(Scheduled):
    """Approved to run after a pause."""


@attrs.frozen(repr=False, eq=False)
class Retrying(Scheduled):
    """Failed, and due to run again at ``start_time``; ``run_count`` attempts have been made."""

    run_count: int = attrs.field(default=1, kw_only=True)


@attrs.frozen(repr=False, eq=False)
class Running(State):
    """Running now."""


@attrs.frozen(repr=False, eq=False)
class Cancelling(Running):
    """Asked to stop; finishing its cancellation."""


@attrs.frozen(repr=False, eq=False)
class Finished(State):
    """Done, for good or ill."""


@attrs.frozen(repr=False, eq=False)
class Success(Finished):
    """Finished without error; ``result`` is the return value."""


@attrs.frozen(repr=False, eq=False)
class Cached(Success):
    """Finished by reusing an earlier result."""

    cached_parameters: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    cached_result_expiration: datetime | None = attrs.field(default=None, kw_only=True)
    hashed_inputs: dict[str, str] | None = attrs.field(default=None, kw_only=True)


@attrs.frozen(repr=False, eq=False)
class Mapped(Success):
    """A mapped parent: its children's states are in ``map_states``."""

    map_states: list[State] = attrs.field(factory=list, kw_only=True)

    @property
    def n_map_states(self) -> int:
        """How many children the map produced."""
        return len(self.map_states)


@attrs.frozen(repr=False, eq=False)
class Skipped(Success):
    """Not run on purpose (an upstream skip or a ``SKIP`` signal)."""


@attrs.frozen(repr=False, eq=False)
class Failed(Finished):
    """Finished with an error; ``result`` is the exception (or signal)."""


@attrs.frozen(repr=False, eq=False)
class TimedOut(Failed):
    """Stopped at its deadline."""


@attrs.frozen(repr=False, eq=False)
class TriggerFailed(Failed):
    """Not run because its trigger refused the upstream states."""


@attrs.frozen(repr=False, eq=False)
class ValidationFailed(Failed):
    """Its result failed validation."""


@attrs.frozen(repr=False, eq=False)
class Cancelled(Finished):
    """Stopped by a cancellation of the run."""


@attrs.frozen(repr=False, eq=False)
class Looped(Finished):
    """One iteration of a ``LOOP`` finished; the next starts with ``loop_count + 1``."""

    loop_count: int = attrs.field(default=1, kw_only=True)
