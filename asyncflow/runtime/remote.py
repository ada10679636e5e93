"""Running task code in another process: what travels there and back.

A remote call carries the task's function, its inputs and a snapshot of the run context (so
task code reads ``context.task_name`` and friends on a Dask worker or in a worker process just
as it does locally). Functions and inputs travel by cloudpickle, which handles ``@task``
functions, lambdas and closures; the result comes back pickled by the worker itself, so that a
result that cannot travel fails with an error naming the task instead of a serializer's stack.
"""

from __future__ import annotations

import pickle
import signal
from typing import TYPE_CHECKING, Any

from .._log import get_logger
from ..context import context, current
from ..exceptions import ExecutorError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ("acall_remote", "call_remote", "dead_worker_message", "dumps", "loads", "snapshot")

#: Context keys that only make sense in the engine's process.
_LOCAL_ONLY = frozenset({"logger", "clock"})


def dumps(obj: Any) -> bytes:
    """cloudpickle when available (it ships with the dask extra), else pickle."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with the dask extra
        return pickle.dumps(obj)
    return cloudpickle.dumps(obj)  # type: ignore[no-any-return]


def loads(data: bytes) -> Any:
    """The inverse of :func:`dumps` (and of what the worker sends back)."""
    return pickle.loads(data)


def snapshot() -> dict[str, Any]:
    """The current run context, minus what cannot leave this process."""
    return {k: v for k, v in current().items() if k not in _LOCAL_ONLY}


def _result_bytes(result: Any, name: str) -> bytes:
    try:
        return dumps(result)
    except Exception as exc:
        raise ExecutorError(
            f"task {name!r} returned a result that cannot be pickled back ({exc!r})"
        ) from None


def call_remote(
    fn: Callable[..., Any], kwargs: Mapping[str, Any], ctx: Mapping[str, Any], name: str
) -> bytes:
    """Runs on the worker: call sync ``fn`` in the run's context; return the result pickled."""
    with context(**ctx, logger=get_logger("asyncflow.task")):
        result = fn(**kwargs)
    return _result_bytes(result, name)


async def acall_remote(
    fn: Callable[..., Any], kwargs: Mapping[str, Any], ctx: Mapping[str, Any], name: str
) -> bytes:
    """Runs on the worker's event loop: the async twin of :func:`call_remote`."""
    with context(**ctx, logger=get_logger("asyncflow.task")):
        result = await fn(**kwargs)
    return _result_bytes(result, name)


def run_payload(payload: bytes) -> bytes:
    """Runs in a worker: unpickle ``(fn, kwargs, ctx, name)`` and call it."""
    fn, kwargs, ctx, name = pickle.loads(payload)
    return call_remote(fn, kwargs, ctx, name)


async def arun_payload(payload: bytes) -> bytes:
    """Runs on a worker's event loop: the async twin of :func:`run_payload`."""
    fn, kwargs, ctx, name = pickle.loads(payload)
    return await acall_remote(fn, kwargs, ctx, name)


def dead_worker_message(name: str, exc: BaseException) -> str:
    """What to tell about a worker process that died while running task ``name``.

    anyio reports only ``BrokenWorkerProcess``; the process it killed and reaped is found in
    the frames of that error, for its pid and exit status.
    """
    process = broken_process(exc)
    pid = getattr(process, "pid", None)
    code = getattr(process, "returncode", None)
    if code is None:
        how = "ended without a word"
    elif code < 0:
        try:
            how = f"was killed by signal {signal.Signals(-code).name} ({-code})"
        except ValueError:
            how = f"was killed by signal {-code}"
        if -code == signal.SIGKILL:
            # anyio kills a worker whose pipe broke, so an exit can race into a SIGKILL.
            how += " (the out-of-memory killer, or a worker that was already ending)"
    else:
        how = f"exited with code {code}"
    where = f"pid {pid}" if pid is not None else "pid unknown"
    return (
        f"task {name!r} lost its worker process ({where}): it {how} while running the task. "
        "The task's code, or a native library it calls, ended the process (os._exit, a crash, "
        "running out of memory); run the task with LocalExecutor to see the error, or give "
        "it retries (max_retries=) if the failure is transient."
    )


def broken_process(exc: BaseException) -> Any:
    """The worker process anyio gave up on, found in the frames of its error (or ``None``)."""
    tb = exc.__traceback__
    while tb is not None:
        process = tb.tb_frame.f_locals.get("process")
        if process is not None and hasattr(process, "returncode"):
            return process
        tb = tb.tb_next
    return None
