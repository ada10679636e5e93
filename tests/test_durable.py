"""Durable runs on the engine's side: resume, flow versions, ownership and the run keywords."""

from __future__ import annotations

import pytest

from asyncflow import Flow, Parameter, task, triggers
from asyncflow.exceptions import RunStateError
from asyncflow.runtime.durable import flow_version
from asyncflow.states import Mapped, Paused, Running, Success
from asyncflow.store import FlowMismatch, MemoryStore, RunNotFound, Store


class Flaky:
    """Task code that fails while ``broken`` holds the names it should fail for."""

    def __init__(self, *broken: object) -> None:
        self.broken = set(broken)
        self.calls: list[object] = []

    def __call__(self, key: object, value: int) -> int:
        self.calls.append(key)
        if key in self.broken:
            raise ValueError(f"{key} is broken")
        return value


def chain_flow(flaky: Flaky) -> Flow:
    @task
    def step(name: str, x: int) -> int:
        return flaky(name, x + 1)

    with Flow("chain") as flow:
        start = Parameter("start", default=0)
        a = step("a", start)
        b = step("b", a)
        step("c", b)
    return flow


class TestResume:
    async def test_finished_tasks_are_not_run_again_and_the_rest_are(self, store: Store) -> None:
        flaky = Flaky("b")
        flow = chain_flow(flaky)
        first = await flow.run_async({"start": 10}, store=store, run_id="r")
        assert first.is_failed()
        assert flaky.calls == ["a", "b"]
        flaky.broken.clear()
        final = await flow.run_async(store=store, resume="r")
        assert final.is_successful()
        assert flaky.calls == ["a", "b", "b", "c"]
        assert [s.result for s in final.result.values()] == [10, 11, 12, 13]

    async def test_seq_numbers_continue_where_the_journal_ended(self, store: Store) -> None:
        flaky = Flaky("c")
        flow = chain_flow(flaky)
        await flow.run_async(store=store, run_id="r")
        before = [e.seq async for e in store.events("r")]
        flaky.broken.clear()
        await flow.run_async(store=store, resume="r")
        after = [e.seq async for e in store.events("r")]
        assert after == list(range(1, len(after) + 1))
        assert after[: len(before)] == before

    async def test_the_parameters_come_back_from_the_store(self, store: Store) -> None:
        flaky = Flaky("a")
        flow = chain_flow(flaky)
        await flow.run_async({"start": 100}, store=store, run_id="r")
        flaky.broken.clear()
        final = await flow.run_async(store=store, resume="r")
        assert max(s.result for s in final.result.values()) == 103

    async def test_finished_mapped_children_are_kept_and_the_parent_is_rebuilt(
        self, store: Store
    ) -> None:
        flaky = Flaky(2)

        @task
        def item(i: int) -> int:
            return flaky(i, i * 10)

        with Flow("map") as flow:
            mapped = item.map([0, 1, 2, 3])
        await flow.run_async(store=store, run_id="r")
        flaky.broken.clear()
        final = await flow.run_async(store=store, resume="r")
        parent = final.result[mapped]
        assert isinstance(parent, Mapped)
        assert parent.result == [0, 10, 20, 30]
        assert sorted(flaky.calls[:4]) == [0, 1, 2, 3]
        assert flaky.calls[4:] == [2]

    async def test_resuming_a_run_that_succeeded_runs_nothing(self, store: Store) -> None:
        flaky = Flaky()
        flow = chain_flow(flaky)
        await flow.run_async(store=store, run_id="r")
        n_events = len([e async for e in store.events("r")])
        final = await flow.run_async(store=store, resume="r")
        assert final == Success("All reference tasks succeeded.", final.result)
        assert flaky.calls == ["a", "b", "c"]
        assert len([e async for e in store.events("r")]) == n_events
        assert sorted(s.result for s in final.result.values()) == [0, 1, 2, 3]

    async def test_a_paused_task_comes_back_paused_and_can_be_approved(self, store: Store) -> None:
        ran: list[str] = []

        @task
        def prepare() -> int:
            ran.append("prepare")
            return 1

        @task(trigger=triggers.manual_only)
        def deploy(x: int) -> int:
            ran.append("deploy")
            return x + 1

        with Flow("approval") as flow:
            deployed = deploy(prepare())
        first = await flow.run_async(store=store, run_id="r")
        assert isinstance(first, Running)
        assert ran == ["prepare"]
        async with flow.start(store=store, resume="r") as run:
            async for event in run.events():
                if isinstance(event.new_state, Running) and event.task_name is None:
                    break
            assert isinstance(run.task_states[deployed], Paused)
            run.resume("deploy")
        assert run.state.is_successful()
        assert ran == ["prepare", "deploy"]


class TestRefusals:
    async def test_an_unknown_run_id_raises_run_not_found(self, store: Store) -> None:
        with pytest.raises(RunNotFound, match="'ghost'"):
            await chain_flow(Flaky()).run_async(store=store, resume="ghost")

    async def test_a_different_graph_is_refused(self, store: Store) -> None:
        await chain_flow(Flaky("a")).run_async(store=store, run_id="r")
        with Flow("chain") as other:
            task(lambda: 1)()
        with pytest.raises(FlowMismatch, match=r"run 'r'.*different graph"):
            await other.run_async(store=store, resume="r")

    async def test_a_run_owned_by_a_live_owner_is_not_taken(self, store: Store) -> None:
        flow = chain_flow(Flaky("a"))
        await flow.run_async(store=store, run_id="r", owner="elsewhere:1:x")
        with pytest.raises(RunStateError, match="owned by 'elsewhere:1:x'"):
            await flow.run_async(store=store, resume="r")

    @pytest.mark.realtime
    async def test_a_run_whose_lease_expired_is_taken_over(self, store: Store) -> None:
        import anyio

        flaky = Flaky("a")
        flow = chain_flow(flaky)
        await flow.run_async(store=store, run_id="r", owner="elsewhere:1:x", lease=0.01)
        await anyio.sleep(0.05)
        flaky.broken.clear()
        assert (await flow.run_async(store=store, resume="r")).is_successful()

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"resume": "r"}, "needs the store="),
            ({"resume": "r", "store": MemoryStore(), "parameters": {}}, "cannot be combined"),
            ({"resume": "r", "store": MemoryStore(), "run_id": "q"}, "differs from resume"),
            ({"owner": "me"}, "only with store="),
            ({"lease": 5.0}, "positive seconds, with store="),
            ({"lease": 0, "store": MemoryStore()}, "positive seconds"),
        ],
    )
    def test_run_keywords_that_do_not_fit_are_refused(
        self, kwargs: dict[str, object], match: str
    ) -> None:
        flow = chain_flow(Flaky())
        parameters = kwargs.pop("parameters", None)
        with pytest.raises(ValueError, match=match):
            flow.run(parameters, **kwargs)  # type: ignore[arg-type]


class TestFlowVersion:
    def test_the_same_graph_has_the_same_version_whatever_the_code(self) -> None:
        def build(body: object) -> Flow:
            with Flow("f") as flow:
                task(name="t")(body)()  # type: ignore[call-overload]
            return flow

        assert flow_version(build(lambda: 1).compile()) == flow_version(build(lambda: 2).compile())

    def test_another_edge_changes_the_version(self) -> None:
        assert flow_version(chain_flow(Flaky()).compile()) != flow_version(
            Flow("chain", tasks=[task(lambda: 1)]).compile()
        )
