"""Signals: exceptions that task code raises to choose its own state.

``raise signals.FAIL("a equaled b!")`` ends the task ``Failed("a equaled b!")``. Every signal
subclasses :class:`BaseException`, so a user's ``except Exception`` cannot swallow it, and the
engine always catches it inside the per-task wrapper. A signal's state carries the signal itself
as ``result`` unless ``result=`` is given, so attributes set on the signal after it is created
(``sig.flag = True``) are visible to state handlers as ``new_state.result.flag``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from . import states

__all__ = (
    "AsyncflowSignal",
    "ENDRUN",
    "FAIL",
    "LOOP",
    "PAUSE",
    "RETRY",
    "SKIP",
    "SUCCESS",
    "TRIGGERFAIL",
    "VALIDATIONFAIL",
)

_NO_RESULT: Any = object()


class AsyncflowSignal(BaseException):
    """Base class of the state signals.

    Args:
        message: the message of the resulting state.
        result: the result of the resulting state (default: the signal itself).
        **state_kwargs: further fields of the state (e.g. ``start_time`` for ``RETRY``).
    """

    _state_cls: ClassVar[type[states.State]] = states.State

    def __init__(
        self, message: str | None = None, *, result: Any = _NO_RESULT, **state_kwargs: Any
    ) -> None:
        super().__init__(message) if message is not None else super().__init__()
        self.message = message
        self.start_time_given = "start_time" in state_kwargs
        # The state is made at once, as in Prefect 1.x: a keyword the state does not have is
        # refused here, where the signal is raised, not in the middle of the run.
        fields = {f.name for f in attrs.fields(self._state_cls)} - {"message", "result"}
        unknown = sorted(state_kwargs.keys() - fields)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}; "
                f"its {self._state_cls.__name__} state takes {sorted(fields)}"
            )
        #: The state this signal puts its task in.
        self.state: states.State = self._state_cls(
            message, self if result is _NO_RESULT else result, **state_kwargs
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r})"
            if self.message
            else f"{type(self).__name__}()"
        )


class FAIL(AsyncflowSignal):
    """End the task ``Failed``; retries apply as for any failure."""

    _state_cls = states.Failed


class TRIGGERFAIL(FAIL):
    """End the task ``TriggerFailed`` (raised by triggers)."""

    _state_cls = states.TriggerFailed


class VALIDATIONFAIL(FAIL):
    """End the task ``ValidationFailed``."""

    _state_cls = states.ValidationFailed


class SUCCESS(AsyncflowSignal):
    """End the task ``Success`` at once."""

    _state_cls = states.Success


class SKIP(AsyncflowSignal):
    """End the task ``Skipped``; downstream tasks skip too (see ``skip_on_upstream_skip``)."""

    _state_cls = states.Skipped


class RETRY(AsyncflowSignal):
    """Retry the task now (or at ``start_time``), whatever ``max_retries`` says."""

    _state_cls = states.Retrying


class LOOP(AsyncflowSignal):
    """Run the task again with ``context.task_loop_result`` set to ``result``."""

    _state_cls = states.Looped


class PAUSE(AsyncflowSignal):
    """Put the task in ``Paused`` until the run is told to resume it."""

    _state_cls = states.Paused


class ENDRUN(BaseException):
    """End the task run in exactly ``state`` (no retries, no further handling)."""

    def __init__(self, state: states.State) -> None:
        super().__init__(state)
        self.state = state
