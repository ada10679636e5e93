"""The scheduler: runs the task runs of one flow run on a ready queue.

A task becomes ready when its last upstream task finishes (dependency counters, no level-by-level
barriers). Ready units (a task, or one mapped child) are pulled by *worker* coroutines, started on
demand inside the run's task group: a worker that takes a unit while more are waiting starts one
helper, so a chain of tasks runs on a single worker with no spawn at all and a thousand tasks
blocked on I/O fan out one spawn per loop iteration. This keeps ``start_soon`` (about 20 µs) off
the per-task path.

Retries wait in one heap per run, drained by a single timer coroutine on the run's clock: no
thread, no worker and no task per retry is held while waiting. With a fake clock, when every
unfinished task is waiting on a timer, the scheduler moves the clock to the next deadline, so a
ten-minute retry finishes at once.

Every transition goes through one function, :meth:`Scheduler.transition`: state handlers, record,
publish.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._log import TASK_RUNNER, get_logger
from ..context import TaskScope, _current
from ..events import StateChange
from ..states import (
    Cancelled,
    Failed,
    Paused,
    Resume,
    Retrying,
    State,
)
from ..store.result import StoreResult
from .checkpoints import plan
from .handlers import FINAL_HANDLERS_TIMEOUT, call_handlers
from .mapping import STREAM_WINDOW, MapRun, run_parent
from .task_run import drive

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from anyio.abc import TaskGroup

    from .._delivery import RunChannel
    from ..caching import CacheStore
    from ..clock import Clock
    from ..store.base import Journal
    from .checkpoints import Checkpoints
    from .executors import Executor
    from .spec import FlowSpec
    from .units import Unit

__all__ = ("Scheduler",)

_log = get_logger("asyncflow.engine")
_std_log = logging.getLogger("asyncflow.engine")
_runner_log = get_logger(TASK_RUNNER)
_std_runner_log = logging.getLogger(TASK_RUNNER)


class Scheduler:
    """Runs the tasks of one flow run. Created and driven by :class:`FlowRun`."""

    def __init__(
        self,
        spec: FlowSpec,
        *,
        run_id: str,
        units: list[Unit],
        parameters: Mapping[str, Any],
        clock: Clock,
        executors: list[Executor],
        channel: RunChannel,
        record: Callable[[StateChange], None] | None,
        wait_for_resume: bool,
        max_concurrency: int | None,
        tag_limits: Mapping[str, anyio.CapacityLimiter],
        context: Mapping[str, Any],
        cache: CacheStore,
        checkpoints: Checkpoints | None = None,
        journal: Journal | None = None,
        restored: dict[str, State] | None = None,
        seq: int = 0,
    ) -> None:
        self.spec = spec
        self.specs = spec.tasks
        self.run_id = run_id
        self.units = units
        self.parameters = parameters
        self.clock = clock
        self.executors = executors  # one per task
        # Which tasks hand their code to an executor (a thread, a process, Dask) rather than
        # awaiting it on the loop, and how many such calls are in flight per executor.
        self.offloaded = [
            ts.parameter is None and not (ts.is_async and ex.runs_async_inline)
            for ts, ex in zip(spec.tasks, executors, strict=True)
        ]
        self.inflight: dict[Executor, int] = dict.fromkeys(executors, 0)
        self.channel = channel
        self.record = record
        self.wait_for_resume = wait_for_resume
        self.limit = max_concurrency if max_concurrency is not None else 1 << 62
        self.tag_limits = tag_limits
        self.context = context
        self.cache = cache
        # The checkpoint hook, and for which tasks to ask it (before running, after success).
        self.checkpoints = checkpoints
        self.lookups, self.saves = plan(checkpoints, spec)
        self.seq = seq
        # Durable runs: events go to the store's journal; a unit's downstream tasks are released
        # only once its final state is committed (``deferred`` holds them until then); units
        # whose state was journaled by an earlier attempt of the run come back ``restored``.
        self.journal = journal
        self.restored = restored or None
        self.deferred: deque[Unit] = deque()
        self.deferred_seq: deque[int] = deque()  # the seq each deferred unit waits for
        self.parked: anyio.Event | None = None
        self.pushing = False  # a worker is handing the journal to the store (see worker())
        if journal is not None:
            journal.on_commit = self.on_commit
        self.remaining = [ts.n_upstream for ts in self.specs]
        self.n_done = 0
        self.ready: deque[Unit] = deque()
        self.paused: set[Unit] = set()
        self.workers = 0
        self.busy = 0
        # Retry timers: one heap per run, drained by one timer coroutine (not a task per retry).
        self.timers: list[tuple[float, int, Unit]] = []
        self.timer_seq = itertools.count()
        self.timer_running = False
        self.timer_asleep = False  # the timer coroutine is waiting on the clock
        self.timer_target: float | None = None
        self.timer_scope: anyio.CancelScope | None = None
        self.spawn_pending = False
        self.wake: anyio.Event | None = None
        self.tg: TaskGroup | None = None
        self.interrupted: BaseException | None = None  # a KeyboardInterrupt from task code
        self.cancelled_exc = anyio.get_cancelled_exc_class()
        self.debug = _std_log.isEnabledFor(logging.DEBUG)
        # Prefect 1.x's per-task lines: decided once per run, so that they cost nothing when off.
        self.task_lines = _std_runner_log.isEnabledFor(logging.INFO)

    # -- transitions ------------------------------------------------------------------------

    async def transition(self, unit: Unit, new: State, *, final: bool = False) -> State:
        """Move ``unit`` to ``new``: handlers, record, publish. Returns the settled state.

        ``final``: a last transition of a cancelled run (its async handlers are bounded).
        """
        ts = unit.spec
        old = unit.state
        if ts.handlers:
            new = await call_handlers(
                ts.handlers,
                ts.task,
                old,
                new,
                functools.partial(self.settle_cancelled, unit, old),
                FINAL_HANDLERS_TIMEOUT if final else None,
            )
        # What settle() does, inlined: this is the per-transition hot path.
        unit.state = new
        # With a store, a value checkpointed into it is written with this very event.
        checkpoint = self.journal is not None and isinstance(new.checkpoint, StoreResult)
        await self.emit(ts.name, unit.run_id, unit.map_index, old, new, ts.task, checkpoint)
        if self.debug:
            _log.debug("task state", old=repr(old), new=repr(new))
        return new

    async def settle_cancelled(self, unit: Unit, old: State, new: State) -> None:
        """:meth:`settle`, called shielded as a cancellation interrupts the handlers."""
        self.channel.stopping = True  # shielded: never wait for room in a stuck subscriber
        await self.settle(unit, old, new)

    async def settle(self, unit: Unit, old: State, new: State) -> None:
        """Record ``new`` as ``unit``'s state and publish the transition."""
        ts = unit.spec
        unit.state = new
        await self.emit(ts.name, unit.run_id, unit.map_index, old, new, ts.task)
        if self.debug:
            _log.debug("task state", old=repr(old), new=repr(new))

    async def emit(
        self,
        task_name: str | None,
        task_run_id: str | None,
        map_index: int | None,
        old: State,
        new: State,
        subject: Any,
        checkpoint: bool = False,
    ) -> None:
        """Number the transition and hand it to the run's journal, history and the bus."""
        self.seq += 1
        record, channel, journal = self.record, self.channel, self.journal
        watched = record is not None or channel.active
        if journal is None and not watched:
            return  # nobody would see it: do not even build the event
        now = self.clock.now()
        if journal is not None:
            journal.append(self.seq, now, task_name, task_run_id, map_index, old, new, checkpoint)
            if not watched:
                return  # the journal has it; no event object is needed
        event = StateChange(
            self.run_id,
            self.seq,
            now,
            self.spec.name,
            task_name,
            task_run_id,
            map_index,
            old,
            new,
            subject,
        )
        if record is not None:
            record(event)
        blocked = channel.publish(event)
        if blocked:
            await channel.wait_room(blocked)

    # -- the ready queue --------------------------------------------------------------------

    def seed(self, injected: Mapping[int, State]) -> None:
        """Mark injected finished states done and queue the tasks with no upstream.

        As in Prefect 1.x, a task given ``Resume`` runs without asking its trigger, and one
        given ``Paused`` stays paused (a started run can resume it).
        """
        units, remaining = self.units, self.remaining
        known = [units[i] for i, state in injected.items() if state.is_finished()]
        held = set()
        for i, state in injected.items():
            if isinstance(state, Resume):
                units[i].resumed = True
            elif isinstance(state, Paused):
                held.add(units[i])
                if self.wait_for_resume:
                    self.paused.add(units[i])
                else:
                    known.append(units[i])
        roots = [u for u in units if remaining[u.spec.index] == 0 and u not in held]
        for unit in known:
            unit.done = True  # first all of them: none of them is queued by another's release
        for unit in known:
            unit.done = False
            self.finish(unit)  # releases its downstream tasks (queues those now ready)
        self.ready.extend(unit for unit in roots if not unit.done)

    def release(self, downstream: tuple[int, ...]) -> None:
        remaining, ready, units = self.remaining, self.ready, self.units
        for d in downstream:
            remaining[d] -= 1
            if remaining[d] == 0 and not units[d].done:
                ready.append(units[d])

    def finish(self, unit: Unit) -> None:
        """``unit`` will not run again in this run: release what waits for it."""
        if unit.done:
            return
        journal = self.journal
        ts = unit.spec
        parent = unit.parent
        if (
            journal is not None
            and journal.pending
            and (ts.downstream or ts.index_downstream or parent is not None)
        ):
            # Its final state is not committed yet: release its downstream tasks after. (A
            # task nothing waits for is done now: the run commits everything before it ends.)
            self.deferred.append(unit)
            self.deferred_seq.append(journal.appended)
            return
        unit.done = True
        if parent is not None:
            self.child_done(parent, unit)
            return
        self.release(ts.downstream)
        if unit.mapping is None and ts.index_downstream:
            self.release(ts.index_downstream)  # never expanded: release them now
        self.n_done += 1
        if self.n_done == len(self.units):
            self.poke()

    def on_commit(self) -> None:
        """The journal committed more events: release the units that waited for it."""
        assert self.journal is not None
        committed, deferred, seqs = self.journal.committed, self.deferred, self.deferred_seq
        while seqs and seqs[0] <= committed:
            seqs.popleft()
            self.finish(deferred.popleft())
        if self.parked is not None:
            self.parked.set()
            self.parked = None
        elif self.tg is not None and not self.pushing:
            self.ensure_worker()

    def child_done(self, m: MapRun, child: Unit) -> None:
        m.n_done += 1
        i = child.map_index
        assert i is not None
        for dependent in m.dependents:
            if i < len(dependent.children):
                c = dependent.children[i]
                c.pending -= 1
                if c.pending == 0:
                    self.ready.append(c)
        if m.room is not None and m.unfinished() < STREAM_WINDOW:
            m.room.set()
            m.room = None
        self.check_complete(m)

    def check_complete(self, m: MapRun) -> None:
        parent = m.parent
        if m.complete() and not parent.finalizing:
            parent.finalizing = True
            self.ready.append(parent)

    def grow(self, m: MapRun) -> None:
        """Create the children of ``m`` that its sources allow, then those of its dependents."""
        self.ready.extend(m.grow())
        for dependent in m.dependents:
            self.grow(dependent)
        self.check_complete(m)

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
        pushed = False  # this worker handed the journal to the store since its last unit
        try:
            while (ready or (self.deferred and self.parked is None)) and self.interrupted is None:
                if not ready:
                    # Durable: what this worker just finished waits for its commit. Nothing
                    # else is ready: hand the journal to the store now (a store that commits
                    # at once releases the downstream tasks here), or wait here rather than
                    # end and have a new worker spawned for them.
                    if not pushed:
                        pushed = self.pushing = True
                        try:
                            assert self.journal is not None
                            self.journal.push()
                        finally:
                            self.pushing = False
                        continue
                    self.parked = anyio.Event()
                    await self.parked.wait()
                    continue
                pushed = False
                unit = ready.popleft()
                if (
                    ready
                    and not self.spawn_pending
                    and self.workers < self.limit
                    and not self.would_wait(ready[0])
                ):
                    self.spawn()  # others are waiting: get help before this unit may block
                self.busy += 1
                try:
                    await self.run_unit(unit)
                finally:
                    self.busy -= 1
        finally:
            self.workers -= 1
        if self.timers:
            self.maybe_jump()

    def would_wait(self, unit: Unit) -> bool:
        """Whether ``unit`` would only queue for its executor (every thread/slot is busy).

        Then no helper worker is started for it: a worker whose call returns takes it. This
        keeps ten thousand sync tasks from spawning ten thousand workers that wait on 40
        threads.
        """
        i = unit.spec.index
        if not self.offloaded[i] or (unit.spec.mapped and unit.map_index is None):
            return False
        executor = self.executors[i]
        capacity = executor.capacity
        return capacity is not None and self.inflight[executor] >= capacity

    def poke(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def idle_on_timers(self) -> bool:
        """Whether nothing runs or waits to run, and retries wait on the clock."""
        return (
            self.busy == 0
            and not self.ready
            and not self.deferred
            and bool(self.timers)
            and self.timer_asleep
        )

    def maybe_jump(self) -> None:
        """With a fake clock: if every unfinished task waits on a timer, wake the main loop."""
        if self.clock.autojump and self.idle_on_timers():
            self.poke()

    async def run_tasks(self, injected: Mapping[int, State]) -> None:
        """Run every task to a final state (or until cancelled)."""
        n = len(self.units)
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
                if self.idle_on_timers():
                    deadline = self.clock.next_deadline()
                    if deadline is not None:
                        self.clock.jump_to(deadline)
        self.wake = None

    # -- one unit ---------------------------------------------------------------------------

    async def run_unit(self, unit: Unit) -> None:
        restored = self.restored
        if restored is not None and unit.run_id in restored:
            # Journaled by an earlier attempt of this run: it keeps its state and result.
            state = unit.state = restored.pop(unit.run_id)
            self.route(unit, state)
            return
        ts = unit.spec
        local: dict[str, Any] = {
            "task_name": ts.name,
            "task_slug": ts.slug,
            "task_full_name": ts.name if unit.map_index is None else f"{ts.name}[{unit.map_index}]",
            "task_run_id": unit.run_id,
            "task_tags": ts.tags,
            "task_run_count": unit.run_count + 1,
            "map_index": unit.map_index,
            "task_loop_count": 1,
        }
        if unit.resumed:
            local["resume"] = True  # task code may check it before raising PAUSE again
        token = _current.set(TaskScope(local, self.context))
        # A mapped parent passes here twice: to expand, and to take its children's states in.
        # As in Prefect 1.x, its run is the first pass (it ends Mapped, then children run).
        lines = self.task_lines and unit.mapping is None
        if lines:
            _runner_log.info(f"Task '{local['task_full_name']}': Starting task run...")
        try:
            if ts.mapped and unit.map_index is None:
                await run_parent(self, unit)
            else:
                await drive(self, unit, local)
        except self.cancelled_exc:
            # Record the cancellation even though the run is being torn down.
            self.channel.stopping = True
            with anyio.CancelScope(shield=True):
                if not unit.state.is_finished():
                    await self.transition(unit, Cancelled("Task run was cancelled."), final=True)
            if lines:
                self.log_finished(unit, local)
            raise
        else:
            if lines:
                self.log_finished(unit, local)
        finally:
            _current.reset(token)

    def log_finished(self, unit: Unit, local: Mapping[str, Any]) -> None:
        if not unit.state.is_running():
            _runner_log.info(
                f"Task '{local['task_full_name']}': Finished task run for task with final "
                f"state: '{type(unit.state).__name__}'"
            )

    def route(self, unit: Unit, state: State) -> None:
        """Act on the state a unit settled in: finish it, retry or resume it, or park it."""
        if isinstance(state, Retrying | Resume) or (
            isinstance(state, Paused) and state.start_time is not None
        ):
            # A retry asks its trigger again (``manual_only`` pauses again, as in 1.x); a
            # Resume (e.g. from a state handler), or a pause until a time, runs without it.
            unit.resumed = not isinstance(state, Retrying)
            self.park(unit, self.due(state))
            return
        if isinstance(state, Paused) and self.wait_for_resume:
            self.paused.add(unit)
            return
        if isinstance(state, Failed) and isinstance(state.result, Exception):
            # Signals are BaseExceptions, so only real errors are logged with a traceback.
            _log.error("task run failed", state=repr(state), exc_info=state.result)
        self.finish(unit)

    def park(self, unit: Unit, when: float) -> None:
        """Queue ``unit`` again at ``when``, a monotonic deadline on the run's clock."""
        heapq.heappush(self.timers, (when, next(self.timer_seq), unit))
        if not self.timer_running:
            self.timer_running = True
            assert self.tg is not None
            self.tg.start_soon(self.timer_loop)
        elif self.timer_scope is not None and (
            self.timer_target is None or when < self.timer_target
        ):
            self.timer_scope.cancel()  # an earlier deadline: the timer re-arms

    def due(self, state: Retrying | Resume | Paused) -> float:
        """When a ``Retrying``, ``Resume`` or timed ``Paused`` state is due: a monotonic
        deadline on the run's clock (its wall-clock ``start_time`` only says how long from
        now), so that a step of the wall clock while it waits neither delays nor hurries it."""
        clock, start = self.clock, state.start_time
        if start is None:
            return clock.monotonic()
        if isinstance(state, Retrying):
            delay = start.timestamp() - clock.now()  # the engine wrote it from the run's clock
        else:
            # A Resume or Paused made by user code is dated by the wall clock: keep only its
            # delay.
            delay = (start - datetime.now(UTC)).total_seconds()
        return clock.monotonic() + max(0.0, delay)

    async def timer_loop(self) -> None:
        """Sleep until the earliest retry is due, queue every due unit, repeat while any wait.

        Waiting retries hold no thread and no worker: only this one coroutine, on the clock.
        """
        heap = self.timers
        try:
            while heap:
                self.timer_target = heap[0][0]
                with anyio.CancelScope() as scope:
                    self.timer_scope = scope
                    self.timer_asleep = True
                    self.maybe_jump()
                    try:
                        clock = self.clock
                        await clock.sleep_until(clock.now() + self.timer_target - clock.monotonic())
                    finally:
                        self.timer_asleep = False
                        self.timer_scope = None
                now = self.clock.monotonic()
                while heap and heap[0][0] <= now:
                    self.ready.append(heapq.heappop(heap)[2])
                self.ensure_worker()
        finally:
            self.timer_running = False
            self.timer_target = None

    def interrupt(self, exc: BaseException) -> None:
        """Task code raised ``KeyboardInterrupt`` (or ``SystemExit``): stop every task.

        The run then ends ``Cancelled`` with every state recorded, and :class:`FlowRun`
        raises ``exc`` to its caller.
        """
        if self.interrupted is None:
            self.interrupted = exc
        self.channel.stopping = True
        assert self.tg is not None
        self.tg.cancel_scope.cancel()

    def resume(self, unit: Unit) -> None:
        """Queue paused ``unit`` to run again (its trigger is not consulted)."""
        self.paused.discard(unit)
        unit.resumed = True
        self.ready.append(unit)
        if self.tg is not None:
            self.ensure_worker()

    # -- the end ----------------------------------------------------------------------------

    def all_units(self) -> list[Unit]:
        """Every unit of the run, mapped children included (parents before children)."""
        out: list[Unit] = []
        for unit in self.units:
            out.append(unit)
            if unit.mapping is not None:
                out.extend(unit.mapping.children)
        return out

    async def cancel_unfinished(self, message: str) -> None:
        """Move every unit that is not finished to ``Cancelled`` (call shielded)."""
        for unit in self.all_units():
            if not unit.state.is_finished():
                local = {"task_name": unit.spec.name, "map_index": unit.map_index}
                token = _current.set(TaskScope(local, self.context))
                try:
                    await self.transition(unit, Cancelled(message), final=True)
                finally:
                    _current.reset(token)
