"""The scheduler: runs the tasks of one flow run on a ready queue.

A task becomes ready when its last upstream task finishes (dependency counters, no level-by-level
barriers). Ready tasks are pulled by *worker* coroutines, started on demand inside the run's task
group: a worker that takes a task while more are waiting starts one helper, so a chain of tasks
runs on a single worker with no spawn at all and a thousand tasks blocked on I/O fan out one
spawn per loop iteration. This keeps ``start_soon`` (about 20 µs) off the per-task path.

Retries wait on a timer child task on the run's clock: no thread and no worker is held while
waiting. With a fake clock, when every unfinished task is waiting on a timer, the scheduler
moves the clock to the next deadline, so a ten-minute retry finishes at once.

Every transition goes through one function, :meth:`Scheduler.transition`: state handlers, record,
publish.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._log import get_logger
from ..context import TaskScope, _current
from ..events import StateChange
from ..states import (
    Cancelled,
    Failed,
    Looped,
    Paused,
    Resume,
    Retrying,
    State,
)
from . import pipeline
from .handlers import call_handlers
from .task_run import run_attempt

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from anyio.abc import TaskGroup

    from ..bus import RunChannel
    from ..clock import Clock
    from .executors import Executor
    from .spec import FlowSpec, TaskSpec

__all__ = ("Scheduler",)

_log = get_logger("asyncflow.engine")
_std_log = logging.getLogger("asyncflow.engine")


class Scheduler:
    """Runs the tasks of one flow run. Created and driven by :class:`FlowRun`."""

    def __init__(
        self,
        spec: FlowSpec,
        *,
        run_id: str,
        states: list[State],
        parameters: Mapping[str, Any],
        clock: Clock,
        executor: Executor,
        channel: RunChannel,
        record: Callable[[StateChange], None] | None,
        wait_for_resume: bool,
        max_concurrency: int | None,
        tag_limits: Mapping[str, anyio.CapacityLimiter],
        context: Mapping[str, Any],
    ) -> None:
        self.spec = spec
        self.specs = spec.tasks
        self.run_id = run_id
        self.states = states
        self.parameters = parameters
        self.clock = clock
        self.executor = executor
        self.channel = channel
        self.record = record
        self.wait_for_resume = wait_for_resume
        self.limit = max_concurrency if max_concurrency is not None else 1 << 62
        self.tag_limits = tag_limits
        self.context = context
        self.seq = 0
        self.run_counts = [0] * len(self.specs)
        self.remaining = [ts.n_upstream for ts in self.specs]
        self.done = [False] * len(self.specs)
        self.n_done = 0
        self.ready: deque[int] = deque()
        self.paused: set[int] = set()
        self.resumes: set[int] = set()
        self.loops: dict[int, tuple[int, Any]] = {}
        self.workers = 0
        self.busy = 0
        self.timers = 0
        self.sleeping = 0
        self.spawn_pending = False
        self.wake: anyio.Event | None = None
        self.tg: TaskGroup | None = None
        self.cancelled_exc = anyio.get_cancelled_exc_class()
        self.debug = _std_log.isEnabledFor(logging.DEBUG)

    # -- transitions ------------------------------------------------------------------------

    async def transition(self, ts: TaskSpec, new: State) -> State:
        """Move task ``ts`` to ``new``: handlers, record, publish. Returns the settled state."""
        i = ts.index
        old = self.states[i]
        if ts.handlers:
            new = await call_handlers(ts.handlers, ts.task, old, new)
        self.states[i] = new
        await self.emit(ts.name, f"{self.run_id}/{ts.slug}", old, new, ts.task)
        if self.debug:
            _log.debug("task state", old=repr(old), new=repr(new))
        return new

    async def emit(
        self, task_name: str | None, task_run_id: str | None, old: State, new: State, subject: Any
    ) -> None:
        """Number the transition and hand it to the run's history and the bus."""
        self.seq += 1
        record, channel = self.record, self.channel
        if record is None and not channel.active:
            return  # nobody would see it: do not even build the event
        event = StateChange(
            self.run_id,
            self.seq,
            self.clock.now(),
            self.spec.name,
            task_name,
            task_run_id,
            None,
            old,
            new,
            subject,
        )
        if record is not None:
            record(event)
        blocked = channel.publish(event)
        if blocked:
            await channel.wait_room(blocked, event)

    # -- the ready queue --------------------------------------------------------------------

    def seed(self, injected: Mapping[int, State]) -> None:
        """Mark injected finished states done and queue the tasks with no upstream."""
        for i, state in injected.items():
            if state.is_finished():
                self.finish(i)
        for ts in self.specs:
            if self.remaining[ts.index] == 0 and not self.done[ts.index]:
                self.ready.append(ts.index)

    def finish(self, i: int) -> None:
        """Task ``i`` will not run again in this run: release its downstream tasks."""
        if self.done[i]:
            return
        self.done[i] = True
        self.n_done += 1
        remaining, ready = self.remaining, self.ready
        for d in self.specs[i].downstream:
            remaining[d] -= 1
            if remaining[d] == 0 and not self.done[d]:
                ready.append(d)
        if self.n_done == len(self.specs):
            self.poke()

    def spawn(self) -> None:
        assert self.tg is not None
        self.workers += 1
        self.spawn_pending = True
        self.tg.start_soon(self.worker)

    def ensure_worker(self) -> None:
        """Called after queueing from outside a worker (a timer, a resume)."""
        if self.ready and not self.spawn_pending and self.workers < self.limit:
            self.spawn()

    async def worker(self) -> None:
        self.spawn_pending = False
        ready = self.ready
        try:
            while ready:
                i = ready.popleft()
                if ready and not self.spawn_pending and self.workers < self.limit:
                    self.spawn()  # others are waiting: get help before this task may block
                self.busy += 1
                try:
                    await self.run_task(i)
                finally:
                    self.busy -= 1
        finally:
            self.workers -= 1
        if self.timers:
            self.maybe_jump()

    def poke(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def maybe_jump(self) -> None:
        """With a fake clock: if every unfinished task waits on a timer, wake the main loop."""
        if (
            self.clock.autojump
            and self.busy == 0
            and not self.ready
            and self.sleeping
            and self.sleeping == self.timers
        ):
            self.poke()

    async def run_tasks(self, injected: Mapping[int, State]) -> None:
        """Run every task to a final state (or until cancelled)."""
        n = len(self.specs)
        async with anyio.create_task_group() as tg:
            self.tg = tg
            self.seed(injected)
            self.ensure_worker()
            while self.n_done < n:
                self.wake = anyio.Event()
                await self.wake.wait()
                if self.n_done >= n:
                    break
                # Let everything that just woke settle before deciding the run is idle.
                await anyio.lowlevel.checkpoint()
                if self.busy == 0 and not self.ready and self.sleeping == self.timers:
                    deadline = self.clock.next_deadline()
                    if deadline is not None:
                        self.clock.jump_to(deadline)
        self.wake = None

    # -- one task ---------------------------------------------------------------------------

    async def run_task(self, i: int) -> None:
        ts = self.specs[i]
        local: dict[str, Any] = {
            "task_name": ts.name,
            "task_slug": ts.slug,
            "task_full_name": ts.name,
            "task_run_id": f"{self.run_id}/{ts.slug}",
            "task_tags": ts.tags,
            "task_run_count": self.run_counts[i] + 1,
            "map_index": None,
        }
        token = _current.set(TaskScope(local, self.context))
        try:
            await self.drive(ts, local)
        except self.cancelled_exc:
            # Record the cancellation even though the run is being torn down.
            with anyio.CancelScope(shield=True):
                if not self.states[i].is_finished():
                    await self.transition(ts, Cancelled("Task run was cancelled."))
            raise
        finally:
            _current.reset(token)

    async def drive(self, ts: TaskSpec, local: dict[str, Any]) -> None:
        i = ts.index
        states = self.states
        resumed = i in self.resumes
        if resumed:
            self.resumes.discard(i)
            settled = await self.transition(ts, Resume("Resuming task run."))
            if not isinstance(settled, Resume):
                self.route(ts, settled)
                return
        if ts.upstream_edges:
            upstream = {
                e: states[j] for e, j in zip(ts.upstream_edges, ts.upstream_index, strict=True)
            }
            if not all(s.is_finished() for s in upstream.values()):
                # An upstream task is paused with nobody to resume it: stay as we are.
                self.finish(i)
                return
            decision = pipeline.check_upstream(
                ts, upstream, resumed=resumed or self.run_counts[i] > 0
            )
            if decision is not None:
                self.route(ts, await self.transition(ts, decision))
                return
            inputs = dict(ts.constants)
            for key, j in ts.keyed:
                inputs[key] = states[j].result
        else:
            inputs = ts.constants  # type: ignore[assignment]  # read-only from here on

        if ts.task_run_name is not None:
            try:
                tmpl = ts.task_run_name
                local["task_run_name"] = tmpl(**inputs) if callable(tmpl) else tmpl.format(**inputs)
            except Exception as exc:
                failed = Failed(f"Could not render task_run_name: {exc!r}", exc)
                self.route(ts, await self.transition(ts, failed))
                return

        if ts.tags and self.tag_limits:
            limiters = [self.tag_limits[t] for t in sorted(ts.tags) if t in self.tag_limits]
            for limiter in limiters:  # sorted: two tasks never wait on each other's tags
                await limiter.acquire()
            try:
                await self.attempts(ts, inputs, local)
            finally:
                for limiter in reversed(limiters):
                    limiter.release()
        else:
            await self.attempts(ts, inputs, local)

    async def attempts(
        self, ts: TaskSpec, inputs: Mapping[str, Any], local: dict[str, Any]
    ) -> None:
        i = ts.index
        loop_count, loop_result = self.loops.get(i, (1, None))
        if loop_count > 1:
            local["task_loop_count"] = loop_count
            local["task_loop_result"] = loop_result
        while True:
            run_count = self.run_counts[i] = self.run_counts[i] + 1
            local["task_run_count"] = run_count
            settled = await self.transition(ts, pipeline.RUNNING)
            if not settled.is_running():
                self.route(ts, settled)
                return
            if ts.parameter is not None:
                outcome: State = pipeline.success(self.parameters[ts.parameter])
            else:
                outcome = await run_attempt(ts, inputs, self.executor, self.clock)

            if isinstance(outcome, Looped):
                looped = Looped(
                    outcome.message or f"Looped (iteration {loop_count}).",
                    outcome.result,
                    loop_count=loop_count,
                )
                settled = await self.transition(ts, looped)
                if not isinstance(settled, Looped):
                    self.route(ts, settled)
                    return
                loop_count += 1
                self.loops[i] = (loop_count, settled.result)
                local["task_loop_count"] = loop_count
                local["task_loop_result"] = settled.result
                self.run_counts[i] = 0  # retries apply per iteration
                continue

            now = self.clock.now()
            if isinstance(outcome, Retrying):  # the RETRY signal
                retry: Retrying | None = None
                outcome = pipeline.signal_retry_state(ts, outcome, run_count, now)
            else:
                retry = pipeline.retry_state(ts, outcome, run_count, now)
            settled = await self.transition(ts, outcome)
            if retry is not None and settled.is_failed():
                _log.info(
                    "task run failed; retrying",
                    state=repr(settled),
                    start_time=str(retry.start_time),
                )
                settled = await self.transition(ts, retry)
            self.route(ts, settled)
            return

    def route(self, ts: TaskSpec, state: State) -> None:
        """Act on the state a task run settled in: finish it, retry it later, or park it."""
        i = ts.index
        if isinstance(state, Retrying):
            start = state.start_time
            when = start.timestamp() if start is not None else self.clock.now()
            self.timers += 1
            assert self.tg is not None
            self.tg.start_soon(self.retry_later, i, when)
            return
        if isinstance(state, Paused) and self.wait_for_resume:
            self.paused.add(i)
            return
        if isinstance(state, Failed) and isinstance(state.result, Exception):
            # Signals are BaseExceptions, so only real errors are logged with a traceback.
            _log.error("task run failed", state=repr(state), exc_info=state.result)
        self.finish(i)

    async def retry_later(self, i: int, when: float) -> None:
        self.sleeping += 1
        try:
            self.maybe_jump()
            await self.clock.sleep_until(when)
        finally:
            self.sleeping -= 1
            self.timers -= 1
        self.ready.append(i)
        self.ensure_worker()

    def resume(self, i: int) -> None:
        """Queue paused task ``i`` to run again (its trigger is not consulted)."""
        self.paused.discard(i)
        self.resumes.add(i)
        self.ready.append(i)
        if self.tg is not None:
            self.ensure_worker()

    # -- the end ----------------------------------------------------------------------------

    async def cancel_unfinished(self, message: str) -> None:
        """Move every task that is not finished to ``Cancelled`` (call shielded)."""
        for ts in self.specs:
            state = self.states[ts.index]
            if not state.is_finished():
                token = _current.set(TaskScope({"task_name": ts.name}, self.context))
                try:
                    await self.transition(ts, Cancelled(message))
                finally:
                    _current.reset(token)
