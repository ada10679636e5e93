"""Specification of ``DaskExecutor`` on a real ``LocalCluster`` of two worker processes.

The engine stays in this process (states, handlers, retries, timeouts, the bus); Dask only
computes. A flow runs on the cluster with the states and events it has locally; async task
functions run on the worker's loop; a task that fails on a worker, or whose worker dies under it,
is retried by the engine; cancelling the run or timing out a task cancels its Dask future; a call
that cannot be pickled fails its task with an error naming it.

One cluster is started for the whole module and reused. The scheduler is built with
``distributed.scheduler.allowed-failures = 0``, so a worker dying under a task surfaces at once as
``KilledWorker`` instead of Dask quietly rescheduling the task elsewhere. ``distributed`` is in
the ``dev`` extra: these tests always run, a missing Dask fails them rather than skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import dask
import distributed
import pytest

from asyncflow import EventBus, Flow, Parameter, context, signals, task
from asyncflow.engine.state import (
    Cancelled,
    Failed,
    Mapped,
    Pending,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
)
from asyncflow.exceptions import ExecutorError
from asyncflow.executors import DaskExecutor, LocalExecutor
from asyncflow.testing import EventRecorder, FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

    from asyncflow import StateChange

TASK_SUCCEEDED = "Task run succeeded."
FLOW_SUCCEEDED = "All reference tasks succeeded."
# The scheduler serves HTTP even without a dashboard: ``dashboard_address=None`` binds port 8787,
# and a second cluster in the process then warns "Port 8787 is already in use". A random port
# keeps these clusters out of each other's (and the machine's) way.
NO_FIXED_PORT = ":0"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes, started once for the module."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=NO_FIXED_PORT
        )
    with local:
        yield local


@pytest.fixture
def executor(cluster: Any) -> DaskExecutor:
    return DaskExecutor(address=cluster.scheduler_address)


async def busy_keys(cluster: Any) -> list[str]:
    """The keys the scheduler sees processing, on any worker."""
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        processing = await client.processing()
    return sorted(key for keys in processing.values() for key in keys)


# The two helpers below poll: what they wait for happens in other processes (the scheduler, a
# worker), which cannot set an event in this one.


async def wait_until_idle(cluster: Any) -> None:
    while await busy_keys(cluster):  # noqa: ASYNC110
        await anyio.sleep(0.02)


async def wait_for_file(path: Path) -> None:
    while not await anyio.Path(path).exists():  # noqa: ASYNC110
        await anyio.sleep(0.01)


def by_name(state: State) -> dict[str, State]:
    return {t.name: s for t, s in state.result.items()}


def transitions(events: list[StateChange]) -> dict[tuple[str | None, int | None], list[Any]]:
    """Each task run's (and the flow's) transitions, in order: (old class, new class, message)."""
    per_run: dict[tuple[str | None, int | None], list[Any]] = {}
    for e in events:
        per_run.setdefault((e.task_name, e.map_index), []).append(
            (type(e.old_state), type(e.new_state), e.new_state.message)
        )
    return per_run


# -- task functions (they travel to the workers by cloudpickle) ----------------------------------


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def square(x: int) -> int:
    return x * x


@task
async def total(xs: list[int]) -> int:
    await asyncio.sleep(0)
    return sum(xs)


@task
def sync_where() -> tuple[int, str]:
    return os.getpid(), distributed.get_worker().address


@task
async def async_where() -> tuple[int, str, bool]:
    await asyncio.sleep(0)
    worker = distributed.get_worker()
    on_worker_loop = asyncio.get_running_loop() is worker.loop.asyncio_loop
    return os.getpid(), worker.address, on_worker_loop


@task
def take_lock(lock: Any) -> str:
    return "never"


@task
def make_lock() -> Any:
    return threading.Lock()


@task
async def sleep_until_stopped(started: str, stop: str) -> str:
    """Sleeps up to 30 s on the worker's loop.

    Dask cannot interrupt a call that runs: a cancelled one keeps its worker's only slot until it
    returns. The test touches ``stop`` when it is done, so that the next test finds the worker free
    (this polls because the test is in another process).
    """
    await anyio.Path(started).touch()
    deadline = time.monotonic() + 30
    while not await anyio.Path(stop).exists() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return "slept"


def closes_over_lock() -> Any:
    """Bind (in the active flow) a task whose function holds a lock in its closure."""
    lock = threading.Lock()
    return task(lambda: lock.locked(), name="closes_over_lock")()


class TestSameFlowLocallyAndOnDask:
    async def test_sync_async_and_mapped_tasks_end_in_the_same_states_with_the_same_events(
        self, executor: DaskExecutor
    ) -> None:
        with Flow("squares") as flow:
            squares = square.map(numbers(Parameter("n")))
            total(squares)

        finals: list[State] = []
        runs: list[list[StateChange]] = []
        for run_executor in (LocalExecutor(), executor):
            recorder = EventRecorder()
            bus = EventBus()
            bus.subscribe(recorder)
            finals.append(await flow.run_async({"n": 4}, executor=run_executor, bus=bus))
            runs.append(recorder.events)

        local, on_dask = finals
        assert on_dask == local
        assert on_dask == Success(FLOW_SUCCEEDED, on_dask.result)
        assert by_name(on_dask)["total"] == Success(TASK_SUCCEEDED, 14)
        mapped = by_name(on_dask)["square"]
        assert (type(mapped), mapped.message, mapped.result) == (
            Mapped,
            "Ready to proceed with mapping.",
            [0, 1, 4, 9],
        )
        assert transitions(runs[1]) == transitions(runs[0])
        assert sorted(transitions(runs[1]), key=repr) == sorted(
            [(None, None), ("n", None), ("numbers", None), ("square", None), ("total", None)]
            + [("square", i) for i in range(4)],
            key=repr,
        )
        assert transitions(runs[1])[("total", None)] == [
            (Pending, Running, "Starting task run."),
            (Running, Success, TASK_SUCCEEDED),
        ]
        for events in runs:
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert (events[0].task_name, type(events[0].old_state)) == (None, Scheduled)
            assert (events[-1].task_name, type(events[-1].new_state)) == (None, Success)

    @pytest.mark.parametrize(
        ("raises", "expected"),
        [
            (ValueError("nope"), Failed("Error during execution of task: ValueError('nope')")),
            (signals.FAIL("bad"), Failed("bad")),
            (signals.SKIP("not today"), Skipped("not today")),
        ],
        ids=["error", "FAIL", "SKIP"],
    )
    async def test_an_error_or_a_signal_raised_on_a_worker_gives_the_state_it_gives_locally(
        self, executor: DaskExecutor, bus: EventBus, raises: BaseException, expected: State
    ) -> None:
        @task
        def raiser() -> None:
            raise raises

        with Flow("raising") as flow:
            raiser()
        local = by_name(await flow.run_async(executor=LocalExecutor(), bus=bus))["raiser"]
        on_dask = by_name(await flow.run_async(executor=executor, bus=bus))["raiser"]
        for state in (local, on_dask):
            assert type(state) is type(expected)
            assert state.message == expected.message
            assert type(state.result) is type(raises)
            assert state.result.args == raises.args


class TestWhereTaskCodeRuns:
    async def test_sync_and_async_task_functions_run_on_the_workers(
        self, executor: DaskExecutor, bus: EventBus, cluster: Any
    ) -> None:
        with Flow("where") as flow:
            sync_where()
            async_where()
        state = await flow.run_async(executor=executor, bus=bus)
        results = {name: s.result for name, s in by_name(state).items()}
        workers = set(cluster.scheduler_info["workers"])
        sync_pid, sync_worker = results["sync_where"]
        async_pid, async_worker, on_worker_loop = results["async_where"]
        assert os.getpid() not in (sync_pid, async_pid)
        assert {sync_worker, async_worker} <= workers
        assert on_worker_loop is True

    async def test_a_task_tagged_with_the_name_of_a_dask_executor_runs_on_dask_and_others_locally(
        self, executor: DaskExecutor, bus: EventBus
    ) -> None:
        @task
        def pid_here() -> int:
            return os.getpid()

        with Flow("mixed") as flow:
            local = pid_here()
            remote = pid_here(task_args={"tags": ["cpu"]})
        state = await flow.run_async(executors={"cpu": executor}, bus=bus)
        assert state.result[local].result == os.getpid()
        assert state.result[remote].result != os.getpid()

    async def test_sync_and_async_task_code_on_a_worker_reads_the_runs_context(
        self, executor: DaskExecutor, bus: EventBus
    ) -> None:
        """Prefect 1.x task code reads ``prefect.context`` on Dask workers; so does ours."""

        def read_context() -> tuple[Any, ...]:
            keys = ("flow_name", "flow_run_id", "task_name", "map_index", "parameters", "team")
            return tuple(context.get(key) for key in keys)

        @task
        def sync_context(x: int) -> tuple[Any, ...]:
            return read_context()

        @task
        async def async_context(x: int) -> tuple[Any, ...]:
            return read_context()

        with Flow("ctx") as flow:
            xs = Parameter("xs")
            sync_context.map(xs)
            async_context.map(xs)
        with context(team="data"):  # the caller's keys travel too, under the run's
            async with flow.start({"xs": [7, 8]}, executor=executor, bus=bus) as run:
                state = await run.wait()
        for name in ("sync_context", "async_context"):
            assert [child.result for child in by_name(state)[name].map_states] == [
                ("ctx", run.id, name, 0, {"xs": [7, 8]}, "data"),
                ("ctx", run.id, name, 1, {"xs": [7, 8]}, "data"),
            ]


class TestFailuresOnWorkers:
    async def test_a_task_that_fails_on_a_worker_is_retried_by_the_engine(
        self, executor: DaskExecutor, bus: EventBus, recorder: EventRecorder, tmp_path: Path
    ) -> None:
        @task(max_retries=2, retry_delay=timedelta(minutes=10))
        def flaky(marker: str) -> int:
            if not Path(marker).exists():
                Path(marker).touch()
                raise RuntimeError("first attempt fails")
            return os.getpid()

        with Flow("flaky") as flow:
            flaky(str(tmp_path / "attempted"))
        # The ten-minute delay is spent on a fake clock: the engine, not Dask, waits it out.
        state = await flow.run_async(executor=executor, bus=bus, clock=FakeClock())
        assert by_name(state)["flaky"].result != os.getpid()
        assert [
            (type(e.new_state), e.new_state.message)
            for e in recorder.events
            if e.task_name == "flaky"
        ] == [
            (Running, "Starting task run."),
            (Failed, "Error during execution of task: RuntimeError('first attempt fails')"),
            (Retrying, "Retrying Task (after attempt 1 of 3)"),
            (Running, "Starting task run."),
            (Success, TASK_SUCCEEDED),
        ]
        assert state == Success(FLOW_SUCCEEDED, state.result)

    async def test_a_worker_killed_mid_task_fails_the_attempt_and_the_engine_retries_it(
        self, executor: DaskExecutor, bus: EventBus, recorder: EventRecorder, tmp_path: Path
    ) -> None:
        @task(max_retries=1, retry_delay=0)
        def dies_once(marker: str) -> str:
            if not Path(marker).exists():
                Path(marker).touch()
                os._exit(1)  # the worker process dies under the task
            return "survived"

        with Flow("killed") as flow:
            dies_once(str(tmp_path / "died"))
        with anyio.fail_after(60):
            state = await flow.run_async(executor=executor, bus=bus)
        news = [e.new_state for e in recorder.events if e.task_name == "dies_once"]
        assert [type(s) for s in news] == [Running, Failed, Retrying, Running, Success]
        killed = news[1]
        assert isinstance(killed.result, distributed.KilledWorker)
        assert killed.message == f"Error during execution of task: {killed.result!r}"
        assert news[-1] == Success(TASK_SUCCEEDED, "survived")
        assert state == Success(FLOW_SUCCEEDED, state.result)

    @pytest.mark.parametrize(
        ("flow_of", "message"),
        [
            (
                lambda: take_lock(threading.Lock()),
                "task 'take_lock' cannot run on Dask: its input 'lock' cannot be pickled "
                """(TypeError("cannot pickle '_thread.lock' object"))""",
            ),
            (
                closes_over_lock,
                "task 'closes_over_lock' cannot run on Dask: its function cannot be pickled "
                """(TypeError("cannot pickle '_thread.lock' object"))""",
            ),
        ],
        ids=["input", "function"],
    )
    async def test_an_unpicklable_call_fails_the_task_with_an_error_naming_it(
        self, executor: DaskExecutor, bus: EventBus, flow_of: Any, message: str
    ) -> None:
        with Flow("unpicklable") as flow:
            flow_of()
        state = await flow.run_async(executor=executor, bus=bus)
        (task_state,) = state.result.values()
        error = task_state.result
        assert type(error) is ExecutorError
        assert str(error) == message
        assert task_state == Failed(f"Error during execution of task: {error!r}", error)
        assert state == Failed("Some reference tasks failed.", state.result)

    async def test_an_unpicklable_result_fails_the_task_with_an_error_naming_it(
        self, executor: DaskExecutor, bus: EventBus
    ) -> None:
        """As with ``ProcessExecutor``: an ``ExecutorError`` that names the task."""
        with Flow("unpicklable result") as flow:
            make_lock()
        with anyio.fail_after(30):
            state = await flow.run_async(executor=executor, bus=bus)
        task_state = by_name(state)["make_lock"]
        error = task_state.result
        assert type(error) is ExecutorError
        assert str(error) == (
            "task 'make_lock' returned a result that cannot be pickled back "
            """(TypeError("cannot pickle '_thread.lock' object"))"""
        )
        assert task_state == Failed(f"Error during execution of task: {error!r}", error)


class TestCancellingDaskFutures:
    async def test_cancelling_the_run_cancels_the_dask_future(
        self, executor: DaskExecutor, bus: EventBus, cluster: Any, tmp_path: Path
    ) -> None:
        started, stop = tmp_path / "started", tmp_path / "stop"
        with Flow("sleepy") as flow:
            sleep_until_stopped(str(started), str(stop))
        try:
            # The executor is held open, so it is the cancel, not the client closing at the
            # end of the run, that releases the future.
            async with executor:
                async with flow.start(executor=executor, bus=bus) as run:
                    with anyio.fail_after(10):
                        await wait_for_file(started)
                    assert [key.split("-")[0] for key in await busy_keys(cluster)] == [
                        "sleep_until_stopped"
                    ]
                    cancelled_at = time.monotonic()
                    run.cancel()
                    with anyio.fail_after(5):
                        final = await run.wait()
                assert time.monotonic() - cancelled_at < 2
                assert final == Cancelled("Flow run was cancelled.", final.result)
                assert by_name(final)["sleep_until_stopped"] == Cancelled("Task run was cancelled.")
                with anyio.fail_after(5):
                    await wait_until_idle(cluster)
        finally:
            stop.touch()  # Dask cannot interrupt a running call: let it return

    @pytest.mark.realtime
    async def test_a_task_that_times_out_has_its_dask_future_cancelled(
        self, executor: DaskExecutor, bus: EventBus, cluster: Any, tmp_path: Path
    ) -> None:
        stop = tmp_path / "stop"

        with Flow("too slow") as flow:
            sleep_until_stopped(
                str(tmp_path / "started"),
                str(stop),
                task_args={"name": "too_slow", "timeout": 0.3},
            )
        try:
            async with executor:
                with anyio.fail_after(10):
                    state = await flow.run_async(executor=executor, bus=bus)
                task_state = by_name(state)["too_slow"]
                assert task_state == TimedOut("Task timed out during execution.", task_state.result)
                assert str(task_state.result) == "Task 'too_slow' timed out after 0.3 seconds"
                with anyio.fail_after(5):
                    await wait_until_idle(cluster)
        finally:
            stop.touch()


class TestDaskExecutorLifecycle:
    async def test_without_an_address_it_starts_a_cluster_for_the_run_and_closes_it(
        self, bus: EventBus
    ) -> None:
        executor = DaskExecutor(
            cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": NO_FIXED_PORT}
        )
        with Flow("own cluster") as flow:
            sync_where()
        async with executor:
            assert isinstance(executor.cluster, distributed.LocalCluster)
            assert executor.cluster.scheduler_info["workers"]
            state = await flow.run_async(executor=executor, bus=bus)
        assert by_name(state)["sync_where"].result[0] == os.getpid()  # threads, not processes
        assert (executor.client, executor.cluster) == (None, None)

    async def test_cluster_class_is_called_with_cluster_kwargs(self, bus: EventBus) -> None:
        made: list[dict[str, Any]] = []

        def make_cluster(**kwargs: Any) -> Any:
            made.append(kwargs)
            return distributed.LocalCluster(**kwargs)

        executor = DaskExecutor(
            cluster_class=make_cluster,
            cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": NO_FIXED_PORT},
            client_kwargs={"set_as_default": False},
        )
        with Flow("custom cluster") as flow:
            square(3)
        state = await flow.run_async(executor=executor, bus=bus)
        assert by_name(state)["square"] == Success(TASK_SUCCEEDED, 9)
        assert made == [
            {
                "asynchronous": True,
                "dashboard_address": NO_FIXED_PORT,
                "n_workers": 1,
                "processes": False,
            }
        ]

    def test_an_address_and_a_cluster_class_together_are_refused(self) -> None:
        with pytest.raises(
            ValueError,
            match=re.escape("give DaskExecutor an address or a cluster_class, not both"),
        ):
            DaskExecutor(address="tcp://127.0.0.1:8786", cluster_class=distributed.LocalCluster)

    async def test_submitting_before_it_is_started_is_refused(self) -> None:
        executor = DaskExecutor(address="tcp://127.0.0.1:8786")
        with pytest.raises(
            ExecutorError,
            match=re.escape(
                "DaskExecutor(tcp://127.0.0.1:8786) is not started: use it as a run's executor"
            ),
        ):
            await executor.submit(square.run, {"x": 2})

    @pytest.mark.parametrize(
        ("executor", "expected"),
        [
            (DaskExecutor(), "DaskExecutor(LocalCluster)"),
            (DaskExecutor(address="tcp://10.0.0.1:8786"), "DaskExecutor(tcp://10.0.0.1:8786)"),
        ],
        ids=["cluster", "address"],
    )
    def test_its_repr_says_where_it_runs(self, executor: DaskExecutor, expected: str) -> None:
        assert repr(executor) == expected


class TestConnectingToAScheduler:
    @pytest.mark.realtime
    async def test_a_bad_address_fails_the_run_with_an_executor_error_within_the_timeout(
        self, bus: EventBus
    ) -> None:
        with socket_nobody_listens_on() as address:
            executor = DaskExecutor(address=address, connect_timeout=0.5)
            with Flow("nowhere") as flow:
                square(2)
            started = time.monotonic()
            with pytest.raises(ExecutorError, match=re.escape(f"could not start {executor!r}")):
                await flow.run_async(executor=executor, bus=bus)
        assert time.monotonic() - started < 5

    def test_the_connect_timeout_defaults_to_a_few_seconds(self) -> None:
        assert DaskExecutor().connect_timeout == 5.0

    @pytest.mark.parametrize("timeout", [0, -1.0])
    def test_a_connect_timeout_that_is_not_positive_is_refused(self, timeout: float) -> None:
        with pytest.raises(ValueError, match="connect_timeout must be a positive number"):
            DaskExecutor(address="tcp://127.0.0.1:8786", connect_timeout=timeout)


@contextlib.contextmanager
def socket_nobody_listens_on() -> Iterator[str]:
    """A local address that refuses connections (a port bound but never listened on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
