"""One attempt of one task: call its code, under its timeout, and turn the outcome into a State.

Signals and errors raised by the task become states here (they never escape into a task
group); only cancellation and interpreter-level exits (``KeyboardInterrupt``) propagate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.lowlevel

from .. import signals
from ..states import State, TimedOut
from .pipeline import state_from_exception, success

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..clock import Clock
    from .executors import Executor
    from .spec import TaskSpec

__all__ = ("TIMED_OUT_MESSAGE", "EndRun", "run_attempt")

TIMED_OUT_MESSAGE = "Task timed out during execution."
_CATCH = (Exception, signals.AsyncflowSignal)


class EndRun(NamedTuple):
    """The task raised ``ENDRUN(state)``: end in exactly ``state``, with no retry."""

    state: State


async def run_attempt(
    spec: TaskSpec, inputs: Mapping[str, Any], executor: Executor, clock: Clock
) -> State | EndRun:
    """Run ``spec``'s code once with ``inputs``; return the state it ends in."""
    try:
        if spec.timeout is None:
            if spec.is_async and executor.runs_async_inline:
                value = await spec.fn(**inputs)
            else:
                value = await executor.submit(spec.fn, inputs, name=spec.name)
                # A thread cannot be interrupted: when the run was cancelled while it ran,
                # the call is waited for, and then the task still ends Cancelled.
                await anyio.lowlevel.checkpoint_if_cancelled()
        else:
            return await _run_with_timeout(spec, inputs, executor, clock)
    except _CATCH as exc:
        return state_from_exception(exc)
    except signals.ENDRUN as end:
        return EndRun(end.state)
    return success(value)


async def _call(spec: TaskSpec, inputs: Mapping[str, Any], executor: Executor) -> Any:
    if spec.is_async and executor.runs_async_inline:
        return await spec.fn(**inputs)
    # A sync call in a thread cannot be interrupted: at the deadline it is abandoned and
    # finishes on its own; its result is then discarded.
    return await executor.submit(spec.fn, inputs, abandon_on_cancel=True, name=spec.name)


async def _run_with_timeout(
    spec: TaskSpec, inputs: Mapping[str, Any], executor: Executor, clock: Clock
) -> State | EndRun:
    assert spec.timeout is not None
    error = TimeoutError(f"Task {spec.name!r} timed out after {spec.timeout:g} seconds")
    if not clock.autojump:
        with anyio.move_on_after(spec.timeout) as scope:
            try:
                value = await _call(spec, inputs, executor)
            except _CATCH as exc:
                return state_from_exception(exc)
            except signals.ENDRUN as end:
                return EndRun(end.state)
        if scope.cancelled_caught:
            return TimedOut(TIMED_OUT_MESSAGE, error)
        return success(value)

    # A fake clock: a watcher sleeps on it and cancels the call at the deadline.
    outcome: list[State | EndRun] = []
    deadline = clock.now() + spec.timeout

    async def watch(scope: anyio.CancelScope) -> None:
        await clock.sleep_until(deadline)
        outcome.append(TimedOut(TIMED_OUT_MESSAGE, error))
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:
            value = await _call(spec, inputs, executor)
        except _CATCH as exc:
            outcome.append(state_from_exception(exc))
        except signals.ENDRUN as end:
            outcome.append(EndRun(end.state))
        else:
            outcome.append(success(value))
        tg.cancel_scope.cancel()
    return outcome[0]
