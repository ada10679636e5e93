"""Where a task's callable runs.

An :class:`Executor` is entered for the duration of a run (``async with executor:``) and runs
one callable at a time through :meth:`Executor.submit`, returning its result to the engine. States,
handlers, retries and events always stay on the engine's event loop; an executor only computes.

:class:`LocalExecutor`, the default, awaits ``async def`` tasks directly on the loop and sends
sync tasks to worker threads through ``anyio.to_thread.run_sync``, bounded by a
:class:`~anyio.CapacityLimiter` of ``max_threads`` (default 40, anyio's own default).
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ("Executor", "LocalExecutor", "DEFAULT_MAX_THREADS")

DEFAULT_MAX_THREADS = 40


class Executor:
    """Base class: run task callables somewhere, return their results to the loop.

    Subclasses override :meth:`submit`, and :meth:`start`/:meth:`stop` when they hold
    resources. Entering is reference-counted, so one executor can serve concurrent runs.
    """

    #: Whether ``async def`` tasks are awaited directly on the engine's loop (a fast path the
    #: engine takes instead of calling :meth:`submit`).
    runs_async_inline: bool = False

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
    ) -> Any:
        """Run ``fn(**kwargs)`` and return its result (or raise its exception).

        Args:
            fn: a sync or async callable.
            kwargs: its keyword arguments.
            abandon_on_cancel: when the caller is cancelled (a timeout), stop waiting for a
                call that cannot be interrupted, leaving it to finish on its own.
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
