"""``DaskExecutor``: run task code on a Dask cluster while the engine stays on its loop.

The executor connects to a scheduler (``address=``) or starts a cluster (``cluster_class``,
default ``distributed.LocalCluster``), with an asynchronous ``Client``. Each task call is
``client.submit(fn, **inputs, pure=False)``; its future is awaited on the engine's loop. Async
task functions run on the Dask worker's event loop. States, handlers, retries, timeouts, caching
and the event bus never leave the engine's process: Dask only computes. A worker that dies
mid-task surfaces as ``KilledWorker`` once Dask gives up rescheduling it, which the engine records
as a (retryable) ``Failed``; cancelling the run cancels the Dask futures.

``distributed`` is imported only when the executor starts, so importing asyncflow never
imports Dask.
"""

from __future__ import annotations

import inspect
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from ..exceptions import ExecutorError
from . import remote
from .executors import Executor

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ("DaskExecutor",)


class DaskExecutor(Executor):
    """Task code on Dask distributed.

    Args:
        address: a running scheduler's address; ``None`` starts a cluster for the run.
        cluster_class: the cluster to start (default ``distributed.LocalCluster``), or a
            callable returning one.
        cluster_kwargs: its arguments (``n_workers=``, ``threads_per_worker=``, ...).
        client_kwargs: arguments of ``distributed.Client``.
        connect_timeout: seconds to wait for the scheduler at ``address`` (or the started
            cluster) to answer before the run fails with an
            :class:`~asyncflow.exceptions.ExecutorError` naming the executor (Dask's own default
            is 30 s).
    """

    def __init__(
        self,
        address: str | None = None,
        cluster_class: Callable[..., Any] | None = None,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__()
        if address is not None and cluster_class is not None:
            raise ValueError("give DaskExecutor an address or a cluster_class, not both")
        if not connect_timeout > 0:
            raise ValueError(
                f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}"
            )
        self.connect_timeout = connect_timeout
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.client: Any = None
        self.cluster: Any = None

    async def start(self) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise ExecutorError(
                "DaskExecutor needs the dask extra: pip install 'asyncflow[dask]'"
            ) from exc
        if self.address is not None:
            target: Any = self.address
        else:
            cluster_class = self.cluster_class or distributed.LocalCluster
            # ":0": no fixed port, so two clusters in one process never collide on 8787.
            kwargs = {"dashboard_address": ":0", **self.cluster_kwargs}
            self.cluster = await cluster_class(asynchronous=True, **kwargs)
            target = self.cluster
        client_kwargs = {"timeout": self.connect_timeout, **self.client_kwargs}
        self.client = await distributed.Client(  # type: ignore[no-untyped-call]
            target, asynchronous=True, **client_kwargs
        )

    async def stop(self) -> None:
        with anyio.CancelScope(shield=True):
            if self.client is not None:
                await self.client.close()
            if self.cluster is not None:
                await self.cluster.close()
        self.client = self.cluster = None

    async def submit(
        self,
        fn: Callable[..., Any],
        kwargs: Mapping[str, Any],
        *,
        abandon_on_cancel: bool = False,
        name: str = "task",
    ) -> Any:
        if self.client is None:
            raise ExecutorError(f"{self!r} is not started: use it as a run's executor")
        payload = _payload(fn, kwargs, name)  # pickled once, here; Dask ships the bytes
        call = remote.arun_payload if inspect.iscoroutinefunction(fn) else remote.run_payload
        # A unique key led by the task's name: Dask's dashboard groups and labels by it.
        key = f"{name}-{uuid.uuid4().hex}"
        future = self.client.submit(call, payload, key=key)
        try:
            return remote.loads(await future)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.client.cancel([future], force=True)
            raise

    def __repr__(self) -> str:
        where = self.address or getattr(self.cluster_class, "__name__", "LocalCluster")
        return f"DaskExecutor({where})"


def _payload(fn: Callable[..., Any], kwargs: Mapping[str, Any], name: str) -> bytes:
    """The call, pickled; an error naming the task and the culprit when it cannot be."""
    try:
        return remote.dumps((fn, dict(kwargs), remote.snapshot(), name))
    except Exception as exc:
        raise ExecutorError(
            f"task {name!r} cannot run on Dask: its {_culprit(fn, kwargs)} cannot be pickled "
            f"({exc!r})"
        ) from exc


def _culprit(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> str:
    """Which part of a call cannot be pickled (tried one by one, only after a failure)."""
    for what, obj in (("function", fn), *((f"input {k!r}", v) for k, v in kwargs.items())):
        try:
            remote.dumps(obj)
        except Exception:
            return what
    return "run context"
