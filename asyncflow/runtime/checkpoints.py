"""Checkpoints and targets: where a task's value is persisted, and found again.

Two moments of a task run touch persisted values, and both go through a :class:`Checkpoints`
object held by the scheduler:

- **before running** (:meth:`Checkpoints.lookup`): is a value already stored for this task
  (its ``target`` exists, or a run store has it)? Then the task ends in the returned state
  (``Cached("Result found at task target ...")``) without being called;
- **after success** (:meth:`Checkpoints.save`): write the value and return the state that
  carries the written :class:`~asyncflow.engine.result.Result` (``state.location``).

:class:`ResultCheckpoints` implements both with each task's Result, as Prefect 1.x does. A run
store plugs in by wrapping it (keep the Result behaviour for tasks that have a result, use the
store for the others) and handing its object to the run. The engine asks only for the tasks
:meth:`Checkpoints.wants` says yes to, so a run without results pays nothing per task. Every
Result call runs in a worker thread: storage I/O never blocks the event loop.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import attrs

from ..states import Cached, Failed, State

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

    from ..results.base import Result
    from .spec import FlowSpec, TaskSpec

__all__ = (
    "RESULT_LIMITER",
    "Checkpoints",
    "ResultCheckpoints",
    "TaskKey",
    "format_kwargs",
    "plan",
    "wanted",
)

#: Result I/O of all runs shares these threads (apart from the tasks' own sync calls).
RESULT_LIMITER_SIZE = 16
RESULT_LIMITER: anyio.CapacityLimiter | None = None


def _limiter() -> anyio.CapacityLimiter:
    global RESULT_LIMITER
    if RESULT_LIMITER is None:
        RESULT_LIMITER = anyio.CapacityLimiter(RESULT_LIMITER_SIZE)
    return RESULT_LIMITER


@attrs.frozen
class TaskKey:
    """Which task run a checkpoint belongs to.

    Attributes:
        run_id: the flow run's id.
        spec: the task.
        map_index: the mapped child's index (``None`` for an unmapped task).
        inputs: the task's inputs, by argument name.
        parameters: the flow run's parameters.
        context: the run context the task runs in.
    """

    run_id: str
    spec: TaskSpec
    map_index: int | None
    inputs: Mapping[str, Any]
    parameters: Mapping[str, Any]
    context: Mapping[str, Any]

    @property
    def kwargs(self) -> dict[str, Any]:
        """What locations are formatted with: the parameters, the run context and the task's
        inputs (later ones win), as in Prefect 1.x. Built when asked for: a store's own
        checkpoints never format a template, and copying the context costs more than a
        whole no-op task."""
        return format_kwargs(self.parameters, self.context, self.inputs)


class Checkpoints(Protocol):
    """The engine's hook for persisted task values (see the module docstring)."""

    def wants(self, spec: TaskSpec) -> tuple[bool, bool]:
        """Whether to call ``(lookup, save)`` for ``spec``; asked once per task and run."""

    async def lookup(self, key: TaskKey) -> State | None:
        """Before the task runs: the final state to end in without running, or ``None``."""

    async def save(self, key: TaskKey, state: State) -> State:
        """After success: ``state`` carrying its checkpoint, or a ``Failed`` state saying why."""


_WANTS = (((False, False), (False, True)), ((True, False), (True, True)))
_plans: weakref.WeakKeyDictionary[FlowSpec, dict[Hashable, tuple[list[bool], list[bool]]]] = (
    weakref.WeakKeyDictionary()
)


def plan(checkpoints: Checkpoints | None, spec: FlowSpec) -> tuple[list[bool], list[bool]]:
    """For each task of ``spec`` (by index): whether to look up, and whether to save (never
    change the lists: they are shared). A hook whose answers depend on the task alone says so
    with a hashable ``plan_key`` attribute, and is asked once per compiled flow, not per run."""
    if checkpoints is None:
        nothing = [False] * len(spec.tasks)
        return nothing, nothing
    key = getattr(checkpoints, "plan_key", None)
    found = _plans.get(spec, {}).get(key) if key is not None else None
    if found is None:
        wants = [checkpoints.wants(ts) for ts in spec.tasks]
        found = ([w[0] for w in wants], [w[1] for w in wants])
        if key is not None:
            _plans.setdefault(spec, {})[key] = found
    return found


def wanted(lookup: bool, save: bool) -> tuple[bool, bool]:
    """``(lookup, save)``, one of four shared tuples: asked for every task of every run, it
    allocates nothing."""
    return _WANTS[lookup][save]


def format_kwargs(
    parameters: Mapping[str, Any], context: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The keyword arguments a location template is formatted with (Prefect 1.x's order)."""
    kwargs = {**parameters, **context, **inputs}
    kwargs.pop("self", None)  # it would clash with the Result methods' own ``self``
    return kwargs


def _describe(result: Result, kwargs: Mapping[str, Any], exc: Exception) -> str:
    """The location a failed call was about, as precisely as it can still be told."""
    template = result.location if result.location is not None else result._formatter
    if template is None:  # the default location: a fresh name each time
        filename = getattr(exc, "filename", None)
        if filename is not None:
            return repr(filename)
        directory = getattr(result, "dir", None)
        return f"a new location under {directory!r}" if directory else "a new location"
    try:
        location = result.format(**kwargs).location
    except Exception:
        return f"template {getattr(template, '__name__', template)!r}"
    directory = getattr(result, "dir", None)  # a file: name its full path
    if isinstance(directory, str) and location is not None:
        location = os.path.join(directory, location)
    return repr(location)


class ResultCheckpoints:
    """Checkpoints through each task's Result: ``target`` lookups and writes after success."""

    #: Its answers depend on the task alone (see :func:`plan`).
    plan_key: Hashable = "results"

    def wants(self, spec: TaskSpec) -> tuple[bool, bool]:
        """Lookups for tasks with a target; saves for tasks with a result and checkpointing."""
        return wanted(spec.target is not None, spec.result is not None and spec.checkpoint)

    async def lookup(self, key: TaskKey) -> State | None:
        """``Cached`` with the value read back when the task's target exists."""
        spec = key.spec
        result, target = spec.result, spec.target
        assert result is not None
        assert target is not None
        kwargs = key.kwargs

        def find() -> tuple[str, Result] | None:
            location = target(**kwargs) if callable(target) else target
            if not result.exists(location, **kwargs):
                return None
            location = location.format(**kwargs)
            return location, result.read(location)

        try:
            found = await anyio.to_thread.run_sync(find, limiter=_limiter())
        except Exception as exc:
            where = _describe(result, kwargs, exc)
            return Failed(f"Task {spec.name!r} could not read its target {where}: {exc!r}", exc)
        if found is None:
            return None
        location, read = found
        return Cached(
            f"Result found at task target {location}",
            read.value,
            cached_inputs=dict(key.inputs),
            cached_parameters=dict(kwargs.get("parameters") or {}),
            checkpoint=read,
        )

    async def save(self, key: TaskKey, state: State) -> State:
        """Write ``state.result`` through the task's Result (``None`` is never written)."""
        value = state.result
        if value is None:
            return state
        spec = key.spec
        result = spec.result
        assert result is not None
        kwargs = key.kwargs
        try:
            written = await anyio.to_thread.run_sync(
                lambda: result.write(value, **kwargs), limiter=_limiter()
            )
        except Exception as exc:
            where = _describe(result, kwargs, exc)
            return Failed(f"Task {spec.name!r} could not write its result to {where}: {exc!r}", exc)
        return attrs.evolve(state, checkpoint=written)
