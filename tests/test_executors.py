"""Specification of the executors: where a task's code runs, and how a task chooses one.

``LocalExecutor`` (the default) awaits async tasks on the loop and sends sync tasks to worker
threads under a limiter; ``ProcessExecutor`` sends sync tasks to worker processes, with errors
that name the task when a call or its result cannot be pickled. A task picks its executor by
argument (an instance or a name the run defines) or by a tag that names one. Dask has its own
file (``test_dask.py``); here we only check that importing asyncflow never imports it.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import asyncflow
from asyncflow import Flow, Parameter, Task, context, task
from asyncflow.engine.state import Failed, Success, TimedOut
from asyncflow.exceptions import AsyncflowError, ExecutorError
from asyncflow.executors import (
    DEFAULT_MAX_THREADS,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    default_executor,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from asyncflow import EventBus
    from asyncflow.engine.state import State
    from asyncflow.testing import EventRecorder

TASK_SUCCEEDED = "Task run succeeded."


def cpu_bound(n: int) -> tuple[int, int]:
    """Some arithmetic, and the id of the process that did it."""
    return sum(i * i for i in range(n)), os.getpid()


@task
def squares_up_to(n: int) -> tuple[int, int]:
    return sum(i * i for i in range(n)), os.getpid()


@task
async def where_async() -> tuple[int, int]:
    await anyio.lowlevel.checkpoint()
    return os.getpid(), threading.get_ident()


@task
def where_sync() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


@task
def take_lock(lock: Any) -> str:
    return "never"


@task
def make_lock() -> Any:
    return threading.Lock()


@task
def boom() -> None:
    raise ValueError("nope")


def by_name(state: State) -> dict[str, State]:
    """A flow state's ``{task name: task state}`` (names are unique in these flows)."""
    return {t.name: s for t, s in state.result.items()}


class Recording(LocalExecutor):
    """A LocalExecutor that remembers which tasks it was asked to run, and its lifecycle."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.submitted: list[str] = []
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")
        await super().stop()

    async def submit(
        self,
        fn: Callable[..., Any],
        kwargs: Mapping[str, Any],
        *,
        abandon_on_cancel: bool = False,
        name: str = "task",
    ) -> Any:
        self.submitted.append(name)
        return await super().submit(fn, kwargs, abandon_on_cancel=abandon_on_cancel, name=name)

    def __repr__(self) -> str:
        return f"Recording({self.label})"


class TestExecutorInterface:
    async def test_submit_is_left_to_subclasses(self) -> None:
        with pytest.raises(NotImplementedError):
            await Executor().submit(cpu_bound, {"n": 3})

    async def test_entering_is_reference_counted_so_resources_start_and_stop_once(self) -> None:
        executor = Recording("shared")
        async with executor:
            async with executor:
                assert executor.calls == ["start"]
            assert executor.calls == ["start"]
        assert executor.calls == ["start", "stop"]

    async def test_one_executor_serves_two_concurrent_runs(self, bus: EventBus) -> None:
        executor = Recording("shared")
        gate = anyio.Event()

        @task
        async def wait_for_gate() -> None:
            await gate.wait()

        @task
        def add(x: int, y: int) -> int:
            return x + y

        with Flow("concurrent") as flow:
            add(1, 2, upstream_tasks=[wait_for_gate()])

        async with (
            flow.start(executor=executor, bus=bus) as first,
            flow.start(executor=executor, bus=bus) as second,
        ):
            await anyio.wait_all_tasks_blocked()
            assert executor.calls == ["start"]
            gate.set()
        assert [first.state, second.state] == [
            Success("All reference tasks succeeded.", first.state.result),
            Success("All reference tasks succeeded.", second.state.result),
        ]
        assert executor.calls == ["start", "stop"]
        assert executor.submitted == ["add", "add"]

    def test_executor_error_is_an_asyncflow_error_and_a_runtime_error(self) -> None:
        assert issubclass(ExecutorError, AsyncflowError)
        assert issubclass(ExecutorError, RuntimeError)


class TestLocalExecutor:
    async def test_sync_tasks_run_in_worker_threads_and_async_tasks_on_the_loop(
        self, bus: EventBus
    ) -> None:
        with Flow("where") as flow:
            where_async()
            where_sync()
        state = await flow.run_async(executor=LocalExecutor(), bus=bus)
        results = {name: s.result for name, s in by_name(state).items()}
        loop_thread = threading.get_ident()
        assert results["where_async"] == (os.getpid(), loop_thread)
        assert results["where_sync"][0] == os.getpid()
        assert results["where_sync"][1] != loop_thread

    async def test_async_tasks_share_the_callers_event_loop(self, bus: EventBus) -> None:
        @task
        async def loop_of_task() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        with Flow("loop") as flow:
            loop_of_task()
        state = await flow.run_async(executor=LocalExecutor(), bus=bus)
        assert by_name(state)["loop_of_task"].result is asyncio.get_running_loop()

    @pytest.mark.parametrize("max_threads", [1, 2, 3])
    async def test_max_threads_bounds_how_many_sync_tasks_run_at_once(
        self, bus: EventBus, max_threads: int
    ) -> None:
        lock = threading.Lock()
        running = [0]
        peak = [0]
        # Tasks meet in groups of max_threads, so the peak reaches the limit when it is
        # honoured (and a limit of max_threads - 1 would break the barrier).
        barrier = threading.Barrier(max_threads)

        @task
        def busy(i: int) -> int:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            barrier.wait(timeout=5)
            time.sleep(0.005)  # linger, so that an extra thread would be seen running
            with lock:
                running[0] -= 1
            return i

        with Flow("limited") as flow:
            busy.map(list(range(max_threads * 3)))
        state = await flow.run_async(executor=LocalExecutor(max_threads=max_threads), bus=bus)
        assert state.is_successful()
        assert peak == [max_threads]

    async def test_its_limiter_holds_max_threads_tokens(self) -> None:
        async with LocalExecutor(max_threads=3) as executor:
            assert executor.limiter.total_tokens == 3

    def test_the_default_is_anyios_40_threads(self) -> None:
        assert DEFAULT_MAX_THREADS == 40
        assert LocalExecutor().max_threads == 40
        assert repr(LocalExecutor()) == "LocalExecutor(max_threads=40)"

    @pytest.mark.parametrize("max_threads", [0, -1])
    def test_fewer_than_one_thread_is_refused(self, max_threads: int) -> None:
        with pytest.raises(
            ValueError, match=re.escape(f"max_threads must be at least 1, got {max_threads}")
        ):
            LocalExecutor(max_threads=max_threads)

    async def test_submit_calls_sync_and_async_callables_with_their_keyword_arguments(
        self,
    ) -> None:
        async def double(x: int) -> int:
            return 2 * x

        async with LocalExecutor() as executor:
            assert await executor.submit(cpu_bound, {"n": 4}) == (14, os.getpid())
            assert await executor.submit(double, {"x": 21}) == 42

    async def test_a_sync_callable_that_returns_a_coroutine_is_awaited(self) -> None:
        async def later() -> str:
            return "awaited"

        async with LocalExecutor() as executor:
            assert await executor.submit(lambda: later(), {}) == "awaited"

    def test_it_is_the_default_executor_of_a_run(self) -> None:
        with Flow("default") as flow:
            where_sync()
        state = flow.run()
        assert by_name(state)["where_sync"].result[0] == os.getpid()


class TestProcessExecutor:
    async def test_a_cpu_bound_sync_task_runs_in_another_process(self, bus: EventBus) -> None:
        with Flow("cpu") as flow:
            squares_up_to(2000)
        state = await flow.run_async(executor=ProcessExecutor(), bus=bus)
        task_state = by_name(state)["squares_up_to"]
        total, pid = task_state.result
        assert task_state == Success(TASK_SUCCEEDED, (total, pid))
        assert total == sum(i * i for i in range(2000))
        assert pid != os.getpid()

    async def test_decorated_functions_and_lambdas_run_in_the_worker_process(
        self, bus: EventBus
    ) -> None:
        double = task(lambda x: (2 * x, os.getpid()), name="double")
        with Flow("pickled") as flow:
            squares_up_to(4)
            double(21)
            task(cpu_bound, name="plain")(3)
        state = await flow.run_async(executor=ProcessExecutor(max_workers=1), bus=bus)
        results = {name: s.result for name, s in by_name(state).items() if name != "21"}
        pids = {result[1] for result in results.values()}
        assert {name: result[0] for name, result in results.items()} == {
            "squares_up_to": 14,
            "double": 42,
            "plain": 5,
        }
        assert len(pids) == 1
        assert os.getpid() not in pids

    async def test_async_tasks_stay_on_the_loop(self, bus: EventBus) -> None:
        with Flow("async") as flow:
            where_async()
        state = await flow.run_async(executor=ProcessExecutor(), bus=bus)
        assert by_name(state)["where_async"].result == (os.getpid(), threading.get_ident())

    async def test_an_unpicklable_input_fails_the_task_with_an_error_naming_it(
        self, bus: EventBus
    ) -> None:
        with Flow("unpicklable input") as flow:
            take_lock(threading.Lock())
        state = await flow.run_async(executor=ProcessExecutor(), bus=bus)
        task_state = by_name(state)["take_lock"]
        error = task_state.result
        assert type(error) is ExecutorError
        assert str(error) == (
            "task 'take_lock' cannot run in a worker process: its function or inputs cannot "
            """be pickled (TypeError("cannot pickle '_thread.lock' object"))"""
        )
        assert task_state == Failed(f"Error during execution of task: {error!r}", error)
        assert state == Failed("Some reference tasks failed.", state.result)

    async def test_an_unpicklable_result_fails_the_task_with_a_clear_message(
        self, bus: EventBus
    ) -> None:
        with Flow("unpicklable result") as flow:
            make_lock()
        state = await flow.run_async(executor=ProcessExecutor(), bus=bus)
        task_state = by_name(state)["make_lock"]
        error = task_state.result
        assert type(error) is ExecutorError
        assert str(error) == (
            "task 'make_lock' returned a result that cannot be pickled back "
            """(TypeError("cannot pickle '_thread.lock' object"))"""
        )
        assert task_state == Failed(f"Error during execution of task: {error!r}", error)

    async def test_an_exception_in_the_worker_process_fails_the_task_as_it_would_locally(
        self, bus: EventBus
    ) -> None:
        with Flow("failing") as flow:
            boom()
        local = by_name(await flow.run_async(executor=LocalExecutor(), bus=bus))["boom"]
        remote = by_name(await flow.run_async(executor=ProcessExecutor(), bus=bus))["boom"]
        assert (
            remote.message
            == local.message
            == "Error during execution of task: " + repr(ValueError("nope"))
        )
        assert type(remote.result) is ValueError
        assert remote.result.args == ("nope",)

    @pytest.mark.parametrize("max_workers", [0, -2])
    def test_fewer_than_one_worker_is_refused(self, max_workers: int) -> None:
        with pytest.raises(
            ValueError, match=re.escape(f"max_workers must be at least 1, got {max_workers}")
        ):
            ProcessExecutor(max_workers=max_workers)

    def test_its_repr_shows_max_workers(self) -> None:
        assert repr(ProcessExecutor()) == "ProcessExecutor(max_workers=None)"
        assert repr(ProcessExecutor(max_workers=2)) == "ProcessExecutor(max_workers=2)"


class TestContextWhereverTaskCodeRuns:
    @pytest.mark.parametrize("executor", [LocalExecutor, ProcessExecutor])
    async def test_task_code_reads_the_runs_context(
        self, bus: EventBus, executor: Callable[[], Executor]
    ) -> None:
        """Prefect 1.x task code reads ``prefect.context`` on any executor; so does ours."""

        @task
        def read_context(x: int) -> tuple[Any, ...]:
            return (
                context.get("flow_name"),
                context.get("task_name"),
                context.get("map_index"),
                context.get("task_run_count"),
                context.get("parameters"),
                context.get("team"),
            )

        with Flow("ctx") as flow:
            read_context.map(Parameter("xs"))
        with context(team="data"):  # the caller's keys travel too, under the run's
            state = await flow.run_async({"xs": [7, 8]}, executor=executor(), bus=bus)
        mapped = by_name(state)["read_context"]
        assert [child.result for child in mapped.map_states] == [
            ("ctx", "read_context", 0, 1, {"xs": [7, 8]}, "data"),
            ("ctx", "read_context", 1, 1, {"xs": [7, 8]}, "data"),
        ]


class TestChoosingAnExecutor:
    @staticmethod
    def two_step_flow(**first_kwargs: Any) -> tuple[Flow, Task, Task]:
        @task(**first_kwargs)
        def first() -> int:
            return 1

        @task
        def second(x: int) -> int:
            return x + 1

        with Flow("choose") as flow:
            a = first()
            b = second(a)
        return flow, a, b

    async def test_a_task_runs_on_the_executor_given_as_its_argument(self, bus: EventBus) -> None:
        own, default = Recording("own"), Recording("default")
        flow, _, b = self.two_step_flow(executor=own)
        state = await flow.run_async(executor=default, bus=bus)
        assert state.result[b] == Success(TASK_SUCCEEDED, 2)
        assert (own.submitted, default.submitted) == (["first"], ["second"])

    async def test_a_task_runs_on_the_executor_it_names(self, bus: EventBus) -> None:
        cpu, default = Recording("cpu"), Recording("default")
        flow, *_ = self.two_step_flow(executor="cpu")
        await flow.run_async(executor=default, executors={"cpu": cpu}, bus=bus)
        assert (cpu.submitted, default.submitted) == (["first"], ["second"])

    async def test_a_task_tagged_with_an_executors_name_runs_on_it(self, bus: EventBus) -> None:
        cpu, default = Recording("cpu"), Recording("default")
        flow, *_ = self.two_step_flow(tags=["cpu", "other"])
        await flow.run_async(executor=default, executors={"cpu": cpu}, bus=bus)
        assert (cpu.submitted, default.submitted) == (["first"], ["second"])

    async def test_a_task_runs_on_a_process_executor_by_name(self, bus: EventBus) -> None:
        with Flow("mixed") as flow:
            on_loop = where_sync()
            in_process = squares_up_to(3, task_args={"tags": ["cpu"]})
        state = await flow.run_async(executors={"cpu": ProcessExecutor()}, bus=bus)
        assert state.result[on_loop].result[0] == os.getpid()
        assert state.result[in_process].result[0] == 5
        assert state.result[in_process].result[1] != os.getpid()

    @pytest.mark.parametrize(
        ("flow_has", "run_has", "expected"),
        [
            (None, None, "a LocalExecutor"),
            ("flow", None, "flow"),
            (None, "run", "run"),
            ("flow", "run", "run"),
        ],
    )
    async def test_other_tasks_use_the_runs_executor_else_the_flows_else_a_local_one(
        self, bus: EventBus, flow_has: str | None, run_has: str | None, expected: str
    ) -> None:
        executors = {label: Recording(label) for label in ("flow", "run")}
        flow, *_ = self.two_step_flow()
        if flow_has is not None:
            flow.executor = executors[flow_has]
        run_executor = executors[run_has] if run_has is not None else None
        state = await flow.run_async(executor=run_executor, bus=bus)
        assert state.is_successful()
        used = [label for label, e in executors.items() if e.submitted]
        assert used == ([] if expected == "a LocalExecutor" else [expected])
        for e in executors.values():
            assert e.submitted in ([], ["first", "second"])

    async def test_every_executor_of_a_run_is_started_once_and_stopped_at_its_end(
        self, bus: EventBus
    ) -> None:
        own, named, default = Recording("own"), Recording("named"), Recording("default")

        @task(executor=own)
        def one() -> int:
            return 1

        @task(executor="named")
        def two() -> int:
            return 2

        @task(tags=["named"])
        def three() -> int:
            return 3

        with Flow("three executors") as flow:
            one()
            two()
            three()
            where_sync()
        state = await flow.run_async(executor=default, executors={"named": named}, bus=bus)
        assert state.is_successful()
        assert [own.calls, named.calls, default.calls] == [["start", "stop"]] * 3
        assert sorted(named.submitted) == ["three", "two"]

    async def test_an_unknown_name_is_refused_naming_the_task(self, bus: EventBus) -> None:
        flow, *_ = self.two_step_flow(executor="gpu")
        with pytest.raises(
            ValueError,
            match=re.escape(
                "<Task: first> asks for executor 'gpu', but the run has no such named "
                "executor (executors=['cpu'])"
            ),
        ):
            await flow.run_async(executors={"cpu": LocalExecutor()}, bus=bus)

    async def test_tags_naming_two_executors_are_refused_naming_the_task(
        self, bus: EventBus
    ) -> None:
        flow, *_ = self.two_step_flow(tags=["cpu", "io"])
        with pytest.raises(
            ValueError,
            match=re.escape("<Task: first> has tags naming several executors: ['cpu', 'io']"),
        ):
            await flow.run_async(executors={"cpu": LocalExecutor(), "io": LocalExecutor()}, bus=bus)

    async def test_an_executor_argument_of_another_type_is_refused(self, bus: EventBus) -> None:
        flow, *_ = self.two_step_flow(executor=42)
        with pytest.raises(
            TypeError,
            match=re.escape("<Task: first>: executor must be an Executor or a name, got 42"),
        ):
            await flow.run_async(bus=bus)


class TestImportingAsyncflow:
    def test_importing_asyncflow_and_its_executors_does_not_import_dask(self) -> None:
        code = (
            "import sys, asyncflow, asyncflow.executors\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert done.stdout == "[]\n"

    def test_the_executors_are_public_names(self) -> None:
        import asyncflow.executors as public

        assert public.__all__ == (
            "DEFAULT_MAX_THREADS",
            "DaskExecutor",
            "Executor",
            "ExecutorError",
            "LocalExecutor",
            "ProcessExecutor",
            "default_executor",
        )
        assert asyncflow.executors is public


class TestAnExecutorThatCannotStart:
    async def test_the_run_fails_naming_the_executor_and_no_task_runs(self, bus: EventBus) -> None:
        from asyncflow.executors import Executor

        class Broken(Executor):
            async def start(self) -> None:
                raise OSError("no cluster here")

        ran: list[int] = []

        @task
        def work() -> None:
            ran.append(1)

        with Flow("broken-executor") as flow:
            work()
        with pytest.raises(ExecutorError):
            await flow.run_async(bus=bus, executor=Broken())
        assert ran == []

    async def test_run_async_raises_the_executor_error_itself(self, bus: EventBus) -> None:
        with Flow("broken-executor") as flow:
            where_sync()
        with pytest.raises(ExecutorError, match=r"could not start Broken\(\): OSError"):
            await flow.run_async(bus=bus, executor=Broken())

    def test_run_raises_the_executor_error_itself(self, bus: EventBus) -> None:
        with Flow("broken-executor") as flow:
            where_sync()
        with pytest.raises(ExecutorError, match=r"could not start Broken\(\): OSError"):
            flow.run(bus=bus, executor=Broken())


class Broken(Executor):
    async def start(self) -> None:
        raise OSError("no cluster here")

    def __repr__(self) -> str:
        return "Broken()"


class TestSharedThreads:
    """Runs given no executor share one ``LocalExecutor(max_threads=40)``."""

    @pytest.mark.realtime
    async def test_many_concurrent_runs_hold_at_most_40_worker_threads(self, bus: EventBus) -> None:
        peak = [0]
        lock = threading.Lock()

        @task
        def hold() -> None:
            with lock:
                peak[0] = max(peak[0], threading.active_count())
            time.sleep(0.01)

        with Flow("shared") as flow:
            hold()
        before = threading.active_count()
        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(lambda: flow.run_async(bus=bus))
        assert peak[0] <= before + DEFAULT_MAX_THREADS

    def test_the_default_executor_is_one_shared_local_executor(self) -> None:
        assert default_executor() is default_executor()
        assert repr(default_executor()) == "LocalExecutor(max_threads=40)"

    def test_one_executor_serves_runs_on_two_event_loops_at_once(self) -> None:
        executor = LocalExecutor(max_threads=2)
        barrier = threading.Barrier(2)

        @task
        def meet() -> str:
            barrier.wait(timeout=5)
            return "met"

        with Flow("two-loops") as flow:
            meet()
        results: list[State] = []

        def run() -> None:
            results.append(flow.run(executor=executor))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert [s.is_successful() for s in results] == [True, True]


class TestAbandonedThreads:
    """A sync call abandoned at its timeout keeps its slot: hung calls stay within max_threads."""

    @pytest.mark.realtime
    async def test_hung_calls_with_retries_never_exceed_max_threads(
        self, bus: EventBus, recorder: EventRecorder
    ) -> None:
        release = threading.Event()
        peak = [0]

        @task(timeout=0.2, max_retries=4, retry_delay=0)
        def hung(i: int) -> None:
            peak[0] = max(peak[0], threading.active_count())
            release.wait(10)

        with Flow("hung") as flow:
            mapped = hung.map(list(range(3)))
        executor = LocalExecutor(max_threads=2)
        before = threading.active_count()
        try:
            with anyio.fail_after(5):
                state = await flow.run_async(bus=bus, executor=executor)
            alive = threading.active_count()
        finally:
            release.set()
        assert alive <= before + 2
        assert peak[0] <= before + 2
        assert all(s.is_failed() for s in state.result[mapped].map_states)
        messages = {s.message for s in recorder.states("hung") if isinstance(s, TimedOut)}
        assert any("was abandoned" in m for m in messages)
        assert any("No thread of LocalExecutor(max_threads=2) became free" in m for m in messages)

    @pytest.mark.realtime
    async def test_an_abandoned_call_gives_its_thread_back_when_it_returns(
        self, bus: EventBus
    ) -> None:
        release = threading.Event()

        @task(timeout=0.5)
        def slow() -> None:
            release.wait(10)

        with Flow("slow") as flow:
            t = slow()
        executor = LocalExecutor(max_threads=1)
        state = await flow.run_async(bus=bus, executor=executor)
        assert "was abandoned" in state.result[t].message
        assert executor.limiter.borrowed_tokens == 1
        release.set()
        with anyio.fail_after(5):
            while executor.limiter.borrowed_tokens:  # noqa: ASYNC110 - freed by another thread
                await anyio.sleep(0.01)
        assert executor.abandoned == 0


class TestCancellingAProcessTask:
    @pytest.mark.realtime
    async def test_the_worker_process_is_terminated_at_once_and_reaped(
        self, bus: EventBus, tmp_path: Any
    ) -> None:
        pid_file = tmp_path / "pid"

        @task
        def long(path: str) -> None:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
            time.sleep(20)

        with Flow("long") as flow:
            long(str(pid_file))
        async with flow.start(bus=bus, executor=ProcessExecutor(max_workers=1)) as run:
            with anyio.fail_after(20):
                # The file is written by another process: there is nothing to wait on here.
                while not pid_file.exists() or not pid_file.read_text():  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            started = time.monotonic()
            run.cancel()
        assert time.monotonic() - started < 3
        assert run.state.message == "Flow run was cancelled."
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)


DIE = """
import os, sys
from asyncflow import Flow, task
from asyncflow.executors import ProcessExecutor

@task
def die(how: str) -> None:
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), 9)

with Flow("dies") as flow:
    t = die(sys.argv[1])
state = flow.run(executor=ProcessExecutor())
print(type(state.result[t]).__name__, type(state.result[t].result).__name__)
print(state.result[t].result)
"""


class TestADeadWorkerProcess:
    # In a fresh interpreter: there, nothing else reaps the worker before asyncio reads its
    # exit status (a test process that ran Dask clusters may).
    # The exact status is not always readable: anyio kills a worker whose pipe broke (an
    # os._exit(3) may race with that kill), and asyncio reports 255 for a child something else
    # reaped first. The message still says how the process ended, as far as it is known.
    @pytest.mark.parametrize(
        ("how", "said"),
        [
            ("exit", r"exited with code (3|255)|was killed by signal SIGKILL"),
            ("kill", r"was killed by signal SIGKILL|exited with code 255"),
        ],
    )
    def test_the_failure_names_the_task_the_exit_and_what_to_do(self, how: str, said: str) -> None:
        done = subprocess.run(
            [sys.executable, "-c", DIE, how],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "ASYNCFLOW_LOG_LEVEL": "CRITICAL"},
        )
        kinds, message = done.stdout.splitlines()
        assert kinds == "Failed ExecutorError"
        assert message.startswith("task 'die' lost its worker process (pid ")
        assert re.search(said, message), message
        assert "LocalExecutor" in message  # what to do: where to see the real error


class TestDeadWorkerMessages:
    """The message read off the process anyio killed (found in the error's frames)."""

    @staticmethod
    def broken(returncode: int | None) -> BaseException:
        class Process:
            pid = 4242

        proc = Process()
        proc.returncode = returncode  # type: ignore[attr-defined]

        def send_raw_command(process: Any) -> None:
            raise anyio.BrokenWorkerProcess

        try:
            send_raw_command(proc)
        except anyio.BrokenWorkerProcess as exc:
            return exc
        raise AssertionError("unreachable")

    @pytest.mark.parametrize(
        ("returncode", "said"),
        [
            (3, "it exited with code 3"),
            (
                -9,
                "it was killed by signal SIGKILL (9) (the out-of-memory killer, or a worker that "
                "was already ending)",
            ),
            (-11, "it was killed by signal SIGSEGV (11)"),
            (-200, "it was killed by signal 200 while"),
            (None, "it ended without a word"),
        ],
    )
    def test_it_names_the_task_the_pid_and_the_exit(
        self, returncode: int | None, said: str
    ) -> None:
        from asyncflow.runtime.remote import dead_worker_message

        message = dead_worker_message("crunch", self.broken(returncode))
        assert message.startswith(f"task 'crunch' lost its worker process (pid 4242): {said}")

    def test_without_the_process_it_says_the_pid_is_unknown(self) -> None:
        from asyncflow.runtime.remote import dead_worker_message

        message = dead_worker_message("crunch", anyio.BrokenWorkerProcess())
        assert "(pid unknown): it ended without a word" in message


OUTLIVES = """
import asyncio, time
from asyncflow import Flow, task

@task(timeout=0.1)
def hangs() -> None:
    time.sleep(1.0)

with Flow("outlived") as flow:
    t = hangs()
loop = asyncio.new_event_loop()  # run, then left open and idle, as some programs do
state = loop.run_until_complete(flow.run_async())
print(type(state.result[t]).__name__)
"""


class TestAnAbandonedThreadOutlivingItsRun:
    def test_the_program_still_exits_when_the_thread_returns_after_its_loop_stopped(
        self,
    ) -> None:
        # The thread gives its slot back to a loop that will never run again: it must not
        # wait for it (a non-daemon thread waiting forever keeps the interpreter alive).
        done = subprocess.run(
            [sys.executable, "-c", OUTLIVES],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={**os.environ, "ASYNCFLOW_LOG_LEVEL": "CRITICAL"},
        )
        assert done.stdout.split() == ["TimedOut"]
