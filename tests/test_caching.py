"""Caching: ``cache_for`` keeps a task's result, ``cache_validator`` decides when it may stand in.

As in Prefect 1.x, a successful run of a task with ``cache_for`` ends ``Cached`` (with its
inputs, the flow's parameters and an expiration); a later run first asks the validator whether a
stored state is still good and, on a hit, ends ``Cached`` without running the task. Every test
gives its runs a fresh ``MemoryCacheStore`` (``cache=``) so that no test sees another's cache, and
a ``FakeClock`` so that expiry is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from asyncflow import Flow, Parameter, Task, task
from asyncflow.caching import (
    MemoryCacheStore,
    all_inputs,
    all_parameters,
    default_cache,
    duration_only,
    never_use,
    partial_inputs_only,
    partial_parameters_only,
)
from asyncflow.engine.state import Cached, Failed, Mapped, Pending, Running, State, Success

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from asyncflow import EventBus
    from asyncflow.testing import EventRecorder, FakeClock

CACHE_FOR = timedelta(minutes=5)
CACHED = (Cached, "Task run succeeded.")
RUNNING = (Running, "Starting task run.")


def one(state: State) -> tuple[type[State], str | None]:
    return (type(state), state.message)


@pytest.fixture
def store() -> MemoryCacheStore:
    """A cache of the test's own."""
    return MemoryCacheStore()


class Counting:
    """``work(x, y)`` that counts its calls; returns ``(x, y, call number)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def task(self, **task_kwargs: Any) -> Task:
        @task(cache_for=CACHE_FOR, **task_kwargs)
        def work(x: Any, y: Any) -> tuple[Any, Any, int]:
            self.calls.append((x, y))
            return (x, y, len(self.calls))

        return work


def parameter_flow(work: Task) -> tuple[Flow, Task]:
    """Parameters ``x``, ``y`` feed ``work``; parameter ``z`` feeds nothing."""
    with Flow("cached") as flow:
        t = work(Parameter("x", default=1), Parameter("y", default=1))
        flow.add_task(Parameter("z", default=1))
    return flow, t


class TestCacheHits:
    async def test_a_first_run_caches_its_result_with_inputs_parameters_and_expiration(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        clock.advance(1000)
        counting = Counting()
        flow, t = parameter_flow(counting.task())

        state = await flow.run_async({"x": 2}, bus=bus, clock=clock, cache=store)

        final = state.result[t]
        assert one(final) == CACHED
        assert final.result == (2, 1, 1)
        assert final.cached_inputs == {"x": 2, "y": 1}
        assert final.cached_parameters == {"x": 2, "y": 1, "z": 1}
        assert final.cached_result_expiration == datetime.fromtimestamp(1300, UTC)
        assert [one(s) for s in recorder.states("work")] == [RUNNING, CACHED]
        assert len(store) == 1

    async def test_a_second_run_ends_cached_without_running_the_task(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        counting = Counting()
        flow, t = parameter_flow(counting.task())

        @task
        def after(v: tuple[Any, Any, int]) -> int:
            return v[2]

        flow.add_edge(t, after, key="v")

        first = await flow.run_async(bus=bus, clock=clock, cache=store)
        recorder.clear()
        second = await flow.run_async(bus=bus, clock=clock, cache=store)

        assert counting.calls == [(1, 1)]
        assert second.result[t] == first.result[t]
        events = [e for e in recorder.events if e.subject is t]
        assert [(type(e.old_state), one(e.new_state)) for e in events] == [(Pending, CACHED)]
        assert second.result[after].result == 1

    async def test_handlers_see_the_hit_as_one_transition_to_cached(
        self, bus: EventBus, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        seen: list[tuple[str, str]] = []

        def handler(t: Task, old: State, new: State) -> None:
            seen.append((type(old).__name__, type(new).__name__))

        flow, _ = parameter_flow(Counting().task(state_handlers=[handler]))

        await flow.run_async(bus=bus, clock=clock, cache=store)
        seen.clear()
        await flow.run_async(bus=bus, clock=clock, cache=store)

        assert seen == [("Pending", "Cached")]

    async def test_a_task_without_cache_for_runs_every_time_and_stores_nothing(
        self, bus: EventBus, store: MemoryCacheStore
    ) -> None:
        calls = []

        @task
        def plain() -> int:
            calls.append(1)
            return 1

        with Flow("uncached") as flow:
            t = plain()

        states = [await flow.run_async(bus=bus, cache=store) for _ in range(2)]

        assert [one(s.result[t]) for s in states] == [(Success, "Task run succeeded.")] * 2
        assert len(calls) == 2
        assert len(store) == 0

    async def test_a_failed_run_is_not_cached(
        self, bus: EventBus, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        calls = []

        @task(cache_for=CACHE_FOR)
        def fails_once() -> int:
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("first time")
            return 7

        with Flow("fail-then-cache") as flow:
            t = fails_once()

        first = await flow.run_async(bus=bus, clock=clock, cache=store)
        second = await flow.run_async(bus=bus, clock=clock, cache=store)

        assert type(first.result[t]) is Failed
        assert one(second.result[t]) == CACHED
        assert second.result[t].result == 7
        assert len(calls) == 2

    def test_caching_works_across_two_runs_of_the_sync_front_door(
        self, bus: EventBus, store: MemoryCacheStore
    ) -> None:
        counting = Counting()
        flow, t = parameter_flow(counting.task())

        first = flow.run(bus=bus, cache=store)
        second = flow.run(bus=bus, cache=store)

        assert [one(s.result[t]) for s in (first, second)] == [CACHED, CACHED]
        assert counting.calls == [(1, 1)]

    async def test_two_flows_with_the_same_task_do_not_share_a_cache(
        self, bus: EventBus, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        counting = Counting()
        work = counting.task()
        with Flow("one") as one_flow:
            work(1, 1)
        with Flow("two") as two_flow:
            work(1, 1)

        await one_flow.run_async(bus=bus, clock=clock, cache=store)
        await two_flow.run_async(bus=bus, clock=clock, cache=store)

        assert counting.calls == [(1, 1), (1, 1)]

    async def test_runs_given_different_stores_do_not_see_each_others_results(
        self, bus: EventBus, clock: FakeClock
    ) -> None:
        counting = Counting()
        flow, _ = parameter_flow(counting.task())

        await flow.run_async(bus=bus, clock=clock, cache=MemoryCacheStore())
        await flow.run_async(bus=bus, clock=clock, cache=MemoryCacheStore())

        assert len(counting.calls) == 2


class TestDefaultStore:
    @pytest.fixture
    def clean_default(self) -> Iterator[MemoryCacheStore]:
        default_cache().clear()
        yield default_cache()
        default_cache().clear()

    async def test_without_cache_a_run_uses_the_process_wide_store(
        self, bus: EventBus, clock: FakeClock, clean_default: MemoryCacheStore
    ) -> None:
        counting = Counting()
        flow, t = parameter_flow(counting.task())

        await flow.run_async(bus=bus, clock=clock)
        second = await flow.run_async(bus=bus, clock=clock)

        assert one(second.result[t]) == CACHED
        assert counting.calls == [(1, 1)]
        assert len(clean_default) == 1


# (validator, parameters of the second run, is it a hit?); the first run uses x=y=z=1.
VALIDATOR_TABLE: list[tuple[str, Callable[..., bool] | None, dict[str, int], bool]] = [
    ("default (duration_only)", None, {"x": 2}, True),
    ("never_use", never_use, {}, False),
    ("duration_only", duration_only, {"x": 2, "z": 2}, True),
    ("all_inputs, same inputs", all_inputs, {}, True),
    ("all_inputs, another parameter changed", all_inputs, {"z": 2}, True),
    ("all_inputs, an input changed", all_inputs, {"y": 2}, False),
    ("all_parameters, same parameters", all_parameters, {}, True),
    ("all_parameters, a parameter no input uses changed", all_parameters, {"z": 2}, False),
    ("partial_inputs_only(x), y changed", partial_inputs_only(validate_on=["x"]), {"y": 2}, True),
    ("partial_inputs_only(x), x changed", partial_inputs_only(validate_on=["x"]), {"x": 2}, False),
    ("partial_inputs_only(), x changed", partial_inputs_only(), {"x": 2}, True),
    (
        "partial_parameters_only(z), the inputs changed",
        partial_parameters_only(validate_on=["z"]),
        {"x": 2, "y": 2},
        True,
    ),
    (
        "partial_parameters_only(z), z changed",
        partial_parameters_only(validate_on=["z"]),
        {"z": 2},
        False,
    ),
]


class TestValidators:
    @pytest.mark.parametrize(
        ("validator", "second", "hit"),
        [pytest.param(v, s, h, id=name) for name, v, s, h in VALIDATOR_TABLE],
    )
    async def test_the_validator_decides_whether_a_stored_result_stands_in(
        self,
        bus: EventBus,
        clock: FakeClock,
        store: MemoryCacheStore,
        validator: Callable[..., bool] | None,
        second: dict[str, int],
        hit: bool,
    ) -> None:
        counting = Counting()
        flow, t = parameter_flow(counting.task(cache_validator=validator))

        await flow.run_async({"x": 1, "y": 1, "z": 1}, bus=bus, clock=clock, cache=store)
        state = await flow.run_async(
            {"x": 1, "y": 1, "z": 1, **second}, bus=bus, clock=clock, cache=store
        )

        assert len(counting.calls) == (1 if hit else 2)
        assert one(state.result[t]) == CACHED  # a hit, or a fresh result cached again
        assert state.result[t].result[2] == (1 if hit else 2)

    @pytest.mark.parametrize(
        ("seconds_later", "hit"),
        [(0, True), (299, True), (299.999, True), (300, False), (86_400, False)],
    )
    @pytest.mark.parametrize("validator", [duration_only, all_inputs, all_parameters])
    async def test_a_stored_result_expires_after_cache_for_on_the_runs_clock(
        self,
        bus: EventBus,
        clock: FakeClock,
        store: MemoryCacheStore,
        validator: Callable[..., bool],
        seconds_later: float,
        hit: bool,
    ) -> None:
        counting = Counting()
        flow, t = parameter_flow(counting.task(cache_validator=validator))

        await flow.run_async(bus=bus, clock=clock, cache=store)
        clock.advance(seconds_later)
        state = await flow.run_async(bus=bus, clock=clock, cache=store)

        assert len(counting.calls) == (1 if hit else 2)
        assert state.result[t].result[2] == (1 if hit else 2)

    async def test_changing_an_input_back_finds_the_earlier_result_again(
        self, bus: EventBus, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        counting = Counting()
        flow, t = parameter_flow(counting.task(cache_validator=all_inputs))

        results = [
            (await flow.run_async({"x": x}, bus=bus, clock=clock, cache=store)).result[t].result
            for x in (1, 2, 1, 2)
        ]

        assert results == [(1, 1, 1), (2, 1, 2), (1, 1, 1), (2, 1, 2)]
        assert counting.calls == [(1, 1), (2, 1)]

    async def test_a_validator_that_raises_counts_as_a_miss(
        self, bus: EventBus, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        def broken(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
            raise RuntimeError("validator broke")

        counting = Counting()
        flow, t = parameter_flow(counting.task(cache_validator=broken))

        await flow.run_async(bus=bus, clock=clock, cache=store)
        state = await flow.run_async(bus=bus, clock=clock, cache=store)

        assert len(counting.calls) == 2
        assert one(state.result[t]) == CACHED
        assert one(state) == (Success, "All reference tasks succeeded.")


class TestCacheKey:
    async def test_two_different_tasks_with_one_cache_key_share_their_results(
        self, bus: EventBus, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        calls = []

        @task(cache_for=CACHE_FOR, cache_key="answer")
        def compute() -> int:
            calls.append("compute")
            return 42

        @task(cache_for=CACHE_FOR, cache_key="answer")
        def recompute() -> int:
            calls.append("recompute")
            return -1

        with Flow("producer") as producer:
            compute()
        with Flow("consumer") as consumer:
            r = recompute()

        await producer.run_async(bus=bus, clock=clock, cache=store)
        state = await consumer.run_async(bus=bus, clock=clock, cache=store)

        assert calls == ["compute"]
        assert one(state.result[r]) == CACHED
        assert state.result[r].result == 42

    async def test_a_later_task_in_the_same_run_reuses_an_earlier_tasks_shared_key(
        self, bus: EventBus, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        calls = []

        @task(cache_for=CACHE_FOR, cache_key="shared")
        def first() -> str:
            calls.append("first")
            return "from first"

        @task(cache_for=CACHE_FOR, cache_key="shared")
        def second() -> str:
            calls.append("second")
            return "from second"

        with Flow("same-run") as flow:
            a = first()
            b = second(upstream_tasks=[a])

        state = await flow.run_async(bus=bus, clock=clock, cache=store)

        assert calls == ["first"]
        assert state.result[b].result == "from first"
        assert one(state.result[b]) == CACHED


class TestMappedCaching:
    async def test_each_child_is_cached_on_its_own_and_the_parent_is_rebuilt_from_them(
        self, bus: EventBus, recorder: EventRecorder, clock: FakeClock, store: MemoryCacheStore
    ) -> None:
        calls = []

        @task(cache_for=CACHE_FOR, cache_validator=all_inputs)
        def square(x: int) -> int:
            calls.append(x)
            return x * x

        with Flow("mapped-cache") as flow:
            m = square.map(Parameter("xs"))

        await flow.run_async({"xs": [1, 2, 3]}, bus=bus, clock=clock, cache=store)
        recorder.clear()
        state = await flow.run_async({"xs": [1, 5, 3]}, bus=bus, clock=clock, cache=store)

        assert sorted(calls[:3]) == [1, 2, 3]  # the first run (children run concurrently)
        assert calls[3:] == [5]  # the second run: only the changed child
        final = state.result[m]
        assert one(final) == (Mapped, "Ready to proceed with mapping.")
        assert final.result == [1, 25, 9]
        assert [one(s) for s in final.map_states] == [CACHED, CACHED, CACHED]
        child_moves = [
            (e.map_index, type(e.new_state).__name__)
            for e in recorder.events
            if e.subject is m and e.map_index is not None
        ]
        assert sorted(child_moves) == [(0, "Cached"), (1, "Cached"), (1, "Running"), (2, "Cached")]
