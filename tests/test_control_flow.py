"""Control flow: ``case``, ``switch``, ``ifelse``, ``merge`` and ``FilterTask``, as in Prefect 1.x.

A branch that is not taken ends ``Skipped`` (its ``CompareValue`` raised ``SKIP``), the skip
cascades to everything downstream that keeps ``skip_on_upstream_skip=True``, and ``merge`` (trigger
``not_all_skipped``) returns the result of the branch that ran. ``FilterTask`` cleans up a mapped
result (drops ``None`` and exceptions). With ``mapped=True`` the choice is made per mapped child,
and skips cascade index by index through maps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from asyncflow import FilterTask, Flow, Parameter, Task, case, ifelse, merge, switch, task
from asyncflow.engine import signals
from asyncflow.engine.state import Failed, Mapped, Skipped, State, Success, TriggerFailed

if TYPE_CHECKING:
    from collections.abc import Iterable

    from asyncflow import EventBus
    from asyncflow.testing import EventRecorder

SUCCEEDED = (Success, "Task run succeeded.")
UPSTREAM_SKIPPED = (
    Skipped,
    "Upstream task was skipped; if this was not the intended behavior, consider changing "
    "`skip_on_upstream_skip=False` for this task.",
)
FLOW_SUCCEEDED = (Success, "All reference tasks succeeded.")


def shape(states: Iterable[State]) -> list[tuple[type[State], str | None]]:
    return [(type(s), s.message) for s in states]


def one(state: State) -> tuple[type[State], str | None]:
    return (type(state), state.message)


async def run(flow: Flow, bus: EventBus, **kw: Any) -> State:
    with anyio.fail_after(5):
        return await flow.run_async(bus=bus, **kw)


@task
def identity(x: Any) -> Any:
    return x


@task
def branch_a() -> str:
    return "A"


@task
def branch_b() -> str:
    return "B"


@task
def branch_c() -> str:
    return "C"


@task
def after(value: Any) -> str:
    return f"after {value}"


@task
def inc(x: int) -> int:
    return x + 1


@task
def collect(xs: list[Any]) -> list[Any]:
    return xs


class TestCase:
    def case_flow(self) -> tuple[Flow, dict[str, Task]]:
        """``cond == "a"`` guards ``inside -> chained``; ``outside`` and ``tolerant`` follow."""
        with Flow("case") as flow:
            cond = identity(Parameter("value"))
            with case(cond, "a"):
                inside = branch_a()
                chained = after(inside)
            outside = after(chained)
            tolerant = after.copy(skip_on_upstream_skip=False)(chained)
        return flow, {
            "inside": inside,
            "chained": chained,
            "outside": outside,
            "tolerant": tolerant,
        }

    async def test_when_the_value_matches_the_block_runs(self, bus: EventBus) -> None:
        flow, t = self.case_flow()

        state = await run(flow, bus, parameters={"value": "a"})

        assert one(state) == FLOW_SUCCEEDED
        assert [state.result[t[k]].result for k in ("inside", "chained", "outside")] == [
            "A",
            "after A",
            "after after A",
        ]

    async def test_when_it_does_not_match_the_block_is_skipped_and_the_skip_cascades(
        self, bus: EventBus
    ) -> None:
        flow, t = self.case_flow()

        state = await run(flow, bus, parameters={"value": "b"})

        assert one(state) == FLOW_SUCCEEDED
        assert (
            shape(state.result[t[k]] for k in ("inside", "chained", "outside"))
            == [UPSTREAM_SKIPPED] * 3
        )
        assert state.result[t["tolerant"]].result == "after None"

    async def test_the_skipped_check_says_which_value_did_not_match(self, bus: EventBus) -> None:
        flow, t = self.case_flow()

        state = await run(flow, bus, parameters={"value": "b"})

        (check,) = flow.upstream_tasks(t["inside"])
        assert one(state.result[check]) == (Skipped, 'Provided value "b" did not match "a"')

    def test_only_tasks_without_an_upstream_task_in_the_block_get_the_check(self) -> None:
        with Flow("case-edges") as flow:
            cond = identity(1)
            outer = branch_b()
            with case(cond, 1):
                first = branch_a()
                second = after(first)
                from_outside = after(outer)

        (check,) = flow.upstream_tasks(first)
        assert flow.upstream_tasks(check) == {cond}
        assert flow.upstream_tasks(second) == {first}
        assert flow.upstream_tasks(from_outside) == {outer, check}
        assert flow.upstream_tasks(outer) == set()

    @pytest.mark.parametrize(("value", "expected"), [(True, "yes"), (False, "no")])
    async def test_merge_picks_the_branch_that_ran(
        self, bus: EventBus, value: bool, expected: str
    ) -> None:
        @task
        def yes() -> str:
            return "yes"

        @task
        def no() -> str:
            return "no"

        with Flow("case-merge") as flow:
            cond = identity(Parameter("value"))
            with case(cond, True):
                y = yes()
            with case(cond, False):
                n = no()
            merged = merge(y, n)
            shown = after(merged)

        state = await run(flow, bus, parameters={"value": value})

        assert state.result[merged].result == expected
        assert state.result[shown].result == f"after {expected}"
        assert one(state) == FLOW_SUCCEEDED


class TestSwitch:
    @pytest.mark.parametrize(
        ("value", "runs"),
        [("a", "A"), ("b", "B"), ("c", "C"), ("z", None)],
    )
    async def test_only_the_matching_case_runs_and_merge_returns_it(
        self, bus: EventBus, value: str, runs: str | None
    ) -> None:
        with Flow("switch") as flow:
            cond = identity(Parameter("value"))
            branches = {"a": branch_a(), "b": branch_b(), "c": branch_c()}
            switch(cond, branches)
            merged = merge(*branches.values())

        state = await run(flow, bus, parameters={"value": value})

        for key, branch in branches.items():
            if key == value:
                assert one(state.result[branch]) == SUCCEEDED
            else:
                assert one(state.result[branch]) == UPSTREAM_SKIPPED
        if runs is None:
            assert type(state.result[merged]) is Skipped  # see TestMerge for its result
        else:
            assert state.result[merged].result == runs
        assert one(state) == FLOW_SUCCEEDED

    async def test_a_branch_chain_after_a_skipped_case_is_skipped_too(self, bus: EventBus) -> None:
        with Flow("switch-chain") as flow:
            a, b = branch_a(), branch_b()
            after_a, after_b = after(a), after(b)
            switch(identity("b"), {"a": a, "b": b})

        state = await run(flow, bus)

        assert one(state.result[after_a]) == UPSTREAM_SKIPPED
        assert state.result[after_b].result == "after B"


class TestIfElse:
    @pytest.mark.parametrize(
        ("value", "taken"),
        [(1, "A"), (0, "B"), ("x", "A"), ("", "B"), (None, "B"), ([0], "A"), ([], "B")],
    )
    async def test_the_true_task_runs_for_a_truthy_value_and_the_false_task_otherwise(
        self, bus: EventBus, value: Any, taken: str
    ) -> None:
        with Flow("ifelse") as flow:
            yes, no = branch_a(), branch_b()
            ifelse(identity(Parameter("value")), yes, no)
            merged = merge(yes, no)

        state = await run(flow, bus, parameters={"value": value})

        ran, skipped = (yes, no) if taken == "A" else (no, yes)
        assert one(state.result[ran]) == SUCCEEDED
        assert one(state.result[skipped]) == UPSTREAM_SKIPPED
        assert state.result[merged].result == taken


class TestMerge:
    @pytest.mark.parametrize(
        ("results", "expected"),
        [
            ((1, 2), 1),
            ((None, 2), 2),
            ((None, None), None),
            ((0, 2), 0),  # a falsy result that is not None counts
        ],
    )
    async def test_merge_returns_the_first_result_that_is_not_none_in_argument_order(
        self, bus: EventBus, results: tuple[Any, Any], expected: Any
    ) -> None:
        with Flow("merge-order") as flow:
            merged = merge(identity(results[0]), identity(results[1]))

        state = await run(flow, bus)

        assert one(state.result[merged]) == SUCCEEDED
        assert state.result[merged].result == expected

    async def test_merge_takes_the_numeric_order_of_many_branches(self, bus: EventBus) -> None:
        with Flow("merge-many") as flow:
            values = [None] * 9 + [10, 11]
            merged = merge(*[identity(v) for v in values])

        state = await run(flow, bus)

        assert state.result[merged].result == 10

    async def test_when_no_branch_ran_merge_is_skipped_with_no_result(self, bus: EventBus) -> None:
        with Flow("merge-none") as flow:
            cond = identity("z")
            a, b = branch_a(), branch_b()
            switch(cond, {"a": a, "b": b})
            merged = merge(a, b)
            tolerant = after.copy(skip_on_upstream_skip=False)(merged)

        state = await run(flow, bus)

        assert type(state.result[merged]) is Skipped
        assert state.result[merged].result is None
        assert state.result[tolerant].result == "after None"

    async def test_when_no_branch_ran_merge_says_so_in_prefects_words(self, bus: EventBus) -> None:
        with Flow("merge-none-message") as flow:
            a, b = branch_a(), branch_b()
            switch(identity("z"), {"a": a, "b": b})
            merged = merge(a, b)

        state = await run(flow, bus)

        assert one(state.result[merged]) == (Skipped, "All upstreams were skipped")

    async def test_a_failed_branch_fails_the_merge_trigger(self, bus: EventBus) -> None:
        @task
        def broken() -> None:
            raise ValueError("nope")

        with Flow("merge-failed") as flow:
            merged = merge(broken(), branch_b())

        state = await run(flow, bus)

        assert one(state.result[merged]) == (
            TriggerFailed,
            'Trigger was "not_all_skipped" but some of the upstream tasks failed.',
        )


@task
def maybe(x: int) -> int | None:
    """``2`` skips itself, ``3`` returns None, ``4`` fails; anything else comes back."""
    if x == 2:
        raise signals.SKIP("two")
    if x == 3:
        return None
    if x == 4:
        raise ValueError("four")
    return x


class TestFilterTask:
    async def test_it_drops_none_and_the_results_of_failed_and_skipped_children(
        self, bus: EventBus
    ) -> None:
        with Flow("filter") as flow:
            m = maybe.map([1, 2, 3, 4, 5])
            kept = FilterTask()(m)

        state = await run(flow, bus)

        assert shape(state.result[m].map_states) == [
            SUCCEEDED,
            (Skipped, "two"),
            SUCCEEDED,
            (Failed, "Error during execution of task: ValueError('four')"),
            SUCCEEDED,
        ]
        assert one(state.result[kept]) == SUCCEEDED
        assert state.result[kept].result == [1, 5]

    async def test_a_filter_func_and_log_func_choose_and_report_what_is_kept(
        self, bus: EventBus
    ) -> None:
        logged: list[list[Any]] = []

        with Flow("filter-func") as flow:
            kept = FilterTask(filter_func=lambda r: r % 2 == 0, log_func=logged.append)(
                inc.map([0, 1, 2, 3])
            )

        state = await run(flow, bus)

        assert state.result[kept].result == [2, 4]
        assert logged == [[2, 4]]

    async def test_prefects_filter_example_prints_what_its_docs_say(self, bus: EventBus) -> None:
        default_filter = FilterTask()
        even_filter = FilterTask(filter_func=lambda x: x % 2 == 0)

        @task
        def add(x: int) -> int:
            return x + 1

        @task
        def div(x: int) -> float:
            return 1 / x

        with Flow("filter-numbers") as flow:
            even_numbers = even_filter(add.map(x=[-1, 0, 1, 2, 3, 99, 314]))
            final_numbers = default_filter(div.map(even_numbers))

        state = await run(flow, bus)

        assert state.result[final_numbers].result == [0.5, 0.25, 0.01]

    async def test_it_runs_even_when_every_child_failed(self, bus: EventBus) -> None:
        with Flow("filter-all-failed") as flow:
            kept = FilterTask()(maybe.map([4, 4]))

        state = await run(flow, bus)

        assert one(state.result[kept]) == SUCCEEDED
        assert state.result[kept].result == []


@task
def is_even(x: int) -> bool:
    return x % 2 == 0


@task
def double(x: int) -> int:
    return 2 * x


@task
def negate(x: int) -> int:
    return -x


class TestControlFlowThroughMaps:
    @pytest.mark.parametrize(("value", "runs"), [(True, True), (False, False)])
    async def test_a_case_around_a_map_runs_or_skips_the_whole_map_and_what_follows(
        self, bus: EventBus, recorder: EventRecorder, value: bool, runs: bool
    ) -> None:
        with Flow("case-map") as flow:
            cond = identity(Parameter("value"))
            with case(cond, True):
                first = inc.map([1, 2, 3])
            second = inc.map(first)
            reduced = collect(second)

        state = await run(flow, bus, parameters={"value": value})

        if runs:
            assert one(state.result[first]) == (Mapped, "Ready to proceed with mapping.")
            assert state.result[reduced].result == [3, 4, 5]
        else:
            for t in (first, second, reduced):
                assert one(state.result[t]) == UPSTREAM_SKIPPED
            assert [e for e in recorder.events if e.map_index is not None] == []
        assert one(state) == FLOW_SUCCEEDED

    async def test_a_skip_in_one_child_cascades_only_down_its_own_index(
        self, bus: EventBus
    ) -> None:
        with Flow("skip-through-maps") as flow:
            first = maybe.map([1, 2, 5])
            second = inc.map(first)
            third = double.map(second)
            kept = FilterTask()(third)

        state = await run(flow, bus)

        assert shape(state.result[third].map_states) == [
            SUCCEEDED,
            UPSTREAM_SKIPPED,
            SUCCEEDED,
        ]
        assert state.result[kept].result == [4, 12]
        assert one(state) == FLOW_SUCCEEDED

    async def test_a_mapped_ifelse_chooses_a_branch_per_child(self, bus: EventBus) -> None:
        with Flow("mapped-ifelse") as flow:
            xs = [1, 2, 3, 4]
            evens = double.map(xs)
            odds = negate.map(xs)
            ifelse(is_even.map(xs), evens, odds, mapped=True)
            kept_evens = FilterTask()(evens)

        state = await run(flow, bus)

        assert shape(state.result[evens].map_states) == [
            UPSTREAM_SKIPPED,
            SUCCEEDED,
            UPSTREAM_SKIPPED,
            SUCCEEDED,
        ]
        assert state.result[odds].result == [-1, None, -3, None]
        assert state.result[kept_evens].result == [4, 8]

    async def test_a_mapped_switch_chooses_a_case_per_child(self, bus: EventBus) -> None:
        @task
        def kind(x: int) -> str:
            return "small" if x < 10 else "big"

        with Flow("mapped-switch") as flow:
            xs = [1, 20, 3]
            small = inc.map(xs)
            big = negate.map(xs)
            switch(kind.map(xs), {"small": small, "big": big}, mapped=True)

        state = await run(flow, bus)

        assert state.result[small].result == [2, None, 4]
        assert state.result[big].result == [None, -20, None]
        assert shape(state.result[big].map_states) == [
            UPSTREAM_SKIPPED,
            SUCCEEDED,
            UPSTREAM_SKIPPED,
        ]

    async def test_a_mapped_merge_picks_the_branch_that_ran_per_child(self, bus: EventBus) -> None:
        with Flow("mapped-merge") as flow:
            xs = [1, 2, 3, 4]
            evens = double.map(xs)
            odds = negate.map(xs)
            ifelse(is_even.map(xs), evens, odds, mapped=True)
            merged = merge(evens, odds, mapped=True)

        state = await run(flow, bus)

        assert state.result[merged].result == [-1, 4, -3, 8]


class TestPrefect1Forms:
    def test_case_works_with_the_imperative_api(self, bus: EventBus) -> None:
        @task
        def cond() -> str:
            return "b"

        @task
        def on_a() -> str:
            return "a ran"

        @task
        def on_b() -> str:
            return "b ran"

        flow = Flow("imperative-case")
        c = cond.copy()
        flow.add_task(c)
        a, b = on_a.copy(), on_b.copy()
        with case(c, "a"):
            a.bind(flow=flow)
        with case(c, "b"):
            b.bind(flow=flow)

        state = flow.run(bus=bus)

        assert one(state.result[a])[0] is Skipped
        assert state.result[b].result == "b ran"
        assert sorted(t.name for t in flow.tasks if t.name.startswith("case(")) == [
            "case(a)",
            "case(b)",
        ]

    def test_parameters_made_in_a_case_block_stay_root_tasks(self, bus: EventBus) -> None:
        @task
        def cond() -> bool:
            return False

        @task
        def echo(x: int) -> int:
            return x

        with Flow("case-parameter") as flow, case(cond(), True):
            x = Parameter("x", default=1)
            e = echo(x)

        state = flow.run(bus=bus)

        assert flow.upstream_tasks(x) == set()
        assert state.result[x].result == 1
        assert one(state.result[e])[0] is Skipped

    def test_a_case_value_that_is_a_task_is_refused(self) -> None:
        with Flow("case-task-value"), pytest.raises(TypeError, match="`value` cannot be a task"):
            case(Task(), Task())

    def test_merge_passes_task_arguments_on(self) -> None:
        with Flow("merge-args") as flow:
            m = merge(Task(), Task(), checkpoint=False, name="joined")

        assert m.checkpoint is False
        assert m.name == "joined"
        assert sorted(e.key for e in flow.edges_to(m)) == ["task_1", "task_2"]

    def test_a_merge_that_skips_on_upstream_skip_is_refused(self) -> None:
        with (
            Flow("merge-skip"),
            pytest.raises(ValueError, match="skip_on_upstream_skip=False"),
        ):
            merge(Task(), skip_on_upstream_skip=True)

    def test_ifelse_with_none_for_a_branch_adds_no_task_for_it(self, bus: EventBus) -> None:
        @task
        def truthy() -> int:
            return 1

        @task
        def yes() -> str:
            return "yes"

        with Flow("ifelse-none") as flow:
            y = yes()
            ifelse(truthy(), y, None)

        state = flow.run(bus=bus)

        assert state.result[y].result == "yes"
        assert all(t.name != "None" for t in flow.tasks)
        assert len(flow.tasks) == 4  # truthy, as_bool, CompareValue: "True", yes
        ifelse(truthy, None, None, flow=flow)
        assert len(flow.tasks) == 4

    def test_one_case_block_cannot_span_two_flows(self) -> None:
        first, second = Flow("one"), Flow("two")
        with case(Task(), True) as block:
            Task().bind(flow=first)
            with pytest.raises(ValueError, match="Multiple flows cannot be used with the same"):
                block.add_task(Task(), second)
