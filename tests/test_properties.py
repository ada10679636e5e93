"""Properties of the scheduler over random DAGs with random task behaviour.

Each example builds a DAG whose edges only go from a lower task index to a higher one. Task ``i``
returns ``i`` plus the sum of the integer results it receives from its upstream tasks (one
keyword argument ``x<j>`` per upstream task ``j``), unless its behaviour says otherwise: raise a
``ValueError``, raise ``signals.SKIP``, or fail once and succeed on its single retry (after a
ten-minute delay on a ``FakeClock``). Tasks are sync (worker threads) or async (on the loop),
with a random trigger and a random ``skip_on_upstream_skip``, and the flow has a random set of
reference tasks (empty: the default, its terminal tasks). A small interpreter computes what
Prefect 1.x semantics say every task ends in; the engine must agree, and its event stream must
be a legal, ordered history.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncflow import EventBus, Flow, Task, triggers
from asyncflow.engine import signals
from asyncflow.engine.state import (
    Cached,
    Cancelled,
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
from asyncflow.testing import EventRecorder, FakeClock

if TYPE_CHECKING:
    from asyncflow import StateChange

PROPERTY = settings(max_examples=60, deadline=None)
BEHAVIOURS = ("succeed", "fail", "skip", "flaky")
TRIGGERS = {
    "all_successful": triggers.all_successful,
    "all_finished": triggers.all_finished,
    "any_failed": triggers.any_failed,
    "any_successful": triggers.any_successful,
}
RETRY_DELAY = timedelta(minutes=10)
UPSTREAM_SKIPPED = (
    "Upstream task was skipped; if this was not the intended behavior, consider changing "
    "`skip_on_upstream_skip=False` for this task."
)

# The legal moves of the state machine, by exact state class. A transition not listed is a bug.
# (Pending -> Success/Cached: a target or cache found before running, as in Prefect 1.x.)
TASK_MOVES: dict[type[State], set[type[State]]] = {
    Pending: {Running, Skipped, TriggerFailed, Failed, Paused, Cancelled, Success, Cached},
    Paused: {Resume, Cancelled},
    Resume: {Running, Skipped, TriggerFailed, Failed, Cancelled},
    Running: {
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
        Retrying,
        Paused,
    },
    Failed: {Retrying},
    TimedOut: {Retrying},
    Retrying: {Running, Cancelled},
    Looped: {Running, Cancelled},
}
FLOW_MOVES: dict[type[State], set[type[State]]] = {
    Scheduled: {Running, Cancelled},
    Running: {Success, Failed, Cancelled, TimedOut},
}


# -- the random DAGs ----------------------------------------------------------------------------


@attrs.frozen
class Node:
    index: int
    upstream: tuple[int, ...]
    behaviour: str
    is_async: bool
    trigger: str
    skip_on_upstream_skip: bool

    @property
    def name(self) -> str:
        return f"t{self.index}"


@attrs.frozen
class Dag:
    nodes: tuple[Node, ...]
    reference: frozenset[int]  # empty: the flow's default (its terminal tasks)

    def reference_tasks(self) -> set[int]:
        if self.reference:
            return set(self.reference)
        has_downstream = {j for node in self.nodes for j in node.upstream}
        return {node.index for node in self.nodes} - has_downstream


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 25) -> Dag:
    n = draw(st.integers(min_value=1, max_value=max_tasks))
    nodes = []
    for i in range(n):
        ups = draw(st.sets(st.integers(0, i - 1), max_size=4)) if i else set()
        nodes.append(
            Node(
                index=i,
                upstream=tuple(sorted(ups)),
                behaviour=draw(st.sampled_from(BEHAVIOURS)),
                is_async=draw(st.booleans()),
                trigger=draw(st.sampled_from(sorted(TRIGGERS))),
                skip_on_upstream_skip=draw(st.booleans()),
            )
        )
    reference = draw(st.frozensets(st.integers(0, n - 1)))
    return Dag(tuple(nodes), reference)


class SyncProbe(Task):
    """Task ``index`` of a random DAG: returns ``index`` + the sum of its integer inputs."""

    def __init__(self, node: Node) -> None:
        super().__init__(
            name=node.name,
            trigger=TRIGGERS[node.trigger],
            skip_on_upstream_skip=node.skip_on_upstream_skip,
            max_retries=1 if node.behaviour == "flaky" else 0,
            retry_delay=RETRY_DELAY if node.behaviour == "flaky" else None,
        )
        self.node = node
        self.attempts = 0

    def act(self, inputs: dict[str, Any]) -> int:
        self.attempts += 1
        behaviour = self.node.behaviour
        if behaviour == "fail":
            raise ValueError(f"{self.name} failed")
        if behaviour == "skip":
            raise signals.SKIP(f"{self.name} skipped itself")
        if behaviour == "flaky" and self.attempts == 1:
            raise ValueError(f"{self.name} flaked")
        return self.node.index + sum(v for v in inputs.values() if type(v) is int)

    def run(self, **inputs: Any) -> int:
        return self.act(inputs)


class AsyncProbe(SyncProbe):
    async def run(self, **inputs: Any) -> int:  # type: ignore[override]
        await anyio.lowlevel.checkpoint()
        return self.act(inputs)


@attrs.frozen
class Outcome:
    final: State
    tasks: dict[str, Task]
    events: list[StateChange]
    clock: FakeClock

    def by_subject(self) -> dict[str | None, list[StateChange]]:
        grouped: dict[str | None, list[StateChange]] = defaultdict(list)
        for event in self.events:
            grouped[event.task_name].append(event)
        return grouped


def run_dag(dag: Dag) -> Outcome:
    """Build the flow of ``dag`` and run it on a bus, a recorder and a fake clock of its own."""
    flow = Flow("random-dag")
    tasks: dict[str, Task] = {}
    for node in dag.nodes:
        t = (AsyncProbe if node.is_async else SyncProbe)(node)
        tasks[node.name] = flow.add_task(t)
        for j in node.upstream:
            flow.add_edge(tasks[f"t{j}"], t, key=f"x{j}")
    if dag.reference:
        flow.set_reference_tasks(tasks[f"t{i}"] for i in dag.reference)
    bus, recorder, clock = EventBus(), EventRecorder(), FakeClock()
    bus.subscribe(recorder)

    async def main() -> State:
        with anyio.fail_after(20):  # real seconds: a hang fails the example instead of the suite
            return await flow.run_async(bus=bus, clock=clock)

    final = anyio.run(main)
    return Outcome(final, tasks, list(recorder.events), clock)


# -- the reference interpreter --------------------------------------------------------------


@attrs.frozen
class Expected:
    path: tuple[str, ...]  # repr of every new state the task goes through
    state: State  # the final state (its result: the task's value, or None)


def trigger_failure(node: Node, ups: list[State]) -> str | None:
    """The TriggerFailed message of ``node``'s trigger for upstream states ``ups``, if it fails."""
    if node.trigger == "all_successful" and not all(s.is_successful() for s in ups):
        return 'Trigger was "all_successful" but some of the upstream tasks failed.'
    if node.trigger == "any_failed" and ups and not any(s.is_failed() for s in ups):
        return 'Trigger was "any_failed" but none of the upstream tasks failed.'
    if node.trigger == "any_successful" and ups and not any(s.is_successful() for s in ups):
        return 'Trigger was "any_successful" but none of the upstream tasks succeeded.'
    return None  # all_finished: every upstream is finished by the time the task is considered


def interpret(dag: Dag) -> dict[str, Expected]:
    """What each task of ``dag`` goes through, by Prefect 1.x rules."""
    out: dict[str, Expected] = {}
    for node in dag.nodes:
        ups = [out[f"t{j}"].state for j in node.upstream]
        value = node.index + sum(s.result for s in ups if type(s) is Success)
        running = 'Running("Starting task run.")'
        succeeded = Success("Task run succeeded.", value)
        if node.skip_on_upstream_skip and any(s.is_skipped() for s in ups):
            state: State = Skipped(UPSTREAM_SKIPPED)
            path = [repr(state)]
        elif (message := trigger_failure(node, ups)) is not None:
            state = TriggerFailed(message)
            path = [repr(state)]
        elif node.behaviour == "succeed":
            state = succeeded
            path = [running, repr(state)]
        elif node.behaviour == "fail":
            state = Failed(f"Error during execution of task: ValueError('{node.name} failed')")
            path = [running, repr(state)]
        elif node.behaviour == "skip":
            state = Skipped(f"{node.name} skipped itself")
            path = [running, repr(state)]
        else:  # flaky
            state = succeeded
            failed = f"Error during execution of task: ValueError('{node.name} flaked')"
            retrying = "Retrying Task (after attempt 1 of 2)"
            path = [running, repr(Failed(failed)), repr(Retrying(retrying)), running, repr(state)]
        out[node.name] = Expected(tuple(path), state)
    return out


# -- the properties -----------------------------------------------------------------------------


class TestFinalStates:
    @PROPERTY
    @given(dags())
    def test_every_task_ends_in_exactly_one_finished_state(self, dag: Dag) -> None:
        run = run_dag(dag)
        by_subject = run.by_subject()
        assert run.final.result.keys() == set(run.tasks.values())
        for name, task in run.tasks.items():
            events = by_subject[name]
            final = run.final.result[task]
            assert final.is_finished(), (name, final)
            assert events[-1].new_state is final
            # A Failed that is retried is finished for a moment; every other finished state
            # before the last one would be a second end.
            early_ends = [
                (e.new_state, nxt.new_state)
                for e, nxt in itertools.pairwise(events)
                if e.new_state.is_finished() and type(nxt.new_state) is not Retrying
            ]
            assert early_ends == [], name

    @PROPERTY
    @given(dags())
    def test_each_task_ends_as_the_reference_interpreter_says(self, dag: Dag) -> None:
        run = run_dag(dag)
        expected = interpret(dag)
        by_subject = run.by_subject()
        for name, task in run.tasks.items():
            final = run.final.result[task]
            assert tuple(repr(e.new_state) for e in by_subject[name]) == expected[name].path
            if type(final) is Success:
                assert final.result == expected[name].state.result, name
            elif type(final) is Failed:
                assert type(final.result) is ValueError, name

    @PROPERTY
    @given(dags())
    def test_the_flow_state_follows_the_reference_tasks(self, dag: Dag) -> None:
        run = run_dag(dag)
        reference = [run.final.result[run.tasks[f"t{i}"]] for i in dag.reference_tasks()]
        if any(s.is_failed() for s in reference):
            assert repr(run.final) == 'Failed("Some reference tasks failed.")'
        else:
            assert repr(run.final) == 'Success("All reference tasks succeeded.")'


class TestEventStream:
    @PROPERTY
    @given(dags())
    def test_each_subjects_events_form_a_legal_path_through_the_state_machine(
        self, dag: Dag
    ) -> None:
        run = run_dag(dag)
        for name, events in run.by_subject().items():
            moves, previous = (FLOW_MOVES, Scheduled()) if name is None else (TASK_MOVES, Pending())
            assert type(events[0].old_state) is type(previous), name
            for event in events:
                if event is not events[0]:
                    assert event.old_state is previous, (name, event.seq)
                old, new = type(event.old_state), type(event.new_state)
                assert new in moves.get(old, set()), f"{name}: illegal move {old} -> {new}"
                previous = event.new_state

    @PROPERTY
    @given(dags())
    def test_no_task_moves_before_all_its_upstream_tasks_have_finished(self, dag: Dag) -> None:
        run = run_dag(dag)
        by_subject = run.by_subject()
        for node in dag.nodes:
            first = by_subject[node.name][0]
            for j in node.upstream:
                upstream_end = by_subject[f"t{j}"][-1]
                assert upstream_end.new_state.is_finished()
                assert upstream_end.seq < first.seq, (f"t{j}", node.name)

    @PROPERTY
    @given(dags())
    def test_seq_counts_up_from_1_and_the_flows_final_event_comes_last(self, dag: Dag) -> None:
        run = run_dag(dag)
        assert [e.seq for e in run.events] == list(range(1, len(run.events) + 1))
        assert {e.run_id for e in run.events} == {run.events[0].run_id}
        flow_events = [e for e in run.events if e.task_name is None]
        assert [repr(e.new_state) for e in flow_events] == [
            'Running("Running flow.")',
            repr(run.final),
        ]
        assert [
            e for e in run.events if isinstance(e.new_state, Finished) and e.task_name is None
        ] == [run.events[-1]]
        assert run.events[-1].new_state is run.final

    @PROPERTY
    @given(dags())
    def test_a_retried_task_runs_again_only_when_its_retry_delay_has_passed(self, dag: Dag) -> None:
        run = run_dag(dag)
        for name, events in run.by_subject().items():
            for retrying, again in itertools.pairwise(events):
                if type(retrying.new_state) is Retrying:
                    start = retrying.new_state.start_time.timestamp()
                    assert start == retrying.timestamp + RETRY_DELAY.total_seconds(), name
                    assert again.timestamp >= start, name
