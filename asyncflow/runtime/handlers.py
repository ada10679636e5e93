"""State handlers: called in order on every transition; they may replace the new state.

A handler is ``handler(obj, old_state, new_state)``, sync or async. A non-``None`` return value
becomes the new state for the next handler. A handler that raises ends the chain: the transition
becomes ``Failed("Unexpected error while calling state handlers: <repr> (in <name>)")`` and the
run goes on; a handler that raises a signal (``FAIL``, ``SKIP``, ``ENDRUN(state)``, ...) makes
the signal's state the transition's, as in Prefect 1.x.

Handlers and events agree: when a cancellation interrupts an async handler, the transition as
the handlers saw it so far is recorded and published (``on_interrupt``) before the cancellation
goes on, so no handler has seen a transition the bus never shows.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .. import signals
from .._log import get_logger
from ..states import Failed, State

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._typing import StateHandler

__all__ = (
    "FINAL_HANDLERS_TIMEOUT",
    "call_handlers",
    "failed_in_handler",
    "failure_callback",
    "handler_failure",
    "handler_signal",
)

#: How long an async handler may take on the final transitions of a cancelled run (which run
#: shielded from the cancellation); past it the handler is interrupted and the state stands.
FINAL_HANDLERS_TIMEOUT = 2.0

_log = get_logger("asyncflow.engine")


_FAILURE_PREFIX = "Unexpected error while calling state handlers: "


def handler_failure(handler: Any, exc: BaseException) -> Failed:
    """The state a transition becomes when ``handler`` raised ``exc``."""
    return Failed(f"{_FAILURE_PREFIX}{exc!r} (in {_name(handler)})", exc)


def failed_in_handler(state: State) -> bool:
    """Whether ``state`` is the failure of a handler that raised (never retried, as in 1.x)."""
    return isinstance(state, Failed) and (state.message or "").startswith(_FAILURE_PREFIX)


def handler_signal(handler: Any, sig: signals.AsyncflowSignal | signals.ENDRUN) -> State:
    """The state a transition settles in when ``handler`` raised the signal ``sig``."""
    state = sig.state
    if state.message is None:
        name = _name(handler)
        state = attrs.evolve(state, message=f"State handler {name} raised {sig!r}.")
    return state


def _name(handler: Any) -> str:
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None)
    return name if isinstance(name, str) else repr(handler)


async def call_handlers(
    handlers: tuple[StateHandler, ...],
    obj: Any,
    old: State,
    new: State,
    on_interrupt: Callable[[State], Awaitable[None]] | None = None,
    bound: float | None = None,
) -> State:
    """Run ``handlers`` for ``obj`` moving ``old -> new``; return the settled new state.

    Args:
        handlers: the handlers, called in order.
        obj: the task or flow that moves.
        old: its state before.
        new: the state proposed.
        on_interrupt: awaited (shielded) with the state settled so far when a cancellation
            interrupts an async handler; the cancellation then propagates.
        bound: the most seconds an async handler may take (the final transitions of a
            cancelled run); past it, the state settled so far is returned.
    """
    for handler in handlers:
        try:
            outcome: Any = handler(obj, old, new)
            if inspect.isawaitable(outcome):
                try:
                    if bound is None:
                        outcome = await outcome
                    else:
                        with anyio.move_on_after(bound) as timer:
                            outcome = await outcome
                        if timer.cancelled_caught:
                            _log.warning(
                                "state handler interrupted after its time on a final transition",
                                handler=_name(handler),
                                subject=repr(obj),
                                bound=bound,
                            )
                            return new
                except anyio.get_cancelled_exc_class():
                    if on_interrupt is not None:
                        with anyio.CancelScope(shield=True):
                            await on_interrupt(new)
                    raise
        except (signals.AsyncflowSignal, signals.ENDRUN) as sig:
            # As in Prefect 1.x, a signal raised by a handler is the state of the transition.
            _log.info(
                "state handler raised a signal; the transition takes its state",
                handler=_name(handler),
                signal=repr(sig),
            )
            return handler_signal(handler, sig)
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
