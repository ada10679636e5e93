"""One task run: decide whether it runs, then its attempts, each under its timeout.

:func:`drive` takes one unit (a task, or a mapped child) from "ready" to the state it settles
in: upstream check and trigger, cache lookup, ``task_run_name``, tag limits, then
:func:`attempts` (``Running``, the call, ``LOOP`` iterations, retries decided by the pipeline).
:func:`run_attempt` is one call of the task's code: signals and errors raised by it become
states here (they never escape into a task group); only cancellation and interpreter-level
exits (``KeyboardInterrupt``) propagate.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.lowlevel

from .. import signals
from .._log import get_logger, stdout_to_log
from ..caching import duration_only
from ..context import current
from ..states import (
    Cached,
    Cancelled,
    Failed,
    Looped,
    Paused,
    Resume,
    Retrying,
    State,
    Success,
    TimedOut,
)
from . import pipeline
from .checkpoints import TaskKey, format_kwargs
from .handlers import failed_in_handler
from .pipeline import GENERAL, WAIT, all_finished, state_from_exception, success

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..clock import Clock
    from ..edges import Edge
    from .executors import Executor
    from .scheduler import Scheduler
    from .spec import TaskSpec
    from .units import Unit

__all__ = (
    "TIMED_OUT_MESSAGE",
    "EndRun",
    "Interrupted",
    "attempts",
    "drive",
    "resume_if_asked",
    "run_attempt",
)

TIMED_OUT_MESSAGE = "Task timed out during execution."
_log = get_logger("asyncflow.engine")
_CATCH = (Exception, signals.AsyncflowSignal)


class EndRun(NamedTuple):
    """The task raised ``ENDRUN(state)``: end in exactly ``state``, with no retry."""

    state: State


class Interrupted(NamedTuple):
    """The task raised ``KeyboardInterrupt`` or ``SystemExit``: the whole run stops.

    Caught here rather than left to propagate, because asyncio lets such an exception escape
    the event loop at once, before any other task records its final state.
    """

    exc: BaseException


_INTERRUPTS = (KeyboardInterrupt, SystemExit)


async def run_attempt(
    spec: TaskSpec, inputs: Mapping[str, Any], executor: Executor, clock: Clock
) -> State | EndRun | Interrupted:
    """Run ``spec``'s code once with ``inputs``; return the state it ends in."""
    if spec.log_stdout:
        with stdout_to_log():  # prints of this call (also from its thread) become log lines
            return await _attempt(spec, inputs, executor, clock)
    return await _attempt(spec, inputs, executor, clock)


async def _attempt(
    spec: TaskSpec, inputs: Mapping[str, Any], executor: Executor, clock: Clock
) -> State | EndRun | Interrupted:
    try:
        if spec.timeout is None:
            if spec.is_async and executor.runs_async_inline:
                value = await spec.fn(**inputs)
            else:
                value = await executor.submit(spec.fn, inputs, name=spec.name)
                # A thread cannot be interrupted: when the run was cancelled while it ran,
                # the call is waited for, and then the task still ends Cancelled.
                await anyio.lowlevel.checkpoint_if_cancelled()
        else:
            return await _run_with_timeout(spec, inputs, executor, clock)
    except _CATCH as exc:
        return state_from_exception(exc)
    except signals.ENDRUN as end:
        return EndRun(end.state)
    except _INTERRUPTS as exc:
        return Interrupted(exc)
    return success(value)


async def _call(spec: TaskSpec, inputs: Mapping[str, Any], executor: Executor) -> Any:
    if spec.is_async and executor.runs_async_inline:
        return await spec.fn(**inputs)
    # A sync call in a thread cannot be interrupted: at the deadline it is abandoned and
    # finishes on its own; its result is then discarded.
    return await executor.submit(spec.fn, inputs, abandon_on_cancel=True, name=spec.name)


async def _run_with_timeout(
    spec: TaskSpec, inputs: Mapping[str, Any], executor: Executor, clock: Clock
) -> State | EndRun | Interrupted:
    assert spec.timeout is not None
    error = TimeoutError(f"Task {spec.name!r} timed out after {spec.timeout:g} seconds")
    if not clock.autojump:
        with anyio.move_on_after(spec.timeout) as scope:
            try:
                value = await _call(spec, inputs, executor)
            except _CATCH as exc:
                return state_from_exception(exc)
            except signals.ENDRUN as end:
                return EndRun(end.state)
            except _INTERRUPTS as exc:
                return Interrupted(exc)
        if scope.cancelled_caught:
            return timed_out(executor, error)
        return success(value)

    # A fake clock: a watcher sleeps on it and cancels the call at the deadline.
    outcome: list[State | EndRun | Interrupted] = []
    deadline = clock.now() + spec.timeout

    async def watch(scope: anyio.CancelScope) -> None:
        await clock.sleep_until(deadline)
        outcome.append(TimedOut(TIMED_OUT_MESSAGE, error))
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:
            value = await _call(spec, inputs, executor)
        except _CATCH as exc:
            outcome.append(state_from_exception(exc))
        except signals.ENDRUN as end:
            outcome.append(EndRun(end.state))
        except _INTERRUPTS as exc:
            outcome.append(Interrupted(exc))
        else:
            outcome.append(success(value))
        tg.cancel_scope.cancel()
    if isinstance(outcome[0], TimedOut):
        return timed_out(executor, error)
    return outcome[0]


def timed_out(executor: Executor, error: TimeoutError) -> TimedOut:
    """The state of a call past its timeout (saying so when its thread was abandoned)."""
    note = executor.timeout_note()
    return TimedOut(TIMED_OUT_MESSAGE if note is None else f"{TIMED_OUT_MESSAGE} {note}", error)


# -- one task run -------------------------------------------------------------------------


def upstream_states(sched: Scheduler, unit: Unit) -> dict[Edge, State]:
    """The states the trigger of ``unit`` sees: per-index children for a mapped child."""
    ts, units = unit.spec, sched.units
    m = unit.parent
    if m is None or not (ts.per_index or m.edge_states):
        return {
            e: units[j].state for e, j in zip(ts.upstream_edges, ts.upstream_index, strict=True)
        }
    i = unit.map_index
    assert i is not None
    states: dict[Edge, State] = {}
    at_position = m.edge_states
    for e, j, per_index in zip(ts.upstream_edges, ts.upstream_index, ts.per_index, strict=True):
        up = units[j]
        if per_index and up.mapping is not None:
            states[e] = up.mapping.children[i].state
        elif e in at_position:
            states[e] = at_position[e][i]  # a flattened mapped upstream, item by item
        else:
            states[e] = up.state
    return states


async def resume_if_asked(sched: Scheduler, unit: Unit) -> bool:
    """Move a resumed unit to ``Resume``; ``False`` if a handler refused."""
    settled = await sched.transition(unit, Resume("Resuming task run."))
    if isinstance(settled, Resume):
        return True
    sched.route(unit, settled)
    return False


async def drive(sched: Scheduler, unit: Unit, local: dict[str, Any]) -> None:
    """Take ``unit`` from ready to the state it settles in (``local`` is its context)."""
    ts = unit.spec
    not_before = unit.not_before
    if not_before is not None:
        # Given a Scheduled or Retrying state with a start time: wait for it (on a timer; as
        # in 1.x, a time given by user code counts from the wall clock), then run.
        unit.not_before = None
        delay = (not_before - datetime.now(UTC)).total_seconds()
        if delay > 0:
            _log.debug("task waits for the start time of its given state", task=ts.name)
            sched.park(unit, sched.clock.monotonic() + delay)
            return
    resumed = unit.resumed
    # Approved by hand: Paused -> Resume. A pause until a time that passed goes on directly,
    # with ``resume`` in its context, as in 1.x.
    manual = isinstance(unit.state, Paused) and unit.state.start_time is None
    if resumed and manual and not await resume_if_asked(sched, unit):
        return
    m = unit.parent
    decision: State | None = GENERAL
    fresh = not resumed and unit.run_count == 0
    if m is not None and fresh and m.child_decision is not GENERAL:
        decision = m.child_decision  # decided once for all the children
        if decision is not None:
            sched.route(unit, await sched.transition(unit, decision))
            return
    elif ts.trigger is None and m is None and ts.upstream_edges and fresh:
        units = sched.units
        decision = pipeline.check_default(ts, [units[j].state for j in ts.upstream_index])
        if decision is WAIT:
            sched.finish(unit)  # an upstream task is paused with nobody to resume it
            return
        if decision is not None and decision is not GENERAL:
            sched.route(unit, await sched.transition(unit, decision))
            return
    # A root task with its own trigger asks it too (``manual_only`` pauses even a root).
    if decision is GENERAL and (ts.upstream_edges or ts.trigger is not None):
        upstream = upstream_states(sched, unit)
        if not all_finished(upstream.values()):
            # An upstream task is paused with nobody to resume it: stay as we are.
            sched.finish(unit)
            return
        decision = pipeline.check_upstream(ts, upstream, resumed=resumed)
        if decision is not None:
            sched.route(unit, await sched.transition(unit, decision))
            return
    if m is not None:
        inputs = m.inputs(unit.map_index)  # type: ignore[arg-type]
    elif ts.keyed:
        units = sched.units
        inputs = dict(ts.constants)
        for key, j in ts.keyed:
            inputs[key] = units[j].state.result
    else:
        inputs = ts.constants  # type: ignore[assignment]  # read-only from here on

    if ts.task_run_name is not None:
        try:
            local["task_run_name"] = render_run_name(ts.task_run_name, sched, inputs)
        except Exception as exc:
            failed = Failed(f"Could not render task_run_name: {exc!r}", exc)
            sched.route(unit, await sched.transition(unit, failed))
            return

    checkpoints = sched.checkpoints
    if checkpoints is not None and sched.lookups[ts.index]:
        found = await checkpoints.lookup(checkpoint_key(sched, unit, inputs))
        if found is not None:
            sched.route(unit, await sched.transition(unit, found))
            return

    if ts.cache_for is not None and ts.target is None:  # a target replaces the cache lookup
        hit = cached(sched, unit, inputs)
        if hit is not None:
            sched.route(unit, await sched.transition(unit, hit))
            return

    if ts.tags and sched.tag_limits:
        limiters = [sched.tag_limits[t] for t in sorted(ts.tags) if t in sched.tag_limits]
        for limiter in limiters:  # sorted: two tasks never wait on each other's tags
            await limiter.acquire()
        try:
            await attempts(sched, unit, inputs, local)
        finally:
            for limiter in reversed(limiters):
                limiter.release()
    else:
        await attempts(sched, unit, inputs, local)


async def attempts(
    sched: Scheduler, unit: Unit, inputs: Mapping[str, Any], local: dict[str, Any]
) -> None:
    """Run ``unit`` with ``inputs``: ``Running``, the call, loops, and the retry decision."""
    ts = unit.spec
    loop_count, loop_result = unit.loop or (1, None)
    if unit.loop is not None:
        local["task_loop_count"] = loop_count
        local["task_loop_result"] = loop_result
    while True:
        run_count = unit.run_count = unit.run_count + 1
        local["task_run_count"] = run_count
        settled = await sched.transition(unit, pipeline.RUNNING)
        if not settled.is_running():
            sched.route(unit, settled)
            return
        if ts.parameter is not None:
            raw: State | EndRun | Interrupted = pipeline.success(sched.parameters[ts.parameter])
        else:
            executor = sched.executors[ts.index]
            if sched.offloaded[ts.index]:
                sched.inflight[executor] += 1
                try:
                    raw = await run_attempt(ts, inputs, executor, sched.clock)
                finally:
                    sched.inflight[executor] -= 1
            else:
                raw = await run_attempt(ts, inputs, executor, sched.clock)
        if isinstance(raw, Interrupted):
            message = f"Task run was interrupted: {raw.exc!r}."
            sched.interrupt(raw.exc)  # first: nothing downstream may start now
            sched.route(unit, await sched.transition(unit, Cancelled(message, raw.exc)))
            return
        final = isinstance(raw, EndRun)
        outcome = raw.state if isinstance(raw, EndRun) else raw

        checkpoints = sched.checkpoints
        if isinstance(outcome, Looped):
            looped: State = Looped(
                outcome.message or f"Looped (iteration {loop_count}).",
                outcome.result,
                loop_count=loop_count,
            )
            if checkpoints is not None and sched.saves[ts.index]:
                # Each iteration's result is checkpointed, as in 1.x (a failed write: Failed).
                looped = await checkpoints.save(checkpoint_key(sched, unit, inputs), looped)
            settled = await sched.transition(unit, looped)
            if not isinstance(settled, Looped):
                sched.route(unit, settled)
                return
            loop_count += 1
            unit.loop = (loop_count, settled.result)
            local["task_loop_count"] = loop_count
            local["task_loop_result"] = settled.result
            unit.run_count = 0  # retries apply per iteration
            continue

        if (
            checkpoints is not None
            and sched.saves[ts.index]
            and type(outcome) is Success
            and outcome.result is not None  # None is never written
            and not isinstance(outcome.result, signals.AsyncflowSignal)
        ):
            outcome = await checkpoints.save(checkpoint_key(sched, unit, inputs), outcome)
        now = sched.clock.now()
        if ts.cache_for is not None and type(outcome) is Success:
            outcome = Cached(
                outcome.message,
                outcome.result,
                checkpoint=outcome.checkpoint,
                cached_inputs=dict(inputs),
                cached_parameters=dict(sched.parameters),
                cached_result_expiration=datetime.fromtimestamp(now + ts.cache_for, UTC),
            )
        retry: Retrying | None = None
        if isinstance(outcome, Retrying):  # the RETRY signal
            outcome = pipeline.signal_retry_state(ts, outcome, run_count, now)
        elif not final:  # ENDRUN ends in exactly its state: no retry
            retry = pipeline.retry_state(ts, outcome, run_count, now)
        settled = await sched.transition(unit, outcome)
        if isinstance(settled, Cached):
            sched.cache.put(cache_key(sched, unit), settled)
        if (
            settled is not outcome
            and retry is None
            and not final
            and not failed_in_handler(settled)
        ):
            # A handler turned the outcome into a failure (e.g. it raised FAIL): as in 1.x,
            # retries apply to the state the handlers settled on.
            retry = pipeline.retry_state(ts, settled, run_count, now)
        if retry is not None and settled.is_failed():
            if sched.debug:  # the reprs are not built unless someone reads them
                _log.debug(
                    "task run failed; retrying",
                    state=repr(settled),
                    start_time=str(retry.start_time),
                )
            settled = await sched.transition(unit, retry)
        sched.route(unit, settled)
        return


def checkpoint_key(sched: Scheduler, unit: Unit, inputs: Mapping[str, Any]) -> TaskKey:
    """Which run ``unit`` is, for the checkpoint hook (with its location's format kwargs)."""
    return TaskKey(sched.run_id, unit.spec, unit.map_index, inputs, sched.parameters, current())


def render_run_name(
    template: str | Callable[..., str], sched: Scheduler, inputs: Mapping[str, Any]
) -> str:
    """A task run's name, as Prefect 1.x makes it: from the parameters, context and inputs.

    Later sources win (inputs over context over parameters). A callable gets the keywords its
    signature accepts (all of them with ``**kwargs``).
    """
    values = format_kwargs(sched.parameters, current(), inputs)
    if not callable(template):
        return template.format(**values)
    params = inspect.signature(template).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        names = {p.name for p in params}
        values = {k: v for k, v in values.items() if k in names}
    return template(**values)


def cache_key(sched: Scheduler, unit: Unit) -> str:
    """Where ``unit``'s results are cached: its ``cache_key``, or flow and slug (and index)."""
    ts = unit.spec
    key = ts.cache_key or f"{sched.spec.name}/{ts.slug}"
    return key if unit.map_index is None else f"{key}[{unit.map_index}]"


def cached(sched: Scheduler, unit: Unit, inputs: Mapping[str, Any]) -> Cached | None:
    """A stored ``Cached`` state the task's validator accepts for these inputs, if any."""
    validator = unit.spec.cache_validator or duration_only
    for state in sched.cache.get(cache_key(sched, unit)):
        try:
            if validator(state, dict(inputs), dict(sched.parameters)):
                return state
        except Exception as exc:
            _log.error("cache validator raised; treated as a miss", exc_info=exc)
    return None
