"""Specification of asyncflow.states: the Prefect 1.x state tree as frozen values."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

import asyncflow.engine.state as engine_state
from asyncflow import states
from asyncflow.states import (
    Cached,
    Cancelled,
    Cancelling,
    Failed,
    Finished,
    Looped,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
    ValidationFailed,
)

ALL_STATES = (
    State,
    Pending,
    Scheduled,
    Paused,
    Resume,
    Retrying,
    Running,
    Cancelling,
    Finished,
    Success,
    Cached,
    Mapped,
    Skipped,
    Failed,
    TimedOut,
    TriggerFailed,
    ValidationFailed,
    Cancelled,
    Looped,
)

# Every state class and the exact set of state classes it is a subclass of (itself included).
ANCESTORS = {
    State: {State},
    Pending: {State, Pending},
    Scheduled: {State, Pending, Scheduled},
    Paused: {State, Pending, Scheduled, Paused},
    Resume: {State, Pending, Scheduled, Resume},
    Retrying: {State, Pending, Scheduled, Retrying},
    Running: {State, Running},
    Cancelling: {State, Running, Cancelling},
    Finished: {State, Finished},
    Success: {State, Finished, Success},
    Cached: {State, Finished, Success, Cached},
    Mapped: {State, Finished, Success, Mapped},
    Skipped: {State, Finished, Success, Skipped},
    Failed: {State, Finished, Failed},
    TimedOut: {State, Finished, Failed, TimedOut},
    TriggerFailed: {State, Finished, Failed, TriggerFailed},
    ValidationFailed: {State, Finished, Failed, ValidationFailed},
    Cancelled: {State, Finished, Cancelled},
    Looped: {State, Finished, Looped},
}

PREDICATES = (
    "is_pending",
    "is_scheduled",
    "is_paused",
    "is_retrying",
    "is_running",
    "is_finished",
    "is_successful",
    "is_failed",
    "is_skipped",
    "is_cached",
    "is_mapped",
    "is_looped",
    "is_cancelled",
)

# Every state class and the predicates that are true for it (all others are false).
TRUE_PREDICATES = {
    State: set(),
    Pending: {"is_pending"},
    Scheduled: {"is_pending", "is_scheduled"},
    Paused: {"is_pending", "is_scheduled", "is_paused"},
    Resume: {"is_pending", "is_scheduled"},
    Retrying: {"is_pending", "is_scheduled", "is_retrying"},
    Running: {"is_running"},
    Cancelling: {"is_running"},
    Finished: {"is_finished"},
    Success: {"is_finished", "is_successful"},
    Cached: {"is_finished", "is_successful", "is_cached"},
    Mapped: {"is_finished", "is_successful", "is_mapped"},
    Skipped: {"is_finished", "is_successful", "is_skipped"},
    Failed: {"is_finished", "is_failed"},
    TimedOut: {"is_finished", "is_failed"},
    TriggerFailed: {"is_finished", "is_failed"},
    ValidationFailed: {"is_finished", "is_failed"},
    Cancelled: {"is_finished", "is_cancelled"},
    Looped: {"is_finished", "is_looped"},
}


class TestHierarchy:
    def test_the_tables_cover_every_exported_state(self) -> None:
        exported = {getattr(states, name) for name in states.__all__}
        assert exported == set(ALL_STATES) == set(ANCESTORS) == set(TRUE_PREDICATES)

    @pytest.mark.parametrize("cls", ALL_STATES, ids=lambda c: c.__name__)
    def test_each_state_subclasses_exactly_its_prefect_ancestors(self, cls: type[State]) -> None:
        assert {other for other in ALL_STATES if issubclass(cls, other)} == ANCESTORS[cls]

    @pytest.mark.parametrize(
        ("cls", "parent"),
        [
            (Pending, State),
            (Scheduled, Pending),
            (Paused, Scheduled),
            (Resume, Scheduled),
            (Retrying, Scheduled),
            (Running, State),
            (Cancelling, Running),
            (Finished, State),
            (Success, Finished),
            (Cached, Success),
            (Mapped, Success),
            (Skipped, Success),
            (Failed, Finished),
            (TimedOut, Failed),
            (TriggerFailed, Failed),
            (ValidationFailed, Failed),
            (Cancelled, Finished),
            (Looped, Finished),
        ],
        ids=lambda c: c.__name__,
    )
    def test_each_state_has_its_prefect_parent_as_its_only_base(
        self, cls: type[State], parent: type[State]
    ) -> None:
        assert cls.__bases__ == (parent,)

    @pytest.mark.parametrize("name", states.__all__)
    def test_the_prefect_import_path_exposes_the_same_classes(self, name: str) -> None:
        assert getattr(engine_state, name) is getattr(states, name)


class TestPredicates:
    @pytest.mark.parametrize("cls", ALL_STATES, ids=lambda c: c.__name__)
    def test_each_state_answers_every_predicate_as_in_prefect(self, cls: type[State]) -> None:
        state = cls()
        answers = {name: getattr(state, name)() for name in PREDICATES}
        assert answers == {name: name in TRUE_PREDICATES[cls] for name in PREDICATES}

    def test_predicates_return_real_booleans(self) -> None:
        state = Success("done")
        assert all(type(getattr(state, name)()) is bool for name in PREDICATES)


class TestRepr:
    @pytest.mark.parametrize(
        ("state", "text"),
        [
            (Success("Task run succeeded."), 'Success("Task run succeeded.")'),
            (Pending(), "Pending()"),
            (Scheduled(), "Scheduled()"),
            (Running("Starting task run."), 'Running("Starting task run.")'),
            (
                Failed("Error during execution of task: ValueError('nope')", ValueError("nope")),
                "Failed(\"Error during execution of task: ValueError('nope')\")",
            ),
            (
                Retrying("Retrying Task (after attempt 1 of 3)", run_count=1),
                'Retrying("Retrying Task (after attempt 1 of 3)")',
            ),
            (Mapped("m", map_states=[Success()]), 'Mapped("m")'),
            (Looped(loop_count=3), "Looped()"),
        ],
    )
    def test_repr_is_the_class_name_and_the_quoted_message(self, state: State, text: str) -> None:
        assert repr(state) == text

    def test_repr_leaves_out_the_result(self) -> None:
        assert repr(Success("ok", result={"a": 1})) == 'Success("ok")'


class TestConstruction:
    def test_a_state_without_arguments_has_no_message_result_or_inputs_and_an_empty_context(
        self,
    ) -> None:
        state = State()
        assert (state.message, state.result, state.context, state.cached_inputs) == (
            None,
            None,
            {},
            None,
        )
        assert State().context is not state.context  # each state has its own dict

    def test_message_and_result_are_positional(self) -> None:
        state = Success("done", 42)
        assert (state.message, state.result) == ("done", 42)

    def test_context_and_cached_inputs_are_keyword_fields(self) -> None:
        state = Failed("x", context={"k": 1}, cached_inputs={"a": 2})
        assert (state.context, state.cached_inputs) == ({"k": 1}, {"a": 2})

    @pytest.mark.parametrize("cls", [Scheduled, Retrying, Resume])
    def test_a_scheduled_state_starts_now_in_utc_unless_given_a_start_time(
        self, cls: type[Scheduled]
    ) -> None:
        before = datetime.now(UTC)
        start = cls().start_time
        assert start is not None
        assert before <= start <= datetime.now(UTC)
        assert start.tzinfo is UTC
        when = datetime(2024, 1, 1, tzinfo=UTC)
        assert cls("later", start_time=when).start_time == when

    def test_a_paused_state_has_no_start_time_unless_given_one(self) -> None:
        when = datetime(2024, 1, 1, tzinfo=UTC)
        assert Paused().start_time is None
        assert Paused(start_time=when).start_time == when

    def test_retrying_has_a_run_count_and_a_start_time(self) -> None:
        when = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
        state = Retrying("again", start_time=when, run_count=3)
        assert (state.message, state.start_time, state.run_count) == ("again", when, 3)

    def test_retrying_defaults_to_run_count_one(self) -> None:
        assert Retrying().run_count == 1

    def test_mapped_holds_its_children_states(self) -> None:
        children = [Success("a", 1), Failed("b")]
        state = Mapped("Mapped tasks submitted for execution.", map_states=children)
        assert state.map_states == children
        assert state.n_map_states == 2

    def test_mapped_children_default_to_a_fresh_empty_list(self) -> None:
        first, second = Mapped(), Mapped()
        assert first.map_states == []
        assert first.map_states is not second.map_states

    def test_looped_counts_its_iterations(self) -> None:
        assert Looped().loop_count == 1
        assert Looped("again", 7, loop_count=4).loop_count == 4

    def test_cached_keeps_its_parameters_expiration_and_hashed_inputs(self) -> None:
        expires = datetime(2030, 1, 1, tzinfo=UTC)
        state = Cached(
            "c",
            5,
            cached_parameters={"x": 1},
            cached_result_expiration=expires,
            hashed_inputs={"x": "abc"},
        )
        assert (state.cached_parameters, state.cached_result_expiration) == ({"x": 1}, expires)
        assert state.hashed_inputs == {"x": "abc"}
        assert Cached().hashed_inputs is None


class TestFrozen:
    @pytest.mark.parametrize(
        ("state", "field"),
        [
            (Success("a"), "message"),
            (Success("a"), "result"),
            (Failed("a"), "context"),
            (Pending(), "cached_inputs"),
            (Retrying(), "run_count"),
            (Scheduled(), "start_time"),
            (Mapped(), "map_states"),
            (Looped(), "loop_count"),
        ],
    )
    def test_assigning_a_field_raises(self, state: State, field: str) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(state, field, "changed")

    def test_a_state_has_no_instance_dict_for_new_attributes(self) -> None:
        state = Success("a")
        with pytest.raises((attrs.exceptions.FrozenInstanceError, AttributeError)):
            state.extra = 1  # type: ignore[attr-defined]
        assert not hasattr(state, "extra")

    def test_evolve_derives_a_new_state_of_the_same_class(self) -> None:
        original = Success("a", 1, context={"k": 1})
        derived = attrs.evolve(original, message="b")
        assert type(derived) is Success
        assert (derived.message, derived.result, derived.context) == ("b", 1, {"k": 1})
        assert original.message == "a"

    def test_evolve_keeps_the_subclass_fields(self) -> None:
        when = datetime(2024, 5, 1, tzinfo=UTC)
        original = Retrying("r", start_time=when, run_count=2)
        derived = attrs.evolve(original, run_count=3)
        assert type(derived) is Retrying
        assert (derived.message, derived.start_time, derived.run_count) == ("r", when, 3)
        assert original.run_count == 2


class TestEquality:
    def test_states_of_one_class_with_equal_fields_are_equal(self) -> None:
        assert Success("a", [1, 2]) == Success("a", [1, 2])

    def test_message_and_context_take_no_part_in_equality_as_in_1x(self) -> None:
        assert Success("a", 1) == Success("b", 1, context={"k": 1})
        assert Failed("x") == Failed()

    @pytest.mark.parametrize(
        "other",
        [
            Success("a", 2),
            Success("a", 1, cached_inputs={"x": 1}),
        ],
    )
    def test_states_that_differ_in_result_or_another_field_are_unequal(self, other: State) -> None:
        assert Success("a", 1) != other

    def test_subclass_fields_take_part_in_equality(self) -> None:
        when = datetime(2024, 1, 1, tzinfo=UTC)
        assert Retrying("r", start_time=when, run_count=1) == Retrying("s", start_time=when)
        assert Retrying("r", start_time=when) != Retrying("r", start_time=when, run_count=2)
        assert Retrying("r", start_time=when) != Retrying("r", start_time=datetime.now(UTC))
        assert Looped(loop_count=1) != Looped(loop_count=2)

    @pytest.mark.parametrize(
        ("left", "right"),
        [
            (Success("a"), Failed("a")),
            (Success("a"), Skipped("a")),
            (Skipped("a"), Success("a")),
            (Failed("a"), TriggerFailed("a")),
            (Pending(), Scheduled()),
            (State(), Pending()),
        ],
        ids=lambda s: type(s).__name__,
    )
    def test_states_of_different_classes_are_never_equal(self, left: State, right: State) -> None:
        assert left != right
        assert not left == right  # noqa: SIM201

    def test_a_state_is_not_equal_to_a_non_state(self) -> None:
        assert Success("a") != "a"
        assert Success("a", 1) != 1
        assert Success().__eq__(None) is NotImplemented


class TestHashing:
    def test_a_state_with_an_unhashable_result_can_go_in_a_set(self) -> None:
        state = Success("a", [1, 2, 3])
        assert state in {state}

    def test_a_state_with_an_unhashable_result_can_be_a_dict_key(self) -> None:
        state = Mapped("m", {"k": []}, map_states=[Success()])
        assert {state: 1}[state] == 1

    def test_states_hash_by_identity(self) -> None:
        state = Success("a", 1)
        assert hash(state) == object.__hash__(state)

    def test_equal_states_are_still_distinct_set_members(self) -> None:
        first, second = Success("a", 1), Success("a", 1)
        assert first == second
        assert len({first, second}) == 2
