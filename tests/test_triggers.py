"""Specification of asyncflow.triggers: every trigger against tables of upstream states."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

import asyncflow
from asyncflow import Edge, Task, signals, triggers
from asyncflow.states import (
    Cached,
    Cancelled,
    Failed,
    Looped,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
    ValidationFailed,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# Short names for the upstream states of the tables.
OK = Success("ok", 1)
CACHED = Cached("cached", 1)
MAPPED = Mapped("mapped", map_states=[Success()])
SKIP = Skipped("skipped")
FAIL = Failed("failed", ValueError("x"))
TIMEOUT = TimedOut("timed out")
TRIGFAIL = TriggerFailed("trigger failed")
VALFAIL = ValidationFailed("invalid")
CANCEL = Cancelled("cancelled")
LOOPED = Looped("looped")
PENDING = Pending()
RUNNING = Running("Starting task run.")
RETRYING = Retrying("again")

PASS = True  # the expected outcome "the trigger returns True"


def upstream(*upstream_states: State) -> dict[Edge, State]:
    """``{edge: state}`` over real tasks, one upstream task per state, into one downstream."""
    down = Task(name="down")
    return {Edge(Task(name=f"up{i}"), down): state for i, state in enumerate(upstream_states)}


def check(
    trigger: Callable[[dict[Edge, State]], bool],
    upstream_states: tuple[State, ...],
    expected: object,
) -> None:
    """Run ``trigger`` and compare with ``expected``: ``PASS`` or ``(signal class, message)``."""
    states = upstream(*upstream_states)
    if expected is PASS:
        assert trigger(states) is True
        return
    assert isinstance(expected, tuple)
    sig_cls, message = expected
    with pytest.raises(signals.AsyncflowSignal) as info:
        trigger(states)
    assert type(info.value) is sig_cls
    assert info.value.message == message


def ids(value: object) -> str:
    if isinstance(value, tuple) and all(isinstance(s, State) for s in value):
        return "[" + ",".join(type(s).__name__ for s in value) + "]" if value else "[]"
    if value is PASS:
        return "pass"
    if isinstance(value, tuple):
        return value[0].__name__
    return str(value)


ALL_FINISHED_NOT_FINISHED = (
    signals.TRIGGERFAIL,
    'Trigger was "all_finished" but some of the upstream tasks were not finished.',
)
ALL_SUCCESSFUL_FAILED = (
    signals.TRIGGERFAIL,
    'Trigger was "all_successful" but some of the upstream tasks failed.',
)
ALL_FAILED_SUCCEEDED = (
    signals.TRIGGERFAIL,
    'Trigger was "all_failed" but some of the upstream tasks succeeded.',
)
ANY_SUCCESSFUL_NONE = (
    signals.TRIGGERFAIL,
    'Trigger was "any_successful" but none of the upstream tasks succeeded.',
)
ANY_FAILED_NONE = (
    signals.TRIGGERFAIL,
    'Trigger was "any_failed" but none of the upstream tasks failed.',
)
NOT_ALL_SKIPPED_SKIP = (
    signals.SKIP,
    "All upstreams were skipped",
)
NOT_ALL_SKIPPED_FAILED = (
    signals.TRIGGERFAIL,
    'Trigger was "not_all_skipped" but some of the upstream tasks failed.',
)


class TestAllFinished:
    @pytest.mark.parametrize(
        ("states", "expected"),
        [
            ((), PASS),
            ((OK,), PASS),
            ((OK, FAIL, SKIP), PASS),
            ((CACHED, MAPPED, TIMEOUT, TRIGFAIL, VALFAIL, CANCEL, LOOPED), PASS),
            ((PENDING,), ALL_FINISHED_NOT_FINISHED),
            ((OK, RUNNING), ALL_FINISHED_NOT_FINISHED),
            ((FAIL, RETRYING), ALL_FINISHED_NOT_FINISHED),
        ],
        ids=ids,
    )
    def test_all_finished_runs_once_every_upstream_finished(
        self, states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.all_finished, states, expected)

    def test_always_run_is_all_finished(self) -> None:
        assert triggers.always_run is triggers.all_finished


class TestAllSuccessful:
    @pytest.mark.parametrize(
        ("states", "expected"),
        [
            ((), PASS),
            ((OK,), PASS),
            ((OK, CACHED, MAPPED, SKIP), PASS),
            ((SKIP, SKIP), PASS),
            ((OK, FAIL), ALL_SUCCESSFUL_FAILED),
            ((TRIGFAIL,), ALL_SUCCESSFUL_FAILED),
            ((TIMEOUT, OK), ALL_SUCCESSFUL_FAILED),
            ((CANCEL,), ALL_SUCCESSFUL_FAILED),
            ((LOOPED,), ALL_SUCCESSFUL_FAILED),
            ((OK, PENDING), ALL_SUCCESSFUL_FAILED),
        ],
        ids=ids,
    )
    def test_all_successful_runs_only_if_every_upstream_succeeded(
        self, states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.all_successful, states, expected)

    def test_the_trigger_failure_becomes_a_trigger_failed_state(self) -> None:
        with pytest.raises(signals.TRIGGERFAIL) as info:
            triggers.all_successful(upstream(FAIL))
        assert info.value.state == TriggerFailed(ALL_SUCCESSFUL_FAILED[1], info.value)


class TestAllFailed:
    @pytest.mark.parametrize(
        ("states", "expected"),
        [
            ((), PASS),
            ((FAIL,), PASS),
            ((FAIL, TIMEOUT, TRIGFAIL, VALFAIL), PASS),
            ((FAIL, OK), ALL_FAILED_SUCCEEDED),
            ((FAIL, SKIP), ALL_FAILED_SUCCEEDED),
            ((CANCEL,), ALL_FAILED_SUCCEEDED),
            ((RUNNING,), ALL_FAILED_SUCCEEDED),
        ],
        ids=ids,
    )
    def test_all_failed_runs_only_if_every_upstream_failed(
        self, states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.all_failed, states, expected)


class TestAnySuccessful:
    @pytest.mark.parametrize(
        ("states", "expected"),
        [
            ((), PASS),
            ((OK,), PASS),
            ((FAIL, OK), PASS),
            ((FAIL, SKIP), PASS),
            ((TIMEOUT, CACHED), PASS),
            ((FAIL,), ANY_SUCCESSFUL_NONE),
            ((FAIL, TRIGFAIL, CANCEL), ANY_SUCCESSFUL_NONE),
            ((PENDING,), ANY_SUCCESSFUL_NONE),
        ],
        ids=ids,
    )
    def test_any_successful_runs_if_one_upstream_succeeded(
        self, states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.any_successful, states, expected)


class TestAnyFailed:
    @pytest.mark.parametrize(
        ("states", "expected"),
        [
            ((), PASS),
            ((FAIL,), PASS),
            ((OK, FAIL), PASS),
            ((OK, TIMEOUT), PASS),
            ((SKIP, TRIGFAIL), PASS),
            ((OK,), ANY_FAILED_NONE),
            ((OK, SKIP, CANCEL), ANY_FAILED_NONE),
            ((LOOPED,), ANY_FAILED_NONE),
        ],
        ids=ids,
    )
    def test_any_failed_runs_if_one_upstream_failed(
        self, states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.any_failed, states, expected)


class TestManualOnly:
    @pytest.mark.parametrize(
        "states", [(), (OK,), (FAIL,), (OK, SKIP), (PENDING,)], ids=lambda s: ids(s)
    )
    def test_manual_only_always_pauses(self, states: tuple[State, ...]) -> None:
        check(triggers.manual_only, states, (signals.PAUSE, 'Trigger function is "manual_only"'))

    def test_the_pause_becomes_a_paused_state(self) -> None:
        with pytest.raises(signals.PAUSE) as info:
            triggers.manual_only(upstream(OK))
        assert info.value.state == Paused('Trigger function is "manual_only"', info.value)


class TestNotAllSkipped:
    @pytest.mark.parametrize(
        ("states", "expected"),
        [
            ((), PASS),
            ((OK,), PASS),
            ((OK, SKIP), PASS),
            ((SKIP, CACHED, SKIP), PASS),
            ((SKIP,), NOT_ALL_SKIPPED_SKIP),
            ((SKIP, SKIP), NOT_ALL_SKIPPED_SKIP),
            ((OK, FAIL), NOT_ALL_SKIPPED_FAILED),
            ((SKIP, FAIL), NOT_ALL_SKIPPED_FAILED),
            ((CANCEL,), NOT_ALL_SKIPPED_FAILED),
        ],
        ids=ids,
    )
    def test_not_all_skipped_runs_unless_every_upstream_skipped_or_one_failed(
        self, states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.not_all_skipped, states, expected)

    def test_all_skipped_upstreams_skip_the_task(self) -> None:
        with pytest.raises(signals.SKIP) as info:
            triggers.not_all_skipped(upstream(SKIP, SKIP))
        assert info.value.state == Skipped(NOT_ALL_SKIPPED_SKIP[1], None)


def not_met(name: str) -> tuple[type, str]:
    # Prefect 1.x's message, word for word, whichever bound was missed.
    return (signals.TRIGGERFAIL, f'Trigger was "{name}" but thresholds were not met.')


class TestSomeSuccessful:
    @pytest.mark.parametrize(
        ("bounds", "states", "expected"),
        [
            ({}, (), PASS),
            ({}, (FAIL, FAIL), PASS),
            ({"at_least": 2}, (OK, OK, FAIL), PASS),
            ({"at_least": 2}, (OK, SKIP, FAIL), PASS),
            ({"at_least": 2}, (OK, FAIL, FAIL), not_met("some_successful")),
            ({"at_least": 1}, (), PASS),  # as in 1.x: no upstream task, nothing to miss
            ({"at_least": 0}, (FAIL,), PASS),
            ({"at_most": 1}, (OK, FAIL, FAIL), PASS),
            ({"at_most": 1}, (OK, CACHED, FAIL), not_met("some_successful")),
            ({"at_most": 0}, (FAIL, CANCEL), PASS),
            ({"at_most": 0}, (OK,), not_met("some_successful")),
            ({"at_least": 1, "at_most": 2}, (OK, OK, FAIL), PASS),
            ({"at_least": 1, "at_most": 2}, (FAIL, FAIL), not_met("some_successful")),
            ({"at_least": 1, "at_most": 2}, (OK, OK, OK), not_met("some_successful")),
            ({"at_least": 0.5}, (OK, OK, FAIL, FAIL), PASS),
            ({"at_least": 0.5}, (OK, FAIL, FAIL, FAIL), not_met("some_successful")),
            ({"at_least": 0.5}, (), PASS),
            ({"at_most": 0.5}, (OK, OK, FAIL, FAIL), PASS),
            ({"at_most": 0.5}, (OK, OK, OK, FAIL), not_met("some_successful")),
            ({"at_least": 0.25, "at_most": 0.75}, (OK, FAIL, FAIL, FAIL), PASS),
            ({"at_least": 1.0}, (OK, FAIL, FAIL), PASS),
            ({"at_least": 1.0}, (FAIL, FAIL), not_met("some_successful")),
        ],
        ids=ids,
    )
    def test_some_successful_runs_if_the_number_of_successes_is_within_bounds(
        self, bounds: dict[str, float], states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.some_successful(**bounds), states, expected)

    def test_the_trigger_is_named_after_its_factory(self) -> None:
        assert triggers.some_successful(at_least=1).__name__ == "some_successful"


class TestSomeFailed:
    @pytest.mark.parametrize(
        ("bounds", "states", "expected"),
        [
            ({}, (), PASS),
            ({}, (OK,), PASS),
            ({"at_least": 1}, (OK, FAIL), PASS),
            ({"at_least": 2}, (TIMEOUT, TRIGFAIL, OK), PASS),
            ({"at_least": 2}, (OK, SKIP, FAIL), not_met("some_failed")),
            ({"at_least": 1}, (OK, CANCEL), not_met("some_failed")),
            ({"at_most": 1}, (OK, FAIL), PASS),
            ({"at_most": 1}, (FAIL, VALFAIL), not_met("some_failed")),
            ({"at_least": 0.5}, (FAIL, OK), PASS),
            ({"at_least": 0.5}, (FAIL, OK, OK, OK), not_met("some_failed")),
            ({"at_most": 0.5}, (FAIL, FAIL, OK, OK), PASS),
            ({"at_most": 0.25}, (FAIL, FAIL, OK, OK), not_met("some_failed")),
        ],
        ids=ids,
    )
    def test_some_failed_runs_if_the_number_of_failures_is_within_bounds(
        self, bounds: dict[str, float], states: tuple[State, ...], expected: object
    ) -> None:
        check(triggers.some_failed(**bounds), states, expected)

    def test_the_trigger_is_named_after_its_factory(self) -> None:
        assert triggers.some_failed(at_most=3).__name__ == "some_failed"


class TestBadBounds:
    @pytest.mark.parametrize(
        ("factory", "bounds", "message"),
        [
            (
                triggers.some_successful,
                {"at_least": -1},
                "some_successful: at_least must be >= 0, got -1",
            ),
            (
                triggers.some_successful,
                {"at_most": -0.5},
                "some_successful: at_most must be >= 0, got -0.5",
            ),
            (triggers.some_failed, {"at_least": -2}, "some_failed: at_least must be >= 0, got -2"),
            (triggers.some_failed, {"at_most": -1}, "some_failed: at_most must be >= 0, got -1"),
        ],
    )
    def test_a_negative_bound_is_refused_when_the_trigger_is_built(
        self, factory: Callable[..., object], bounds: dict[str, float], message: str
    ) -> None:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            factory(**bounds)


class TestPublicSurface:
    def test_triggers_are_reachable_from_the_package(self) -> None:
        assert asyncflow.triggers is triggers

    @pytest.mark.parametrize(
        "name",
        [
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
        ],
    )
    def test_every_prefect_trigger_is_exported(self, name: str) -> None:
        assert name in triggers.__all__
        assert callable(getattr(triggers, name))
