"""Specification of asyncflow.signals (and its Prefect 1.x path asyncflow.engine.signals)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

import asyncflow.engine.signals as engine_signals
from asyncflow import signals
from asyncflow.engine import signals as engine_signals_from_package
from asyncflow.states import (
    Failed,
    Looped,
    Paused,
    Retrying,
    Skipped,
    State,
    Success,
    TriggerFailed,
    ValidationFailed,
)

if TYPE_CHECKING:
    from types import ModuleType

MODULES = pytest.mark.parametrize(
    "module", [signals, engine_signals], ids=["asyncflow.signals", "asyncflow.engine.signals"]
)

# Every state signal and the exact state class it produces.
SIGNAL_STATES = [
    ("FAIL", Failed),
    ("TRIGGERFAIL", TriggerFailed),
    ("VALIDATIONFAIL", ValidationFailed),
    ("SUCCESS", Success),
    ("SKIP", Skipped),
    ("RETRY", Retrying),
    ("LOOP", Looped),
    ("PAUSE", Paused),
]
SIGNAL_NAMES = [name for name, _ in SIGNAL_STATES]
ALL_SIGNAL_NAMES = [*SIGNAL_NAMES, "ENDRUN"]


class TestImportPaths:
    @pytest.mark.parametrize("name", [*ALL_SIGNAL_NAMES, "AsyncflowSignal"])
    def test_the_prefect_path_exposes_the_same_classes(self, name: str) -> None:
        assert getattr(engine_signals, name) is getattr(signals, name)

    def test_the_engine_package_exposes_the_signals_module(self) -> None:
        assert engine_signals_from_package is engine_signals


class TestSignalStates:
    @MODULES
    @pytest.mark.parametrize(("name", "state_cls"), SIGNAL_STATES)
    def test_each_signal_produces_its_state_class(
        self, module: ModuleType, name: str, state_cls: type[State]
    ) -> None:
        sig = getattr(module, name)("why")
        assert type(sig.state) is state_cls

    @MODULES
    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_the_state_carries_the_signal_message(self, module: ModuleType, name: str) -> None:
        sig = getattr(module, name)("a equaled b!")
        assert sig.message == "a equaled b!"
        assert sig.state.message == "a equaled b!"
        assert str(sig) == "a equaled b!"

    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_a_signal_without_a_message_gives_a_state_without_one(self, name: str) -> None:
        sig = getattr(signals, name)()
        assert sig.message is None
        assert sig.state.message is None

    @MODULES
    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_the_state_result_is_the_signal_itself_by_default(
        self, module: ModuleType, name: str
    ) -> None:
        sig = getattr(module, name)("m")
        assert sig.state.result is sig

    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    @pytest.mark.parametrize("result", [42, "text", [1, 2]])
    def test_a_given_result_replaces_the_signal_as_the_result(
        self, name: str, result: object
    ) -> None:
        sig = getattr(signals, name)("m", result=result)
        assert sig.state.result is result

    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_an_explicit_none_result_is_kept(self, name: str) -> None:
        assert getattr(signals, name)("m", result=None).state.result is None

    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_attributes_set_after_creation_are_visible_through_the_result(self, name: str) -> None:
        sig = getattr(signals, name)("m")
        state = sig.state
        sig.flag = True
        assert state.result.flag is True

    def test_extra_keywords_become_fields_of_the_state(self) -> None:
        when = datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
        state = signals.RETRY("again later", start_time=when).state
        assert state == Retrying("again later", state.result, start_time=when)

    def test_a_bare_retry_is_due_now_in_utc_as_in_1x(self) -> None:
        before = datetime.now(UTC)
        start = signals.RETRY().state.start_time
        assert start is not None
        assert before <= start <= datetime.now(UTC)

    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_a_keyword_its_state_does_not_have_is_refused_when_the_signal_is_made(
        self, name: str
    ) -> None:
        with pytest.raises(TypeError, match=rf"{name}\(\) got an unexpected keyword.*bad_result"):
            getattr(signals, name)("m", bad_result=1)

    def test_a_signal_state_compares_by_value(self) -> None:
        sig = signals.FAIL("x")
        assert sig.state == Failed("x", sig)


class TestSignalClasses:
    @pytest.mark.parametrize("name", ALL_SIGNAL_NAMES)
    def test_every_signal_is_a_base_exception_but_not_an_exception(self, name: str) -> None:
        cls = getattr(signals, name)
        assert issubclass(cls, BaseException)
        assert not issubclass(cls, Exception)

    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_except_exception_does_not_swallow_a_signal(self, name: str) -> None:
        cls = getattr(signals, name)
        caught: list[BaseException] = []

        def user_code() -> None:
            try:
                raise cls("escape")
            except Exception as exc:  # the user's catch-all
                caught.append(exc)

        with pytest.raises(cls) as info:
            user_code()
        assert caught == []
        assert info.value.message == "escape"

    def test_except_exception_does_not_swallow_endrun(self) -> None:
        caught: list[BaseException] = []

        def user_code() -> None:
            try:
                raise signals.ENDRUN(Success("done"))
            except Exception as exc:
                caught.append(exc)

        with pytest.raises(signals.ENDRUN):
            user_code()
        assert caught == []

    @pytest.mark.parametrize("name", SIGNAL_NAMES)
    def test_every_state_signal_derives_from_the_common_base(self, name: str) -> None:
        assert issubclass(getattr(signals, name), signals.AsyncflowSignal)

    @pytest.mark.parametrize("name", ["TRIGGERFAIL", "VALIDATIONFAIL"])
    def test_trigger_and_validation_failures_are_failures(self, name: str) -> None:
        assert issubclass(getattr(signals, name), signals.FAIL)

    @pytest.mark.parametrize("name", ["SUCCESS", "SKIP", "RETRY", "LOOP", "PAUSE"])
    def test_other_signals_are_not_failures(self, name: str) -> None:
        assert not issubclass(getattr(signals, name), signals.FAIL)

    @pytest.mark.parametrize(
        ("sig", "text"),
        [(signals.FAIL("x"), "FAIL('x')"), (signals.SKIP(), "SKIP()")],
    )
    def test_repr_names_the_signal_and_its_message(self, sig: BaseException, text: str) -> None:
        assert repr(sig) == text


class TestENDRUN:
    @MODULES
    @pytest.mark.parametrize(
        "state", [Success("done", 1), Failed("no"), Skipped("skip"), Retrying(run_count=2)]
    )
    def test_endrun_carries_exactly_the_given_state(self, module: ModuleType, state: State) -> None:
        assert module.ENDRUN(state).state is state
