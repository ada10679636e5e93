"""Synchronous decisions of the engine: given states and a clock reading, what comes next.

Nothing here awaits or reads the run context; each function is a plain mapping from facts to
the next :class:`~asyncflow.states.State` (or ``None`` for "go on"), unit-tested without an
event loop. The scheduler asks, then acts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from .. import signals
from ..states import (
    Cancelled,
    Failed,
    Mapped,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TriggerFailed,
    ValidationFailed,
)
from ..triggers import all_states

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ..edges import Edge
    from .spec import TaskSpec

__all__ = (
    "RUNNING",
    "all_finished",
    "SKIP_MESSAGE",
    "check_upstream",
    "final_flow_state",
    "retry_state",
    "state_from_exception",
    "success",
)

RUNNING = Running("Starting task run.")
SKIP_MESSAGE = (
    "Upstream task was skipped; if this was not the intended behavior, consider changing "
    "`skip_on_upstream_skip=False` for this task."
)
_ALL_SUCCESSFUL_FAILED = 'Trigger was "all_successful" but some of the upstream tasks failed.'


def success(value: Any) -> Success:
    """The state of a run that returned ``value``."""
    return Success("Task run succeeded.", value)


def all_finished(states: Iterable[State]) -> bool:
    """Whether every state (and every child of a ``Mapped`` one) is finished."""
    return all(
        s.is_finished() and (not isinstance(s, Mapped) or all_finished(s.map_states))
        for s in states
    )


#: :func:`check_default` could not decide: an upstream state is mapped (use check_upstream).
GENERAL: Any = object()
#: An upstream task has not finished (it is paused with nobody to resume it): do nothing.
WAIT: Any = object()


def check_default(spec: TaskSpec, states: Iterable[State]) -> State | None:
    """:func:`check_upstream` for the default trigger, without an Edge -> State mapping.

    The hot path of most tasks. Returns ``None`` to run, a state to end in, :data:`WAIT` when
    an upstream task is not finished, or :data:`GENERAL` when a mapped upstream needs the
    general path.
    """
    unfinished = skipped = failed = False
    for s in states:
        if type(s) is Success:  # by far the most common: decide nothing
            continue
        if isinstance(s, Mapped):
            return GENERAL  # type: ignore[no-any-return]
        if not s.is_finished():
            unfinished = True
        elif s.is_skipped():
            skipped = True
        elif not s.is_successful():
            failed = True
    if unfinished:
        return WAIT  # type: ignore[no-any-return]
    if skipped and spec.skip_on_upstream_skip:
        return Skipped(SKIP_MESSAGE)
    if failed:
        return signals.TRIGGERFAIL(_ALL_SUCCESSFUL_FAILED).state
    return None


def check_upstream(
    spec: TaskSpec, upstream_states: Mapping[Edge, State], resumed: bool = False
) -> State | None:
    """Decide, from the finished upstream states, whether the task runs.

    Returns ``None`` to run, or the state the task ends in without running: ``Skipped`` for
    an upstream skip, ``TriggerFailed`` when the trigger refuses, or the state of a signal the
    trigger raised (``Paused`` for ``manual_only``). A resumed task skips its trigger.
    """
    states: Iterable[State] = upstream_states.values()
    if any(isinstance(s, Mapped) for s in states):
        states = all_states(upstream_states)  # judge a mapped upstream by its children
    if spec.skip_on_upstream_skip and any(s.is_skipped() for s in states):
        return Skipped(SKIP_MESSAGE)
    if resumed:
        return None
    trigger = spec.trigger
    if trigger is None:  # the default, inlined: the hot path
        for s in states:
            if not s.is_successful():
                return signals.TRIGGERFAIL(_ALL_SUCCESSFUL_FAILED).state
        return None
    try:
        passed = trigger(upstream_states)
    except signals.AsyncflowSignal as sig:
        return sig.state
    except signals.ENDRUN as end:
        return end.state
    except Exception as exc:
        return TriggerFailed(f"Unexpected error while checking task trigger: {exc!r}", exc)
    if not passed:
        name = getattr(trigger, "__name__", repr(trigger))
        return TriggerFailed(f'Trigger was "{name}" but it returned False.')
    return None


NO_MAPPABLE = "No upstream states can be mapped over."
UNMAPPABLE = "At least one upstream state has an unmappable result."


def ready_to_map(
    spec: TaskSpec,
    upstream_states: Mapping[Edge, State],
    per_index_sources: bool,
    mappable: Callable[[Any], bool],
) -> State:
    """Whether a mapped parent expands (``Mapped``), skips, or fails, by Prefect 1.x's rules.

    ``upstream_states`` leaves out the mapped tasks mapped over index by index (there are
    some when ``per_index_sources``). A ``Mapped`` upstream counts by its children only
    through an edge that is not mapped. The trigger is the children's business.
    """
    if spec.skip_on_upstream_skip:
        for e, s in upstream_states.items():
            group = s.map_states if isinstance(s, Mapped) and not e.mapped else (s,)
            if any(c.is_skipped() for c in group):
                return Skipped(SKIP_MESSAGE)
    if not per_index_sources and not any(
        e.mapped and s.is_successful() for e, s in upstream_states.items()
    ):
        return Failed(NO_MAPPABLE)
    for e, s in upstream_states.items():
        if e.mapped and s.is_successful() and not isinstance(s, Mapped) and not mappable(s.result):
            return Failed(UNMAPPABLE)
    return Mapped("Ready to proceed with mapping.")


def state_from_exception(exc: BaseException) -> State:
    """The state a task run ends in when its code raised ``exc`` (a signal or an error)."""
    if isinstance(exc, signals.RETRY) and not exc.start_time_given:
        # Due "now", as in Prefect 1.x: the engine reads now on the run's clock.
        return attrs.evolve(exc.state, start_time=None)  # type: ignore[call-arg]
    if isinstance(exc, signals.AsyncflowSignal):
        return exc.state
    if isinstance(exc, signals.ENDRUN):
        return exc.state
    return Failed(f"Error during execution of task: {exc!r}", exc)


def retry_state(spec: TaskSpec, state: State, run_count: int, now: float) -> Retrying | None:
    """The ``Retrying`` state that follows ``state`` after attempt ``run_count``, if any.

    Retries apply to failures of the task's own code (not to ``TriggerFailed`` or
    ``ValidationFailed``), while attempts remain, and, with ``retry_on``, only to those
    exception types.
    """
    if (
        not isinstance(state, Failed)
        or isinstance(state, TriggerFailed | ValidationFailed)
        or run_count > spec.max_retries
    ):
        return None
    if spec.retry_on is not None and not isinstance(state.result, spec.retry_on):
        return None
    delay = spec.retry_delay(run_count)
    return Retrying(
        f"Retrying Task (after attempt {run_count} of {spec.max_retries + 1})",
        start_time=datetime.fromtimestamp(now + delay, UTC),
        run_count=run_count,
    )


def signal_retry_state(spec: TaskSpec, state: Retrying, run_count: int, now: float) -> Retrying:
    """Complete the ``Retrying`` state of a ``RETRY`` signal with its attempt and start time.

    As in Prefect 1.x, a ``RETRY`` without a ``start_time`` is due now (the task's
    ``retry_delay`` applies to failures, not to the signal).
    """
    start = state.start_time or datetime.fromtimestamp(now, UTC)
    message = state.message or f"Retrying Task (after attempt {run_count})"
    return Retrying(message, state.result, start_time=start, run_count=run_count)


def final_flow_state(reference_states: list[State], result: Any) -> State:
    """The flow run's final state from its reference tasks' states (Prefect 1.x rules)."""
    reference_states = [
        child
        for s in reference_states
        for child in (s.map_states if isinstance(s, Mapped) else [s])
    ] + [s for s in reference_states if isinstance(s, Mapped)]
    if not all(s.is_finished() for s in reference_states):
        return Running("Not all reference tasks finished.", result)
    if any(s.is_failed() for s in reference_states):
        return Failed("Some reference tasks failed.", result)
    if any(isinstance(s, Cancelled) for s in reference_states):
        return Cancelled("Some reference tasks were cancelled.", result)
    if all(s.is_successful() for s in reference_states):
        return Success("All reference tasks succeeded.", result)
    return Success("No reference tasks failed.", result)  # e.g. a Looped reference task
