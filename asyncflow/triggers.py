"""Triggers: functions that decide, from the upstream states, whether a task may run.

A trigger takes ``{edge: upstream_state}`` and returns ``True`` to run, or raises a signal:
``TRIGGERFAIL`` (the task ends ``TriggerFailed``), ``SKIP`` or ``PAUSE``. Messages are Prefect
1.x's, word for word. Any callable with this shape can be a trigger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from . import signals
from .context import context
from .states import Mapped

if TYPE_CHECKING:
    from .edges import Edge
    from .states import State

__all__ = (
    "Trigger",
    "all_states",
    "all_finished",
    "always_run",
    "manual_only",
    "all_successful",
    "all_failed",
    "any_successful",
    "any_failed",
    "some_successful",
    "some_failed",
    "not_all_skipped",
)

Trigger = Callable[["Mapping[Edge, State]"], bool]


def all_states(upstream_states: Mapping[Edge, State]) -> list[State]:
    """The upstream states with every ``Mapped`` parent replaced by its children's states.

    Triggers judge a mapped upstream task by its children, as in Prefect 1.x.
    """
    out: list[State] = []
    for state in upstream_states.values():
        if isinstance(state, Mapped):
            out.extend(state.map_states)
        else:
            out.append(state)
    return out


def all_finished(upstream_states: Mapping[Edge, State]) -> bool:
    """Run once every upstream task finished, whatever the outcome."""
    if not all(s.is_finished() for s in all_states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_finished" but some of the upstream tasks were not finished.'
        )
    return True


#: Alias of :func:`all_finished`, for tasks that must run no matter what (clean-up steps).
always_run = all_finished


def manual_only(upstream_states: Mapping[Edge, State]) -> bool:
    """Never run by itself: pause until the run is told to resume the task.

    As in Prefect 1.x, it passes when ``resume`` is set in the context: a resumed task (a
    ``Resume`` state, ``run.resume(task)``) has it, and so has a run given
    ``context={"resume": True}``.
    """
    if context.get("resume"):
        return True
    raise signals.PAUSE('Trigger function is "manual_only"')


def all_successful(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if every upstream task succeeded (skipped counts as success). The default."""
    if not all(s.is_successful() for s in all_states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_successful" but some of the upstream tasks failed.'
        )
    return True


def all_failed(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if every upstream task failed."""
    if not all(s.is_failed() for s in all_states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_failed" but some of the upstream tasks succeeded.'
        )
    return True


def any_successful(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if at least one upstream task succeeded (or there are none)."""
    states = all_states(upstream_states)
    if states and not any(s.is_successful() for s in states):
        raise signals.TRIGGERFAIL(
            'Trigger was "any_successful" but none of the upstream tasks succeeded.'
        )
    return True


def any_failed(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if at least one upstream task failed (or there are none)."""
    states = all_states(upstream_states)
    if states and not any(s.is_failed() for s in states):
        raise signals.TRIGGERFAIL('Trigger was "any_failed" but none of the upstream tasks failed.')
    return True


def not_all_skipped(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if every upstream task succeeded and not all of them were skipped."""
    states = all_states(upstream_states)
    if states and all(s.is_skipped() for s in states):
        raise signals.SKIP(
            "All upstreams were skipped",  # Prefect 1.x's words
            result=None,  # downstream of a merge where no branch ran receives None
        )
    if not all(s.is_successful() for s in states):
        raise signals.TRIGGERFAIL(
            'Trigger was "not_all_skipped" but some of the upstream tasks failed.'
        )
    return True


def _bounded(
    name: str,
    predicate: Callable[[State], bool],
    at_least: int | float | None,
    at_most: int | float | None,
) -> Trigger:
    for label, bound in (("at_least", at_least), ("at_most", at_most)):
        if bound is not None and bound < 0:
            raise ValueError(f"{name}: {label} must be >= 0, got {bound!r}")

    def trigger(upstream_states: Mapping[Edge, State]) -> bool:
        if not upstream_states:
            return True  # as in Prefect 1.x: with no upstream task there is nothing to count
        states = all_states(upstream_states)
        total = len(states)
        hits = sum(1 for s in states if predicate(s))
        # Bounds below 1 are shares of the upstream count, as in Prefect 1.x.
        low = 0 if at_least is None else at_least * total if at_least < 1 else at_least
        high = total if at_most is None else at_most * total if at_most < 1 else at_most
        if not low <= hits <= high:
            raise signals.TRIGGERFAIL(f'Trigger was "{name}" but thresholds were not met.')
        return True

    trigger.__name__ = trigger.__qualname__ = name
    return trigger


def some_successful(
    at_least: int | float | None = None, at_most: int | float | None = None
) -> Trigger:
    """A trigger that runs if the number of successful upstream tasks is within bounds.

    Args:
        at_least: the fewest successes allowed (a float in (0, 1) is a share of the upstreams).
        at_most: the most successes allowed (likewise).
    """
    return _bounded("some_successful", lambda s: s.is_successful(), at_least, at_most)


def some_failed(at_least: int | float | None = None, at_most: int | float | None = None) -> Trigger:
    """A trigger that runs if the number of failed upstream tasks is within bounds.

    Args:
        at_least: the fewest failures allowed (a float in (0, 1) is a share of the upstreams).
        at_most: the most failures allowed (likewise).
    """
    return _bounded("some_failed", lambda s: s.is_failed(), at_least, at_most)
