"""Specification of asyncflow.runtime.pipeline: the engine's synchronous decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import Flow, Task, signals, triggers
from asyncflow.runtime import pipeline
from asyncflow.runtime.pipeline import (
    check_upstream,
    final_flow_state,
    retry_state,
    signal_retry_state,
    state_from_exception,
)
from asyncflow.states import (
    Cached,
    Cancelled,
    Failed,
    Finished,
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
    from collections.abc import Mapping

    from asyncflow import Edge
    from asyncflow.runtime.spec import TaskSpec

SKIP_MESSAGE = (
    "Upstream task was skipped; if this was not the intended behavior, consider changing "
    "`skip_on_upstream_skip=False` for this task."
)
ALL_SUCCESSFUL_FAILED = 'Trigger was "all_successful" but some of the upstream tasks failed.'
RESULT = {"task": "state"}  # stands for the flow state's {task: state} result
NOW = 1_700_000_000.0  # a clock reading, in seconds since the epoch

OK = Success("Task run succeeded.", 1)
SKIP = Skipped("skipped")
FAIL = Failed("failed", ValueError("x"))


def compile_task(task: Task, *upstream_tasks: Task) -> TaskSpec:
    """The TaskSpec of ``task`` in a flow where ``upstream_tasks`` feed it."""
    flow = Flow("pipeline")
    flow.add_task(task)
    for up in upstream_tasks:
        flow.add_edge(up, task)
    spec = flow.compile()
    return spec.tasks[spec.by_task[task]]


def with_upstreams(task: Task, *states: State) -> tuple[TaskSpec, dict[Edge, State]]:
    """``task``'s spec with one upstream task per state, and the ``{edge: state}`` mapping."""
    ups = [Task(name=f"up{i}") for i in range(len(states))]
    spec = compile_task(task, *ups)
    state_of = dict(zip(ups, states, strict=True))
    return spec, {edge: state_of[edge.upstream_task] for edge in spec.upstream_edges}


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def ids(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(type(s).__name__ for s in value) + "]"
    return repr(value)


class TestCheckUpstreamSkips:
    def test_the_skip_message_is_prefects(self) -> None:
        assert pipeline.SKIP_MESSAGE == SKIP_MESSAGE

    @pytest.mark.parametrize(
        "states", [(SKIP,), (OK, SKIP), (SKIP, FAIL), (FAIL, SKIP, OK)], ids=ids
    )
    def test_an_upstream_skip_skips_the_task(self, states: tuple[State, ...]) -> None:
        spec, ups = with_upstreams(Task(name="t"), *states)
        assert check_upstream(spec, ups) == Skipped(SKIP_MESSAGE)

    def test_the_skip_wins_over_a_custom_trigger(self) -> None:
        called: list[object] = []

        def trigger(upstream_states: Mapping[Edge, State]) -> bool:
            called.append(upstream_states)
            return True

        spec, ups = with_upstreams(Task(name="t", trigger=trigger), OK, SKIP)
        assert check_upstream(spec, ups) == Skipped(SKIP_MESSAGE)
        assert called == []

    def test_a_resumed_task_still_skips_on_an_upstream_skip(self) -> None:
        spec, ups = with_upstreams(Task(name="t", trigger=triggers.manual_only), SKIP)
        assert check_upstream(spec, ups, resumed=True) == Skipped(SKIP_MESSAGE)

    def test_without_skip_on_upstream_skip_a_skipped_upstream_counts_as_success(self) -> None:
        spec, ups = with_upstreams(Task(name="t", skip_on_upstream_skip=False), SKIP, OK)
        assert check_upstream(spec, ups) is None

    def test_without_skip_on_upstream_skip_the_trigger_decides(self) -> None:
        task = Task(name="t", skip_on_upstream_skip=False, trigger=triggers.not_all_skipped)
        spec, ups = with_upstreams(task, SKIP, SKIP)
        state = check_upstream(spec, ups)
        assert type(state) is Skipped
        assert state.message == ("All upstreams were skipped")


class TestCheckUpstreamDefaultTrigger:
    def test_the_default_trigger_is_compiled_to_the_inline_path(self) -> None:
        assert compile_task(Task(name="t")).trigger is None
        assert compile_task(Task(name="t", trigger=triggers.all_successful)).trigger is None

    @pytest.mark.parametrize(
        "states",
        [(), (OK,), (OK, Cached("c"), Mapped("m"))],
        ids=ids,
    )
    def test_the_task_runs_when_every_upstream_succeeded(self, states: tuple[State, ...]) -> None:
        spec, ups = with_upstreams(Task(name="t"), *states)
        assert check_upstream(spec, ups) is None

    @pytest.mark.parametrize(
        "states",
        [
            (FAIL,),
            (OK, FAIL),
            (TriggerFailed("tf"),),
            (TimedOut("slow"), OK),
            (Cancelled("c"),),
            (Looped("l"),),
        ],
        ids=ids,
    )
    def test_a_failed_upstream_fails_the_trigger(self, states: tuple[State, ...]) -> None:
        spec, ups = with_upstreams(Task(name="t"), *states)
        state = check_upstream(spec, ups)
        assert type(state) is TriggerFailed
        assert state.message == ALL_SUCCESSFUL_FAILED

    def test_the_inline_path_and_the_trigger_function_agree(self) -> None:
        spec, ups = with_upstreams(Task(name="t"), OK, FAIL)
        inline = check_upstream(spec, ups)
        with pytest.raises(signals.TRIGGERFAIL) as info:
            triggers.all_successful(ups)
        assert (type(inline), inline.message) == (TriggerFailed, info.value.state.message)


class TestCheckUpstreamCustomTrigger:
    def test_the_trigger_receives_the_upstream_states(self) -> None:
        received: list[Mapping[Edge, State]] = []

        def trigger(upstream_states: Mapping[Edge, State]) -> bool:
            received.append(upstream_states)
            return True

        spec, ups = with_upstreams(Task(name="t", trigger=trigger), OK, FAIL)
        assert check_upstream(spec, ups) is None
        assert received == [ups]

    @pytest.mark.parametrize(
        ("trigger", "states"),
        [
            (triggers.all_finished, (OK, FAIL)),
            (triggers.any_failed, (OK, FAIL)),
            (triggers.all_failed, (FAIL, TimedOut("t"))),
            (triggers.any_successful, (FAIL, OK)),
            (triggers.some_successful(at_least=1), (FAIL, OK)),
        ],
        ids=lambda v: getattr(v, "__name__", ids(v)),
    )
    def test_a_passing_trigger_lets_the_task_run(
        self, trigger: Any, states: tuple[State, ...]
    ) -> None:
        spec, ups = with_upstreams(Task(name="t", trigger=trigger), *states)
        assert check_upstream(spec, ups) is None

    @pytest.mark.parametrize(
        ("trigger", "states", "message"),
        [
            (
                triggers.any_failed,
                (OK, OK),
                'Trigger was "any_failed" but none of the upstream tasks failed.',
            ),
            (
                triggers.all_failed,
                (FAIL, OK),
                'Trigger was "all_failed" but some of the upstream tasks succeeded.',
            ),
            (
                triggers.all_finished,
                (OK, Running("r")),
                'Trigger was "all_finished" but some of the upstream tasks were not finished.',
            ),
        ],
        ids=lambda v: getattr(v, "__name__", ids(v)),
    )
    def test_a_refusing_trigger_ends_the_task_trigger_failed_with_its_signal(
        self, trigger: Any, states: tuple[State, ...], message: str
    ) -> None:
        spec, ups = with_upstreams(Task(name="t", trigger=trigger), *states)
        state = check_upstream(spec, ups)
        assert type(state) is TriggerFailed
        assert state.message == message
        assert type(state.result) is signals.TRIGGERFAIL

    def test_manual_only_pauses_the_task(self) -> None:
        spec, ups = with_upstreams(Task(name="t", trigger=triggers.manual_only), OK)
        state = check_upstream(spec, ups)
        assert type(state) is Paused
        assert state.message == 'Trigger function is "manual_only"'

    def test_manual_only_pauses_a_task_without_upstreams(self) -> None:
        spec, ups = with_upstreams(Task(name="t", trigger=triggers.manual_only))
        assert type(check_upstream(spec, ups)) is Paused

    def test_a_trigger_raising_endrun_ends_the_task_in_that_state(self) -> None:
        final = Success("decided by the trigger", 7)

        def trigger(upstream_states: Mapping[Edge, State]) -> bool:
            raise signals.ENDRUN(final)

        spec, ups = with_upstreams(Task(name="t", trigger=trigger), OK)
        assert check_upstream(spec, ups) is final

    def test_a_trigger_raising_an_error_ends_the_task_trigger_failed(self) -> None:
        error = ZeroDivisionError("boom")

        def trigger(upstream_states: Mapping[Edge, State]) -> bool:
            raise error

        spec, ups = with_upstreams(Task(name="t", trigger=trigger), OK)
        assert check_upstream(spec, ups) == TriggerFailed(
            "Unexpected error while checking task trigger: ZeroDivisionError('boom')", error
        )

    def test_a_trigger_returning_false_ends_the_task_trigger_failed(self) -> None:
        def picky(upstream_states: Mapping[Edge, State]) -> bool:
            return False

        spec, ups = with_upstreams(Task(name="t", trigger=picky), OK)
        assert check_upstream(spec, ups) == TriggerFailed(
            'Trigger was "picky" but it returned False.'
        )

    def test_a_nameless_trigger_is_named_by_its_repr(self) -> None:
        class Picky:
            def __call__(self, upstream_states: Mapping[Edge, State]) -> bool:
                return False

            def __repr__(self) -> str:
                return "<Picky>"

        spec, ups = with_upstreams(Task(name="t", trigger=Picky()), OK)
        assert check_upstream(spec, ups) == TriggerFailed(
            'Trigger was "<Picky>" but it returned False.'
        )

    def test_a_resumed_task_does_not_consult_its_trigger(self) -> None:
        called: list[object] = []

        def trigger(upstream_states: Mapping[Edge, State]) -> bool:
            called.append(upstream_states)
            return False

        spec, ups = with_upstreams(Task(name="t", trigger=trigger), FAIL)
        assert check_upstream(spec, ups, resumed=True) is None
        assert called == []

    def test_a_resumed_manual_only_task_runs(self) -> None:
        spec, ups = with_upstreams(Task(name="t", trigger=triggers.manual_only), OK)
        assert check_upstream(spec, ups, resumed=True) is None

    def test_a_resumed_task_with_the_default_trigger_runs_after_a_failure(self) -> None:
        spec, ups = with_upstreams(Task(name="t"), FAIL)
        assert check_upstream(spec, ups, resumed=True) is None


class TestStateFromException:
    def test_an_error_fails_the_task_with_the_error_as_result(self) -> None:
        error = ValueError("nope")
        state = state_from_exception(error)
        assert state == Failed("Error during execution of task: ValueError('nope')", error)
        assert state.result is error

    @pytest.mark.parametrize(
        ("signal", "state_cls"),
        [
            (signals.FAIL("f"), Failed),
            (signals.TRIGGERFAIL("t"), TriggerFailed),
            (signals.VALIDATIONFAIL("v"), ValidationFailed),
            (signals.SUCCESS("s"), Success),
            (signals.SKIP("k"), Skipped),
            (signals.RETRY("r"), Retrying),
            (signals.LOOP("l"), Looped),
            (signals.PAUSE("p"), Paused),
        ],
        ids=lambda v: type(v).__name__,
    )
    def test_a_signal_gives_its_own_state(
        self, signal: signals.AsyncflowSignal, state_cls: type[State]
    ) -> None:
        state = state_from_exception(signal)
        assert type(state) is state_cls
        assert state.message == signal.message
        assert state.result is signal

    def test_a_signal_with_a_result_keeps_that_result(self) -> None:
        assert state_from_exception(signals.SUCCESS("early", result=5)) == Success("early", 5)

    def test_endrun_gives_exactly_its_state(self) -> None:
        final = Cached("from cache", 3)
        assert state_from_exception(signals.ENDRUN(final)) is final


class TestRetryState:
    def test_the_first_failure_with_retries_left_retries(self) -> None:
        spec = compile_task(Task(name="t", max_retries=2, retry_delay=10))
        state = retry_state(spec, state_from_exception(ValueError("x")), 1, NOW)
        assert state == Retrying(
            "Retrying Task (after attempt 1 of 3)", start_time=at(NOW + 10), run_count=1
        )

    def test_the_start_time_is_an_aware_utc_datetime(self) -> None:
        spec = compile_task(Task(name="t", max_retries=1, retry_delay=timedelta(minutes=10)))
        state = retry_state(spec, FAIL, 1, NOW)
        assert state is not None
        assert state.start_time == datetime.fromtimestamp(NOW + 600, UTC)
        assert state.start_time.tzinfo is UTC

    def test_with_a_zero_retry_delay_the_retry_is_due_now(self) -> None:
        spec = compile_task(Task(name="t", max_retries=1, retry_delay=0))
        state = retry_state(spec, FAIL, 1, NOW)
        assert state is not None
        assert state.start_time == at(NOW)

    @pytest.mark.parametrize(
        ("run_count", "message", "delay"),
        [
            (1, "Retrying Task (after attempt 1 of 4)", 1),
            (2, "Retrying Task (after attempt 2 of 4)", 5),
            (3, "Retrying Task (after attempt 3 of 4)", 5),
        ],
    )
    def test_each_attempt_has_its_own_message_and_delay(
        self, run_count: int, message: str, delay: float
    ) -> None:
        spec = compile_task(Task(name="t", max_retries=3, retry_delay=[1, 5]))
        assert retry_state(spec, FAIL, run_count, NOW) == Retrying(
            message, start_time=at(NOW + delay), run_count=run_count
        )

    @pytest.mark.parametrize(("max_retries", "run_count"), [(0, 1), (1, 2), (2, 3), (2, 4)])
    def test_no_retry_once_the_retries_are_exhausted(
        self, max_retries: int, run_count: int
    ) -> None:
        spec = compile_task(
            Task(name="t", max_retries=max_retries, retry_delay=0 if max_retries else None)
        )
        assert retry_state(spec, FAIL, run_count, NOW) is None

    @pytest.mark.parametrize(
        "state",
        [
            Success("ok"),
            Skipped("s"),
            Cached("c"),
            Running("r"),
            Pending(),
            Cancelled("c"),
            Looped("l"),
        ],
        ids=lambda s: type(s).__name__,
    )
    def test_only_failures_retry(self, state: State) -> None:
        spec = compile_task(Task(name="t", max_retries=3, retry_delay=0))
        assert retry_state(spec, state, 1, NOW) is None

    @pytest.mark.parametrize(
        "state",
        [TriggerFailed(ALL_SUCCESSFUL_FAILED), ValidationFailed("invalid")],
        ids=lambda s: type(s).__name__,
    )
    def test_trigger_and_validation_failures_never_retry(self, state: State) -> None:
        spec = compile_task(Task(name="t", max_retries=3, retry_delay=0))
        assert retry_state(spec, state, 1, NOW) is None

    @pytest.mark.parametrize(
        "state",
        [state_from_exception(signals.FAIL("by hand")), TimedOut("too slow")],
        ids=lambda s: type(s).__name__,
    )
    def test_fail_signals_and_timeouts_retry(self, state: State) -> None:
        spec = compile_task(Task(name="t", max_retries=1, retry_delay=0))
        assert retry_state(spec, state, 1, NOW) == Retrying(
            "Retrying Task (after attempt 1 of 2)", start_time=at(NOW), run_count=1
        )

    class Transient(ConnectionError):
        pass

    @pytest.mark.parametrize(
        ("error", "retries"),
        [
            (ConnectionError("down"), True),
            (Transient("blip"), True),
            (TimeoutError("slow"), True),
            (ValueError("bad"), False),
            (KeyError("k"), False),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
    )
    def test_retry_on_limits_retries_to_those_exception_types(
        self, error: BaseException, retries: bool
    ) -> None:
        task = Task(
            name="t", max_retries=1, retry_delay=0, retry_on=[ConnectionError, TimeoutError]
        )
        state = retry_state(compile_task(task), state_from_exception(error), 1, NOW)
        assert (state is not None) is retries

    def test_retry_on_does_not_retry_a_fail_signal(self) -> None:
        spec = compile_task(Task(name="t", max_retries=1, retry_delay=0, retry_on=ValueError))
        assert retry_state(spec, state_from_exception(signals.FAIL("no")), 1, NOW) is None

    def test_retry_on_does_not_retry_a_failure_without_an_exception(self) -> None:
        spec = compile_task(Task(name="t", max_retries=1, retry_delay=0, retry_on=ValueError))
        assert retry_state(spec, Failed("handler failed"), 1, NOW) is None

    def test_a_callable_delay_gets_the_attempt_number(self) -> None:
        spec = compile_task(Task(name="t", max_retries=5, retry_delay=lambda n: 2.0**n))
        state = retry_state(spec, FAIL, 3, NOW)
        assert state is not None
        assert state.start_time == at(NOW + 8)


class TestSignalRetryState:
    def test_a_bare_retry_signal_gets_an_attempt_message_and_is_due_now_as_in_1x(self) -> None:
        spec = compile_task(Task(name="t", max_retries=1, retry_delay=30))
        sig = signals.RETRY()
        state = signal_retry_state(spec, state_from_exception(sig), 2, NOW)
        assert state == Retrying(
            "Retrying Task (after attempt 2)", sig, start_time=at(NOW), run_count=2
        )
        assert state.message == "Retrying Task (after attempt 2)"

    def test_a_retry_signal_keeps_its_message_and_start_time(self) -> None:
        spec = compile_task(Task(name="t", max_retries=1, retry_delay=30))
        when = at(NOW + 3600)
        sig = signals.RETRY("come back in an hour", start_time=when)
        state = signal_retry_state(spec, state_from_exception(sig), 1, NOW)
        assert state == Retrying("come back in an hour", sig, start_time=when, run_count=1)

    def test_a_retry_signal_without_a_delay_is_due_now(self) -> None:
        spec = compile_task(Task(name="t"))
        sig = signals.RETRY("now")
        state = signal_retry_state(spec, state_from_exception(sig), 1, NOW)
        assert state == Retrying("now", sig, start_time=at(NOW), run_count=1)


class TestFinalFlowState:
    @pytest.mark.parametrize(
        "states",
        [(), (Success("ok"),), (Success("ok"), Skipped("s"), Cached("c"), Mapped("m"))],
        ids=ids,
    )
    def test_the_flow_succeeds_when_every_reference_task_succeeded(
        self, states: tuple[State, ...]
    ) -> None:
        state = final_flow_state(list(states), RESULT)
        assert state == Success("All reference tasks succeeded.", RESULT)
        assert state.result is RESULT

    @pytest.mark.parametrize(
        "states",
        [
            (Failed("f"),),
            (Success("ok"), Failed("f")),
            (TriggerFailed("t"),),
            (TimedOut("t"), Success("ok")),
            (ValidationFailed("v"),),
            (Failed("f"), Cancelled("c")),
        ],
        ids=ids,
    )
    def test_the_flow_fails_when_a_reference_task_failed(self, states: tuple[State, ...]) -> None:
        assert final_flow_state(list(states), RESULT) == Failed(
            "Some reference tasks failed.", RESULT
        )

    @pytest.mark.parametrize(
        "states", [(Success("ok"), Pending()), (Running("r"),), (Retrying(),)], ids=ids
    )
    def test_the_flow_is_still_running_while_a_reference_task_is_unfinished(
        self, states: tuple[State, ...]
    ) -> None:
        assert final_flow_state(list(states), RESULT) == Running(
            "Not all reference tasks finished.", RESULT
        )

    def test_a_cancelled_reference_task_cancels_the_flow(self) -> None:
        states: list[State] = [Success("ok"), Cancelled("c")]
        assert final_flow_state(states, RESULT) == Cancelled(
            "Some reference tasks were cancelled.", RESULT
        )

    @pytest.mark.parametrize("states", [(Success("ok"), Looped("l")), (Finished("done"),)], ids=ids)
    def test_finished_but_neither_successful_nor_failed_means_no_reference_task_failed(
        self, states: tuple[State, ...]
    ) -> None:
        # Prefect 1.x FlowRunner.determine_final_state: the "unanticipated" finished states.
        assert final_flow_state(list(states), RESULT) == Success(
            "No reference tasks failed.", RESULT
        )


class TestCheckDefault:
    """The hot path agrees with check_upstream for the default trigger, table by table."""

    @pytest.mark.parametrize(
        "states",
        [
            (OK,),
            (OK, OK, OK),
            (OK, SKIP),
            (SKIP, SKIP),
            (OK, FAIL),
            (SKIP, FAIL),
            (FAIL, Cancelled("c")),
            (TriggerFailed("t"),),
            (Cached("c", 1), OK),
        ],
        ids=ids,
    )
    @pytest.mark.parametrize("skip_on_upstream_skip", [True, False])
    def test_it_decides_like_the_general_path(
        self, states: tuple[State, ...], skip_on_upstream_skip: bool
    ) -> None:
        task = Task(name="t", skip_on_upstream_skip=skip_on_upstream_skip)
        spec, ups = with_upstreams(task, *states)
        fast, general = pipeline.check_default(spec, states), check_upstream(spec, ups)
        assert type(fast) is type(general)
        assert getattr(fast, "message", None) == getattr(general, "message", None)

    def test_an_unfinished_upstream_means_wait_even_beside_a_skip(self) -> None:
        spec, _ = with_upstreams(Task(name="t"), SKIP, Paused("p"))
        assert pipeline.check_default(spec, (SKIP, Paused("p"))) is pipeline.WAIT

    def test_a_mapped_upstream_needs_the_general_path(self) -> None:
        mapped = Mapped("m", [1], map_states=[OK])
        spec, _ = with_upstreams(Task(name="t"), mapped)
        assert pipeline.check_default(spec, (mapped,)) is pipeline.GENERAL
