"""Where a task's callable runs.

An :class:`Executor` is entered for the duration of a run (``async with executor:``) and runs
one callable at a time through :meth:`Executor.submit`, returning its result to the engine. States,
handlers, retries and events always stay on the engine's event loop; an executor only computes.

- :class:`LocalExecutor`, the default, awaits ``async def`` tasks directly on the loop and sends
  sync tasks to worker threads through ``anyio.to_thread.run_sync``, bounded by a
  :class:`~anyio.CapacityLimiter` of ``max_threads`` (default 40, anyio's own default).
- :class:`ProcessExecutor` sends sync tasks to worker processes (``anyio.to_process``) for
  CPU-bound work; async tasks stay on the loop. Functions and inputs travel by cloudpickle
  (so ``@task`` functions and lambdas work), results by pickle.
- :class:`~asyncflow.runtime.dask.DaskExecutor` runs tasks on a Dask cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import os
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_process
import anyio.to_thread
from anyio.lowlevel import RunVar

from ..exceptions import ExecutorError
from . import remote

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = (
    "DEFAULT_MAX_THREADS",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "ProcessExecutor",
    "default_executor",
)

DEFAULT_MAX_THREADS = 40


class Executor:
    """Base class: run task callables somewhere, return their results to the loop.

    Subclasses override :meth:`submit`, and :meth:`start`/:meth:`stop` when they hold
    resources. Entering is reference-counted, so one executor can serve concurrent runs.
    """

    #: Whether ``async def`` tasks are awaited directly on the engine's loop (a fast path the
    #: engine takes instead of calling :meth:`submit`).
    runs_async_inline: bool = False

    #: How many calls it runs at once (``None``: no useful bound); the engine starts no more
    #: workers for it than that.
    capacity: int | None = None

    def __init__(self) -> None:
        self._users = 0

    async def start(self) -> None:
        """Acquire resources (threads, clients); called when the first run enters."""

    async def stop(self) -> None:
        """Release them; called when the last run leaves."""

    async def __aenter__(self) -> Self:
        if self._users == 0:
            await self.start()
        self._users += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._users -= 1
        if self._users == 0:
            await self.stop()

    async def submit(
        self,
        fn: Callable[..., Any],
        kwargs: Mapping[str, Any],
        *,
        abandon_on_cancel: bool = False,
        name: str = "task",
    ) -> Any:
        """Run ``fn(**kwargs)`` and return its result (or raise its exception).

        Args:
            fn: a sync or async callable.
            kwargs: its keyword arguments.
            abandon_on_cancel: when the caller is cancelled (a timeout), stop waiting for a
                call that cannot be interrupted, leaving it to finish on its own.
            name: the task's name, for error messages.

        Raises:
            ExecutorError: the call could not be sent where it runs (e.g. it cannot be
                pickled); the message names the task.
        """
        raise NotImplementedError

    def timeout_note(self) -> str | None:
        """What to add to a ``TimedOut`` message of a call this task just abandoned, if any.

        Read by the engine right after a call of the current task timed out.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LocalExecutor(Executor):
    """Async tasks on the loop, sync tasks in worker threads.

    One executor's threads are shared by every run that uses it, on each event loop; runs
    given no executor share :func:`default_executor`.

    A sync call abandoned at its timeout cannot be interrupted: it keeps its thread, and its
    place under ``max_threads``, until it returns, so hung calls never add threads beyond the
    limit (the ``TimedOut`` message says so).

    Args:
        max_threads: how many sync tasks may run at once (worker threads).
    """

    runs_async_inline = True

    def __init__(self, max_threads: int = DEFAULT_MAX_THREADS) -> None:
        super().__init__()
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads!r}")
        self.max_threads = max_threads
        self.capacity = max_threads
        # One limiter per event loop (a limiter belongs to the loop it was made on).
        self._limiters: RunVar[anyio.CapacityLimiter] = RunVar("asyncflow_threads")
        self.abandoned = 0  # calls abandoned at their timeout and still running

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The thread limiter of the running event loop (created on first use)."""
        limiter = self._limiters.get(None)
        if limiter is None:
            limiter = anyio.CapacityLimiter(self.max_threads)
            self._limiters.set(limiter)
        return limiter

    async def submit(
        self,
        fn: Callable[..., Any],
        kwargs: Mapping[str, Any],
        *,
        abandon_on_cancel: bool = False,
        name: str = "task",
    ) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(**kwargs)
        call = functools.partial(fn, **kwargs) if kwargs else fn
        if abandon_on_cancel:
            result = await self._abandonable(call, name)
        else:
            result = await anyio.to_thread.run_sync(call, limiter=self.limiter)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            result = await result
        return result

    async def _abandonable(self, call: Callable[[], Any], name: str) -> Any:
        """Run ``call`` in a thread whose slot is freed when the thread ends, not before.

        anyio frees the slot of an abandoned call at once, which would let hung calls pile
        up threads past ``max_threads``; here the thread itself gives its slot back.
        """
        limiter = self.limiter
        borrower = object()
        try:
            await limiter.acquire_on_behalf_of(borrower)
        except anyio.get_cancelled_exc_class():
            if self.abandoned:
                _ABANDONED.set(
                    f"No thread of {self!r} became free in time: {self.abandoned} of its "
                    f"threads are held by abandoned calls that have not returned."
                )
            raise
        lock = threading.Lock()
        # "started": the thread took the call; "done": it returned; "abandoned": the caller
        # stopped waiting while it ran (the thread gives the slot back); "dropped": the caller
        # stopped waiting before any thread took it (anyio then never runs it).
        state = {"started": False, "done": False, "abandoned": False, "dropped": False}
        token = anyio.lowlevel.current_token()

        def run() -> Any:
            with lock:
                if state["dropped"]:
                    return None
                state["started"] = True
            try:
                return call()
            finally:
                with lock:
                    state["done"] = True
                    abandoned = state["abandoned"]
                if abandoned:
                    _release_from_thread(self, limiter, borrower, token)

        try:
            return await anyio.to_thread.run_sync(run, abandon_on_cancel=True, limiter=_unbounded())
        except anyio.get_cancelled_exc_class():
            with lock:
                state["abandoned"] = state["started"] and not state["done"]
                state["dropped"] = not state["started"]
            if state["abandoned"]:
                self.abandoned += 1
                _ABANDONED.set(
                    f"Its thread could not be interrupted and was abandoned: task {name!r} "
                    f"keeps one of the {self.max_threads} threads of {self!r} until its call "
                    f"returns."
                )
            raise
        finally:
            if not state["abandoned"]:
                limiter.release_on_behalf_of(borrower)

    def timeout_note(self) -> str | None:
        note = _ABANDONED.get()
        if note is not None:
            _ABANDONED.set(None)
        return note

    def __repr__(self) -> str:
        return f"LocalExecutor(max_threads={self.max_threads})"


_ABANDONED: ContextVar[str | None] = ContextVar("asyncflow_abandoned", default=None)
_UNBOUNDED: RunVar[anyio.CapacityLimiter] = RunVar("asyncflow_unbounded_threads")


def _unbounded() -> anyio.CapacityLimiter:
    """A limiter that never makes a call wait (the executor's own limiter did)."""
    limiter = _UNBOUNDED.get(None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(math.inf)
        _UNBOUNDED.set(limiter)
    return limiter


def _release_from_thread(
    executor: LocalExecutor,
    limiter: anyio.CapacityLimiter,
    borrower: object,
    token: anyio.lowlevel.EventLoopToken,
) -> None:
    """An abandoned call returned: give its slot back, on the loop it belongs to.

    Scheduled without waiting for it: the loop may be stopping or gone (the run ended long
    ago), and a worker thread that waited for it would keep the interpreter from exiting.
    """

    def release() -> None:
        executor.abandoned -= 1
        limiter.release_on_behalf_of(borrower)

    loop = token.native_token
    # RuntimeError: the loop is closed (asyncio) or the run finished (trio's RunFinishedError):
    # its limiter went with it.
    with contextlib.suppress(RuntimeError):
        if isinstance(loop, asyncio.AbstractEventLoop):
            loop.call_soon_threadsafe(release)
        else:  # trio's TrioToken
            loop.run_sync_soon(release)  # type: ignore[attr-defined]


_DEFAULT_EXECUTOR: LocalExecutor | None = None


def default_executor() -> LocalExecutor:
    """The process-wide ``LocalExecutor(max_threads=40)`` of runs given no executor."""
    global _DEFAULT_EXECUTOR
    if _DEFAULT_EXECUTOR is None:
        _DEFAULT_EXECUTOR = LocalExecutor()
    return _DEFAULT_EXECUTOR


class ProcessExecutor(Executor):
    """Sync tasks in worker processes (for CPU-bound work); async tasks on the loop.

    Worker processes are started on demand by anyio and reused; ``max_workers`` bounds how many
    run at once (default: the number of CPUs). Cancelling a task (or its timeout) terminates
    the process running it. A worker process that dies under a task fails that task with an
    :class:`ExecutorError` naming it and the exit code or signal.

    Args:
        max_workers: the most worker processes busy at once.
    """

    runs_async_inline = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers!r}")
        self.max_workers = max_workers
        self.capacity = max_workers or os.cpu_count() or 1
        self._limiter: anyio.CapacityLimiter | None = None

    async def start(self) -> None:
        if self.max_workers is not None:
            self._limiter = anyio.CapacityLimiter(self.max_workers)

    async def stop(self) -> None:
        self._limiter = None

    async def submit(
        self,
        fn: Callable[..., Any],
        kwargs: Mapping[str, Any],
        *,
        abandon_on_cancel: bool = False,
        name: str = "task",
    ) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(**kwargs)
        try:
            payload = remote.dumps((fn, dict(kwargs), remote.snapshot(), name))
        except Exception as exc:
            raise ExecutorError(
                f"task {name!r} cannot run in a worker process: its function or inputs cannot "
                f"be pickled ({exc!r})"
            ) from exc
        try:
            # Cancellable: a cancelled (or timed out) call kills its worker process, which
            # anyio then reaps; no process is left running the abandoned call.
            result = await anyio.to_process.run_sync(
                remote.run_payload, payload, cancellable=True, limiter=self._limiter
            )
        except anyio.BrokenWorkerProcess as exc:
            # anyio may give up on the dead worker before its exit status is read: wait for it
            # (briefly) so that the message can say how it ended.
            process = remote.broken_process(exc)
            if process is not None and getattr(process, "returncode", 0) is None:
                with anyio.move_on_after(1.0, shield=True):
                    await process.wait()
            raise ExecutorError(remote.dead_worker_message(name, exc)) from exc
        return remote.loads(result)

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers})"
