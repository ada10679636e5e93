"""State handlers: called in order on every transition; they may replace the new state.

A handler is ``handler(obj, old_state, new_state)``, sync or async. A non-``None`` return value
becomes the new state for the next handler. A handler that raises ends the chain: the transition
becomes ``Failed("Unexpected error while calling state handlers: <repr> (in <name>)")`` and the
run goes on; a handler that raises a signal (``FAIL``, ``SKIP``, ``ENDRUN(state)``, ...) makes
the signal's state the transition's, as in Prefect 1.x.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from .. import signals
from .._log import get_logger
from ..states import Failed, State

if TYPE_CHECKING:
    from .._typing import StateHandler

__all__ = ("call_handlers", "failed_in_handler", "failure_callback", "handler_failure")

_log = get_logger("asyncflow.engine")


_FAILURE_PREFIX = "Unexpected error while calling state handlers: "


def handler_failure(handler: Any, exc: BaseException) -> Failed:
    """The state a transition becomes when ``handler`` raised ``exc``."""
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", repr(handler))
    return Failed(f"{_FAILURE_PREFIX}{exc!r} (in {name})", exc)


def failed_in_handler(state: State) -> bool:
    """Whether ``state`` is the failure of a handler that raised (never retried, as in 1.x)."""
    return isinstance(state, Failed) and (state.message or "").startswith(_FAILURE_PREFIX)


async def call_handlers(
    handlers: tuple[StateHandler, ...], obj: Any, old: State, new: State
) -> State:
    """Run ``handlers`` for ``obj`` moving ``old -> new``; return the settled new state."""
    for handler in handlers:
        try:
            outcome: Any = handler(obj, old, new)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except (signals.AsyncflowSignal, signals.ENDRUN) as sig:
            # As in Prefect 1.x, a signal raised by a handler is the state of the transition.
            return sig.state
        except Exception as exc:
            _log.error(
                "state handler raised; the transition becomes Failed",
                handler=getattr(handler, "__qualname__", repr(handler)),
                subject=repr(obj),
                exc_info=exc,
            )
            return handler_failure(handler, exc)
        if outcome is not None:
            if not isinstance(outcome, State):
                wrong = TypeError(
                    f"state handler returned {outcome!r}; it must return a State or None"
                )
                return handler_failure(handler, wrong)
            new = outcome
    return new


def failure_callback(fn: Any) -> StateHandler:
    """A state handler that calls ``fn(obj, new_state)`` when ``new_state`` is failed."""

    async def on_failure(obj: Any, old: State, new: State) -> None:
        if new.is_failed():
            outcome = fn(obj, new)
            if inspect.isawaitable(outcome):
                await outcome

    on_failure.__qualname__ = f"on_failure({getattr(fn, '__qualname__', repr(fn))})"
    return on_failure
