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

import functools
import inspect
import os
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.to_process
import anyio.to_thread

from ..exceptions import ExecutorError
from . import remote

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ("DEFAULT_MAX_THREADS", "Executor", "ExecutorError", "LocalExecutor", "ProcessExecutor")

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LocalExecutor(Executor):
    """Async tasks on the loop, sync tasks in worker threads.

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
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The thread limiter (created on first use, inside the running loop)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_threads)
        return self._limiter

    async def stop(self) -> None:
        # A new loop (another flow.run()) gets a new limiter.
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
        call = functools.partial(fn, **kwargs) if kwargs else fn
        result = await anyio.to_thread.run_sync(
            call, abandon_on_cancel=abandon_on_cancel, limiter=self.limiter
        )
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            result = await result
        return result

    def __repr__(self) -> str:
        return f"LocalExecutor(max_threads={self.max_threads})"


class ProcessExecutor(Executor):
    """Sync tasks in worker processes (for CPU-bound work); async tasks on the loop.

    Worker processes are started on demand by anyio and reused; ``max_workers`` bounds how many
    run at once (default: the number of CPUs).

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
        result = await anyio.to_process.run_sync(
            remote.run_payload, payload, cancellable=abandon_on_cancel, limiter=self._limiter
        )
        return remote.loads(result)

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers})"
