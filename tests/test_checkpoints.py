"""Checkpoints and targets: task values written through Results, and found again.

As in Prefect 1.x: a task with a result (its own or its flow's) writes its return value after
success unless ``checkpoint=False``, and its final state keeps the Result with the location; a
task whose ``target`` exists is not called and ends ``Cached("Result found at task target
...")`` with the value read back. A bad template, an unserializable value or an unreadable
location fails that one task with a message naming it, the location and the cause.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from asyncflow import Flow, Parameter, Task, context, task
from asyncflow.engine import signals
from asyncflow.engine.result import Result
from asyncflow.engine.results import LocalResult, PrefectResult
from asyncflow.engine.serializers import JSONSerializer, PickleSerializer
from asyncflow.engine.state import Cached, Failed, Looped, State, Success
from asyncflow.integrations.serialize import state_json
from asyncflow.runtime.checkpoints import ResultCheckpoints, TaskKey

if TYPE_CHECKING:
    from pathlib import Path

    from asyncflow import EventBus
    from asyncflow.runtime.spec import TaskSpec
    from asyncflow.testing import EventRecorder


pytestmark = pytest.mark.usefixtures("home")


class Calls:
    """A task factory that counts the calls of its tasks."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def double(self, **task_kwargs: Any) -> Task:
        @task(**task_kwargs)
        def double(x: int) -> int:
            self.calls.append(x)
            return 2 * x

        return double


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def run_states(flow: Flow, **kwargs: Any) -> dict[str, State]:
    final = await flow.run_async(**kwargs)
    return {t.name: s for t, s in final.result.items()}


class TestCheckpointing:
    async def test_a_task_result_writes_the_value_and_the_state_keeps_where(
        self, tmp_path: Path
    ) -> None:
        with Flow("f") as flow:
            Calls().double(result=LocalResult(dir=tmp_path, location="{task_name}.pkl"))(x=2)
        state = (await run_states(flow))["double"]
        assert (type(state), state.result) == (Success, 4)
        assert state.location == str(tmp_path / "double.pkl")
        assert PickleSerializer().deserialize((tmp_path / "double.pkl").read_bytes()) == 4
        assert state.checkpoint == LocalResult(dir=tmp_path).read(state.location)

    async def test_the_flow_result_serves_tasks_without_their_own(self, tmp_path: Path) -> None:
        own = tmp_path / "own"
        with Flow("f", result=LocalResult(dir=tmp_path, location="{task_name}.pkl")) as flow:
            a = Calls().double(name="a")(x=1)
            Calls().double(name="b", result=LocalResult(dir=own, location="b.pkl"))(x=a)
        states = await run_states(flow)
        assert states["a"].location == str(tmp_path / "a.pkl")
        assert states["b"].location == str(own / "b.pkl")

    async def test_checkpoint_false_writes_nothing(self, tmp_path: Path) -> None:
        with Flow("f", result=LocalResult(dir=tmp_path)) as flow:
            Calls().double(checkpoint=False)(x=1)
        state = (await run_states(flow))["double"]
        assert (state.result, state.location, state.checkpoint) == (2, None, None)
        assert listing(tmp_path) == []

    async def test_checkpoint_true_without_a_result_writes_to_the_default_folder(
        self, home: Path
    ) -> None:
        with Flow("f") as flow:
            Calls().double(checkpoint=True)(x=1)
        state = (await run_states(flow))["double"]
        assert state.location is not None
        assert state.location.startswith(str(home / "results"))
        assert state.load_result(LocalResult(dir=home / "results")) is state  # has its value
        assert state.checkpoint is not None
        assert state.checkpoint.read(state.location).value == 2

    async def test_none_is_not_written(self, tmp_path: Path) -> None:
        @task(result=LocalResult(dir=tmp_path))
        def nothing() -> None:
            return None

        with Flow("f") as flow:
            nothing()
        assert (await run_states(flow))["nothing"].location is None
        assert listing(tmp_path) == []

    async def test_prefect_result_keeps_the_value_in_the_location(self) -> None:
        with Flow("f", result=PrefectResult()) as flow:
            Calls().double()(x=21)
        state = (await run_states(flow))["double"]
        assert state.location == "42"
        assert state_json(state)["location"] == "42"

    async def test_a_state_without_its_value_loads_it_back(self, tmp_path: Path) -> None:
        with Flow("f", result=LocalResult(dir=tmp_path)) as flow:
            Calls().double()(x=5)
        state = (await run_states(flow))["double"]
        bare = Success("stored", checkpoint=LocalResult(dir=tmp_path).from_value(None))
        assert bare.load_result() is bare  # no location: nothing to load
        emptied = Success("stored", checkpoint=state.checkpoint.copy())  # type: ignore[union-attr]
        assert emptied.load_result().result == 10
        assert Success("x").location is None

    async def test_cached_states_keep_the_checkpoint(self, tmp_path: Path) -> None:
        from datetime import timedelta

        from asyncflow.caching import MemoryCacheStore

        with Flow("f", result=LocalResult(dir=tmp_path, location="c.pkl")) as flow:
            Calls().double(cache_for=timedelta(hours=1))(x=3)
        state = (await run_states(flow, cache=MemoryCacheStore()))["double"]
        assert isinstance(state, Cached)
        assert state.location == str(tmp_path / "c.pkl")

    async def test_a_write_that_fails_once_is_retried(self, tmp_path: Path) -> None:
        class FlakyResult(LocalResult):
            failures = 1

            def write(self, value_: Any, **kwargs: Any) -> Result:
                if FlakyResult.failures:
                    FlakyResult.failures -= 1
                    raise ConnectionError("storage hiccup")
                return super().write(value_, **kwargs)

        calls = Calls()
        with Flow("f") as flow:
            calls.double(
                max_retries=1, retry_delay=0, result=FlakyResult(dir=tmp_path, location="x.pkl")
            )(x=1)
        state = (await run_states(flow))["double"]
        assert (type(state), state.location) == (Success, str(tmp_path / "x.pkl"))
        assert calls.calls == [1, 1]

    async def test_each_loop_iteration_is_checkpointed(
        self, tmp_path: Path, bus: EventBus, recorder: EventRecorder
    ) -> None:
        @task(result=LocalResult(dir=tmp_path, location="{task_name}-{task_loop_count}.pkl"))
        def count_up() -> int:
            n = context.get("task_loop_count")
            if n < 3:
                raise signals.LOOP(result=n * 10)
            return n * 10

        with Flow("f") as flow:
            count_up()
        await flow.run_async(bus=bus)
        looped = [s for s in recorder.states("count_up") if isinstance(s, Looped | Success)]
        assert [(type(s), s.result, s.location) for s in looped] == [
            (Looped, 10, str(tmp_path / "count_up-1.pkl")),
            (Looped, 20, str(tmp_path / "count_up-2.pkl")),
            (Success, 30, str(tmp_path / "count_up-3.pkl")),
        ]

    @pytest.mark.realtime
    async def test_a_slow_write_runs_off_the_event_loop(self, tmp_path: Path) -> None:
        class SlowResult(LocalResult):
            def write(self, value_: Any, **kwargs: Any) -> Result:
                time.sleep(0.4)  # a blocking upload
                return super().write(value_, **kwargs)

        gaps: list[float] = []

        @task
        async def ticker() -> None:
            last = time.monotonic()
            for _ in range(30):
                await anyio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        with Flow("f") as flow:
            Calls().double(result=SlowResult(dir=tmp_path))(x=1)
            ticker()
        states = await run_states(flow)
        assert states["double"].location is not None
        assert max(gaps) < 0.2  # the loop kept turning while the write slept in a thread


class TestTargets:
    async def test_an_existing_target_is_read_back_instead_of_running(self, tmp_path: Path) -> None:
        calls = Calls()
        with Flow("f") as flow:
            calls.double(target="{task_name}-{x}.pkl", result=LocalResult(dir=tmp_path))(x=4)
        first = (await run_states(flow))["double"]
        assert (type(first), first.result, calls.calls) == (Success, 8, [4])
        second = (await run_states(flow))["double"]
        assert type(second) is Cached
        assert second.message == "Result found at task target double-4.pkl"
        assert (second.result, second.location, second.cached_inputs) == (
            8,
            "double-4.pkl",
            {"x": 4},
        )
        assert calls.calls == [4]

    async def test_the_template_sees_context_parameters_and_inputs(self, tmp_path: Path) -> None:
        with Flow("etl", result=LocalResult(dir=tmp_path)) as flow:
            day = Parameter("day")
            Calls().double(target="{flow_name}/{day}/{today}-{x}")(x=day)
        state = (await run_states(flow, parameters={"day": 3}))["double"]
        from datetime import UTC, datetime

        today = datetime.now(UTC).strftime("%Y-%m-%d")
        assert state.location == str(tmp_path / "etl" / "3" / f"{today}-3")

    async def test_mapped_children_each_have_their_target(self, tmp_path: Path) -> None:
        calls = Calls()
        with Flow("f", result=LocalResult(dir=tmp_path)) as flow:
            calls.double(target="part-{map_index}").map(x=[1, 2, 3])
        await run_states(flow)
        (tmp_path / "part-1").unlink()  # one child's work is lost
        calls.calls.clear()
        parent = (await run_states(flow))["double"]
        assert [type(s) for s in parent.map_states] == [Cached, Success, Cached]
        assert parent.result == [2, 4, 6]
        assert calls.calls == [2]

    async def test_a_callable_target_gets_the_keywords_and_may_return_a_template(
        self, tmp_path: Path
    ) -> None:
        seen: list[dict[str, Any]] = []

        def where(**kwargs: Any) -> str:
            seen.append(kwargs)
            return "{task_name}/" + str(kwargs["x"] * 10)

        calls = Calls()
        with Flow("f", result=LocalResult(dir=tmp_path)) as flow:
            calls.double(target=where)(x=1)
        assert (await run_states(flow))["double"].location == str(tmp_path / "double" / "10")
        second = (await run_states(flow))["double"]
        assert second.message == "Result found at task target double/10"
        assert calls.calls == [1]
        assert {"x", "flow_name", "task_name", "map_index", "parameters"} <= set(seen[0])

    async def test_a_target_without_any_result_uses_the_default_folder(self, home: Path) -> None:
        calls = Calls()
        with Flow("f") as flow:
            calls.double(target="t.pkl")(x=1)
        await run_states(flow)
        assert (home / "results" / "t.pkl").exists()
        assert type((await run_states(flow))["double"]) is Cached

    async def test_a_target_wins_over_the_result_location(self, tmp_path: Path) -> None:
        result = LocalResult(dir=tmp_path, location="ignored.pkl")
        with Flow("f") as flow:
            Calls().double(target="used.pkl", result=result)(x=1)
        assert (await run_states(flow))["double"].location == str(tmp_path / "used.pkl")
        assert result.location == "ignored.pkl"

    async def test_a_retried_task_writes_its_target_once_it_succeeds(self, tmp_path: Path) -> None:
        attempts: list[int] = []

        @task(target="t.pkl", result=LocalResult(dir=tmp_path), max_retries=2, retry_delay=0)
        def flaky() -> str:
            attempts.append(1)
            if len(attempts) < 2:
                raise ConnectionError("try again")
            return "done"

        with Flow("f") as flow:
            flaky()
        assert (await run_states(flow))["flaky"].location == str(tmp_path / "t.pkl")
        again = (await run_states(flow))["flaky"]
        assert (type(again), again.result, len(attempts)) == (Cached, "done", 2)

    async def test_a_target_replaces_the_cache_lookup(self, tmp_path: Path) -> None:
        from datetime import timedelta

        from asyncflow.caching import MemoryCacheStore

        cache, calls = MemoryCacheStore(), Calls()
        with Flow("f", result=LocalResult(dir=tmp_path)) as flow:
            calls.double(target="t", cache_for=timedelta(hours=1))(x=1)
        await run_states(flow, cache=cache)
        (tmp_path / "t").unlink()
        await run_states(flow, cache=cache)
        assert calls.calls == [1, 1]  # the target is gone: the cached state is not used


class TestErrors:
    async def test_an_unknown_key_in_the_target_fails_only_that_task(self, tmp_path: Path) -> None:
        with Flow("f", result=LocalResult(dir=tmp_path)) as flow:
            Calls().double(name="bad", target="{nope}.pkl")(x=1)
            Calls().double(name="good")(x=2)
        states = await run_states(flow)
        bad = states["bad"]
        assert type(bad) is Failed
        assert bad.message == (
            "Task 'bad' could not read its target template '{nope}.pkl': KeyError('nope')"
        )
        assert isinstance(bad.result, KeyError)
        assert states["good"].result == 4

    async def test_a_value_that_cannot_be_serialized_fails_the_task(self, tmp_path: Path) -> None:
        @task(result=LocalResult(dir=tmp_path, location="v.json", serializer=JSONSerializer()))
        def make() -> object:
            return {1, 2}

        with Flow("f") as flow:
            make()
        state = (await run_states(flow))["make"]
        assert type(state) is Failed
        assert state.message is not None
        assert state.message.startswith(
            f"Task 'make' could not write its result to {str(tmp_path / 'v.json')!r}: TypeError("
        )
        assert "not JSON serializable" in state.message

    async def test_an_unwritable_location_fails_the_task(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("a file, not a folder")
        with Flow("f", result=LocalResult(dir=tmp_path / "file", validate_dir=False)) as flow:
            Calls().double()(x=1)
        state = (await run_states(flow))["double"]
        assert type(state) is Failed
        assert state.message is not None
        assert state.message.startswith("Task 'double' could not write its result to ")
        assert str(tmp_path / "file") in state.message
        assert "NotADirectoryError" in state.message or "FileExistsError" in state.message

    async def test_an_unreadable_target_fails_the_task_without_running_it(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "t.pkl").write_bytes(b"garbage")
        calls = Calls()
        with Flow("f", result=LocalResult(dir=tmp_path)) as flow:
            calls.double(target="t.pkl")(x=1)
        state = (await run_states(flow))["double"]
        assert type(state) is Failed
        assert state.message is not None
        assert state.message.startswith(
            f"Task 'double' could not read its target {str(tmp_path / 't.pkl')!r}: "
        )
        assert "UnpicklingError" in state.message
        assert calls.calls == []

    async def test_a_default_location_failure_names_the_file(self, tmp_path: Path) -> None:
        class ReadOnly(LocalResult):
            def write(self, value_: Any, **kwargs: Any) -> Result:
                raise PermissionError(13, "Permission denied", f"{self.dir}/x")

        with Flow("f", result=ReadOnly(dir=tmp_path)) as flow:
            Calls().double()(x=1)
        state = (await run_states(flow))["double"]
        assert state.message == (
            f"Task 'double' could not write its result to {str(tmp_path / 'x')!r}: "
            "PermissionError(13, 'Permission denied')"
        )

    async def test_a_storage_without_files_says_a_new_location(self) -> None:
        class Bucket(Result):
            def write(self, value_: Any, **kwargs: Any) -> Result:
                raise ConnectionError("bucket unreachable")

        with Flow("f", result=Bucket()) as flow:
            Calls().double()(x=1)
        state = (await run_states(flow))["double"]
        assert state.message == (
            "Task 'double' could not write its result to a new location: "
            "ConnectionError('bucket unreachable')"
        )

    @pytest.mark.parametrize(
        ("kwargs", "culprit"),
        [
            ({"result": "local"}, "result must be a Result"),
            ({"checkpoint": "yes"}, "checkpoint must be True, False or None"),
            ({"target": 3}, "target must be a location template"),
        ],
    )
    def test_bad_task_arguments_are_refused_naming_the_task(
        self, kwargs: Any, culprit: str
    ) -> None:
        with pytest.raises(TypeError, match=f"<Task: t>: {culprit}"):
            Task(name="t", **kwargs)

    def test_an_empty_target_is_refused(self) -> None:
        with pytest.raises(ValueError, match="target must not be empty"):
            Task(name="t", target="")

    def test_a_flow_result_that_is_not_a_result_is_refused(self) -> None:
        with pytest.raises(TypeError, match="<Flow: name=f>: result must be a Result"):
            Flow("f", result=3)


class MemoryCheckpoints(ResultCheckpoints):
    """A store-like hook: every task is checkpointed into a dict and found there again."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, int | None], Any] = {}

    def wants(self, spec: TaskSpec) -> tuple[bool, bool]:
        return (True, True)

    async def lookup(self, key: TaskKey) -> State | None:
        slot = (key.spec.name, key.map_index)
        if slot in self.values:
            return Success("From the store.", self.values[slot])
        return None

    async def save(self, key: TaskKey, state: State) -> State:
        self.values[(key.spec.name, key.map_index)] = state.result
        return state


class TestTheHook:
    async def test_a_hook_checkpoints_every_task_and_resumes_from_them(self) -> None:
        hook, calls = MemoryCheckpoints(), Calls()
        with Flow("f") as flow:
            a = calls.double(name="a")(x=1)
            calls.double(name="b").map(x=[a, 5])
        await run_states(flow, checkpoints=hook)
        assert hook.values == {("a", None): 2, ("List", None): [2, 5], ("b", 0): 4, ("b", 1): 10}
        states = await run_states(flow, checkpoints=hook)
        assert states["a"].message == "From the store."
        assert states["b"].result == [4, 10]
        assert calls.calls == [1, 2, 5]

    async def test_without_results_a_run_has_no_hook(self) -> None:
        with Flow("f") as flow:
            Calls().double()(x=1)
        assert flow.compile().persists is False
        with Flow("g", result=PrefectResult()) as flow:
            Calls().double()(x=1)
        assert flow.compile().persists is True
