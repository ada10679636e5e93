"""``FlowRun``: one run of a flow, and the handle users hold on it.

``await flow.run_async()`` drives a FlowRun to its end in the caller's task; ``async with
flow.start() as run`` drives it in the background and hands over the run so the caller can watch
(``run.state``, ``run.task_states``, ``run.events()``), wait, cancel or resume paused tasks.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import uuid
from collections import deque
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import attrs

from .._log import FLOW_RUNNER, get_logger
from .._logsetup import ensure_logging
from ..bus import EventBus, default_bus
from ..caching import CacheStore, default_cache
from ..clock import SYSTEM_CLOCK, Clock
from ..context import _current, layered
from ..exceptions import ExecutorError, RunStateError
from ..states import Cancelled, Failed, Paused, Pending, Running, Scheduled, State, TimedOut
from ..store.base import process_owner
from . import pipeline
from .checkpoints import Checkpoints, ResultCheckpoints
from .durable import StoreCheckpoints, open_run
from .executors import Executor, default_executor
from .handlers import FINAL_HANDLERS_TIMEOUT, call_handlers, handler_failure
from .scheduler import Scheduler
from .units import Unit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from ..events import StateChange
    from ..store.base import Journal, Store, StoreError
    from ..task import Task
    from .spec import FlowSpec, TaskSpec

__all__ = ("FlowRun", "RunOptions", "finished_line")


class RunOptions(TypedDict, total=False):
    """The keyword options shared by ``Flow.run``, ``run_async`` and ``start``."""

    task_states: Mapping[Task, State]
    state: State
    context: Mapping[str, Any]
    executor: Executor
    executors: Mapping[str, Executor]
    bus: EventBus
    run_id: str
    clock: Clock
    timeout: float | timedelta
    max_concurrency: int
    tag_limits: Mapping[str, int]
    cache: CacheStore
    checkpoints: Checkpoints
    store: Store
    resume: str
    owner: str
    lease: float


_log = get_logger(FLOW_RUNNER)
_task_logger = get_logger("asyncflow.task")
# Prefect 1.x's closing lines for the flow states its pipeline decides.
_FINISHED_LINES = {
    "All reference tasks succeeded.": "Flow run SUCCESS: all reference tasks succeeded",
    "Some reference tasks failed.": "Flow run FAILED: some reference tasks failed.",
    "No reference tasks failed.": "Flow run SUCCESS: no reference tasks failed",
}


def finished_line(state: State) -> str:
    """The line logged when a flow run ends: Prefect 1.x's text, or one in its form."""
    line = _FINISHED_LINES.get(state.message or "")
    return line or f"Flow run {type(state).__name__.upper()}: {state.message}"


class FlowRun:
    """One run of a flow.

    Attributes:
        id: the run's id (``flow_run_id`` in context and events).
        flow: the flow being run.
        state: the flow run's current state.
    """

    def __init__(
        self,
        spec: FlowSpec,
        *,
        parameters: Mapping[str, Any],
        task_states: Mapping[int, State],
        executor: Executor | None,
        executors: Mapping[str, Executor] | None,
        bus: EventBus | None,
        run_id: str | None,
        clock: Clock | None,
        timeout: float | None,
        max_concurrency: int | None,
        tag_limits: Mapping[str, int] | None,
        keep_history: bool,
        wait_for_resume: bool,
        cache: CacheStore | None = None,
        checkpoints: Checkpoints | None = None,
        store: Store | None = None,
        resume: bool = False,
        owner: str | None = None,
        lease: float | None = None,
        state: State | None = None,
        context: Mapping[str, Any] | None = None,
        end_paused: bool = False,
        scheduled_start_time: datetime | None = None,
        max_events: int | None = None,
    ) -> None:
        ensure_logging()  # a bad ASYNCFLOW_LOG_* value is refused before anything starts
        self.spec = spec
        self.flow: Any = spec.subject
        self.id = run_id if run_id is not None else uuid.uuid4().hex
        self.clock = clock if clock is not None else SYSTEM_CLOCK
        self.state: State = (
            state
            if state is not None
            else Scheduled(start_time=datetime.fromtimestamp(self.clock.now(), UTC))
        )
        self._given_context = dict(context or {})
        self._given_state = state is not None  # state= (as in 1.x) rather than a fresh run
        # The sync front door: nothing can resume a task left paused, so the run must end.
        self._end_paused = end_paused
        self.parameters = dict(parameters)
        self.bus = bus if bus is not None else default_bus()
        self.executor = executor or spec.executor or default_executor()
        self.task_executors = [self._executor_for(ts, executors or {}) for ts in spec.tasks]
        self.timeout = timeout
        self.cache = cache if cache is not None else default_cache()
        # Persisted values (results, targets; a run store plugs in its own hook here).
        if checkpoints is None and spec.persists:
            checkpoints = ResultCheckpoints()
        if store is not None:
            checkpoints = StoreCheckpoints(store, checkpoints or ResultCheckpoints())
        self.checkpoints = checkpoints
        self.scheduled_start_time = scheduled_start_time  # set for runs started by a schedule
        self.max_concurrency = max_concurrency
        self.tag_limits = dict(tag_limits or {})
        self._injected = dict(task_states)
        self._units = [Unit(ts, Pending(), f"{self.id}/{ts.slug}") for ts in spec.tasks]
        for i, state in self._injected.items():
            unit = self._units[i]
            unit.state = state
            if isinstance(state, Scheduled) and state.start_time is not None:
                unit.not_before = state.start_time  # as in 1.x: it runs once that time came
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events!r}")
        self.max_events = max_events
        # The events kept for run.events(): the last max_events of them (all when None), and
        # any a reader that is following the run has not taken yet.
        self._history: deque[StateChange] | None = deque() if keep_history else None
        self._history_total = 0  # events recorded so far, including those no longer kept
        self._readers: list[list[int]] = []  # each live reader's position, as a 1-item list
        self._history_wait: anyio.Event | None = None
        self._wait_for_resume = wait_for_resume
        self._scheduler: Scheduler | None = None
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False
        self._timed_out = False
        self._started = False
        self._finished = False
        self._done = anyio.Event()
        self.store = store
        self._resume = resume
        self._owner = owner
        self._lease = lease
        self.journal: Journal | None = None
        self._restored: dict[str, State] = {}
        self._seq = 0
        self._store_error: StoreError | None = None

    def __repr__(self) -> str:
        return f"<FlowRun {self.id} of {self.flow!r}: {self.state!r}>"

    # -- what users read --------------------------------------------------------------------

    @property
    def task_states(self) -> dict[Task, State]:
        """Every task of the flow with its state now."""
        return {unit.spec.task: unit.state for unit in self._units}

    @property
    def done(self) -> bool:
        """Whether the run has ended."""
        return self._finished

    async def wait(self) -> State:
        """Wait for the run to end; return the flow's final state."""
        await self._done.wait()
        return self.state

    async def events(self) -> AsyncIterator[StateChange]:
        """Every event of this run from ``seq`` 1, then live ones until the run ends.

        A run started with ``max_events=N`` keeps only its last ``N`` events, and those a
        reader following the run has not taken yet: a reader that starts late goes on from
        the oldest event kept; one that keeps reading misses nothing.
        """
        history = self._history
        if history is None:
            raise RunStateError("this run keeps no event history; start it with flow.start()")
        pos = [0]  # position over the whole run
        self._readers.append(pos)
        try:
            while True:
                total = self._history_total
                if pos[0] < total:
                    first = total - len(history)  # position of history[0]
                    i = max(pos[0], first)
                    event = history[i - first]
                    pos[0] = i + 1
                    yield event
                    continue
                if self._finished:
                    return
                if self._history_wait is None:
                    self._history_wait = anyio.Event()
                await self._history_wait.wait()
        finally:
            self._readers.remove(pos)

    def cancel(self) -> None:
        """Cancel the run: running tasks end ``Cancelled``, then the flow does."""
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    def detach(self) -> None:
        """Stop the run and leave it unfinished in its store, for another runtime to resume.

        Its running tasks are cancelled, and none of that is journaled: the store keeps the
        run as it was (a run without a store is simply cancelled).
        """
        if self.journal is not None:
            self.journal.detach()
        self.cancel()

    def resume(self, task: Task | str, map_index: int | None = None) -> None:
        """Let a ``Paused`` task (or one mapped child) run; it does not consult its trigger again.

        Args:
            task: the task, or its slug or name.
            map_index: the child to resume, for a mapped task.

        Raises:
            ValueError: the task is not part of this flow, or has no such child.
            RunStateError: the task (or child) is not paused.
        """
        unit = self._units[self._index_of(task)]
        if map_index is not None:
            children = unit.mapping.children if unit.mapping is not None else []
            if not 0 <= map_index < len(children):
                raise ValueError(f"{unit.spec.task!r} has no mapped child {map_index}")
            unit = children[map_index]
        sched = self._scheduler
        if isinstance(self._restored.get(unit.run_id), Paused):
            # Paused before a restart and not reached again yet: it runs once it is reached.
            del self._restored[unit.run_id]
            unit.resumed = True
            return
        if sched is None or unit not in sched.paused:
            where = "" if map_index is None else f" child {map_index}"
            raise RunStateError(
                f"{unit.spec.task!r}{where} is not paused (its state is {unit.state!r})"
            )
        sched.resume(unit)

    def _index_of(self, task: Task | str) -> int:
        if isinstance(task, str):
            for ts in self.spec.tasks:
                if task in (ts.slug, ts.name):
                    return ts.index
        elif task in self.spec.by_task:
            return self.spec.by_task[task]
        raise ValueError(f"{task!r} is not a task of {self.flow!r}")

    def _record(self, event: StateChange) -> None:
        history = self._history
        assert history is not None
        history.append(event)
        self._history_total += 1
        limit = self.max_events
        if limit is not None and len(history) > limit:
            # Drop what is past the limit, but nothing a live reader has yet to take.
            keep_from = self._history_total - limit
            for reader in self._readers:
                keep_from = min(keep_from, reader[0])
            for _ in range(keep_from - (self._history_total - len(history))):
                history.popleft()
        if self._history_wait is not None:
            self._history_wait.set()
            self._history_wait = None

    # -- the run itself ---------------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        """The run's keys over the ``context=`` given to it, with Prefect 1.x's precedence."""
        given = self._given_context
        now = given.get("date")
        if isinstance(now, str):
            with contextlib.suppress(ValueError):
                now = datetime.fromisoformat(now)
        if not isinstance(now, datetime):
            now = datetime.fromtimestamp(self.clock.now(), UTC)
        day = timedelta(days=1)
        context = dict(given)
        context.update(
            flow_name=self.spec.name,
            flow_run_id=self.id,
            parameters={**(given.get("parameters") or {}), **self.parameters},
            logger=_task_logger,
            clock=self.clock,
            date=now,
        )
        # As in 1.x, these are defaults: a given ``today`` (or ``date``) wins.
        for key, value in (
            ("scheduled_start_time", self.scheduled_start_time or now),
            ("today", now.strftime("%Y-%m-%d")),
            ("today_nodash", now.strftime("%Y%m%d")),
            ("yesterday", (now - day).strftime("%Y-%m-%d")),
            ("yesterday_nodash", (now - day).strftime("%Y%m%d")),
            ("tomorrow", (now + day).strftime("%Y-%m-%d")),
            ("tomorrow_nodash", (now + day).strftime("%Y%m%d")),
        ):
            context.setdefault(key, value)
        return context

    async def _flow_transition(self, sched: Scheduler, new: State, *, final: bool = False) -> None:
        old = self.state
        if self.spec.handlers:
            new = await call_handlers(
                self.spec.handlers,
                self.flow,
                old,
                new,
                functools.partial(self._settle_cancelled, sched, old),
                FINAL_HANDLERS_TIMEOUT if final else None,
            )
        await self._settle(sched, old, new)

    async def _settle(self, sched: Scheduler, old: State, new: State) -> None:
        self.state = new
        await sched.emit(None, None, None, old, new, self.flow)

    async def _settle_cancelled(self, sched: Scheduler, old: State, new: State) -> None:
        sched.channel.stopping = True  # shielded: never wait for room in a stuck subscriber
        await self._settle(sched, old, new)

    async def execute(self) -> State:
        """Drive the run to its end in the calling task; return the final flow state."""
        if self._started:
            raise RunStateError(f"{self!r} was already started")
        self._started = True
        if self.store is not None:
            try:
                final = await self._open_store(self.store)
            except BaseException:
                self._end()
                raise
            if final is not None:  # resumed a run that had already succeeded
                self.state = final
                self._end()
                return final
        # The run's keys over the caller's (``with context(...): flow.run()``), as in 1.x.
        context = layered(self._context(), _current.get())
        token = _current.set(context)
        try:
            if self._given_state and self.state.is_finished():
                self._already_finished()
            else:
                async with anyio.create_task_group() as outer:
                    await self._run(outer, context)
        except BaseExceptionGroup as group:
            # The run's task group wraps what ended it (an executor that cannot start, an
            # engine error, an interrupt): hand the caller the exception itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            _current.reset(token)
            if self.journal is not None:
                await self._committed(failing=sys.exc_info()[1] is not None)
            self._end()
        interrupted = self._scheduler.interrupted if self._scheduler is not None else None
        if interrupted is not None:
            raise interrupted  # the final states are recorded: now the interrupt goes on
        return self.state

    async def _committed(self, failing: bool) -> None:
        """Wait until the whole run is committed (``run_async`` returns only then)."""
        journal = self.journal
        assert journal is not None
        with anyio.CancelScope(shield=True):
            try:
                await journal.flush()
            except Exception as exc:
                if not failing:
                    raise  # the run is not presented as complete: its caller gets the error
                _log.error("the run's journal could not be written", error=repr(exc))
            finally:
                # Nothing more will be committed: no cycle through the journal keeps the
                # run's objects alive until the garbage collector finds them.
                journal.on_commit = journal.on_error = None

    def _end(self) -> None:
        self._finished = True
        self._done.set()
        if self._history_wait is not None:
            self._history_wait.set()

    async def _open_store(self, store: Store) -> State | None:
        """Create the run in ``store`` or take it up again; the final state if nothing is
        left to run."""
        opened = await open_run(
            store,
            self.spec,
            self.id,
            self.parameters,
            resume=self._resume,
            owner=self._owner if self._owner is not None else process_owner(),
            lease=self._lease,
        )
        if opened.final is not None:
            return opened.final
        self.parameters = opened.parameters
        self.journal = opened.journal
        self.journal.on_error = self._store_failed
        self._seq = opened.seq
        self._restored = opened.restored
        if self._resume:
            self.state = opened.flow_state
            for unit in self._units:
                restored = opened.restored.get(unit.run_id)
                if restored is not None:
                    unit.state = restored
        return None

    def _store_failed(self, error: StoreError) -> None:
        """The journal could not be written: stop the run (``run_async`` raises ``error``)."""
        _log.error("the run's journal could not be written; cancelling the run", error=str(error))
        self._store_error = error
        self.cancel()

    def _already_finished(self) -> None:
        """Started in a finished state: as in Prefect 1.x, nothing runs and nothing is
        published; the state comes back with every task's known state (or ``Pending``)."""
        _log.info("flow run has already finished", state=repr(self.state))
        result = {
            unit.spec.task: unit.state if i in self._injected else Pending("Task not run.")
            for i, unit in enumerate(self._units)
        }
        self.state = attrs.evolve(self.state, result=result)

    async def _wait_for_start_time(self) -> None:
        """A flow run started ``Scheduled`` in the future waits for its start time."""
        start = self.state.start_time if isinstance(self.state, Scheduled) else None
        if start is None:
            return
        when = start.timestamp()
        if when <= self.clock.now():
            return
        _log.info("waiting for the scheduled start time", start_time=str(start))
        if self.clock.autojump:
            self.clock.jump_to(when)  # nothing else of this run can move a fake clock yet
        else:
            await self.clock.sleep_until(when)

    async def _run(self, outer: Any, context: Mapping[str, Any]) -> None:
        channel = self.bus.channel(outer)
        sched = self._scheduler = Scheduler(
            self.spec,
            run_id=self.id,
            units=self._units,
            parameters=self.parameters,
            clock=self.clock,
            executors=self.task_executors,
            channel=channel,
            record=self._record if self._history is not None else None,
            wait_for_resume=self._wait_for_resume,
            max_concurrency=self.max_concurrency,
            tag_limits={tag: anyio.CapacityLimiter(n) for tag, n in self.tag_limits.items()},
            context=context,
            cache=self.cache,
            checkpoints=self.checkpoints,
            journal=self.journal,
            restored=self._restored,
            seq=self._seq,
        )
        watcher = anyio.CancelScope()
        external = False
        crashed: BaseException | None = None
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:
                    scope.cancel()
                await self._wait_for_start_time()
                if self.timeout is not None:
                    outer.start_soon(
                        self._deadline, self.clock.now() + self.timeout, scope, watcher
                    )
                if not (self._given_state and self.state.is_running()):  # as 1.x: it goes on
                    await self._flow_transition(sched, Running("Running flow."))
                if self.state.is_running():
                    _log.info(
                        f"Beginning Flow run for '{self.spec.name}'", tasks=len(self.spec.tasks)
                    )
                    async with AsyncExitStack() as stack:
                        for executor in self._executors():
                            try:
                                await stack.enter_async_context(executor)
                            except Exception as exc:
                                raise ExecutorError(
                                    f"could not start {executor!r}: {exc!r}"
                                ) from exc
                        await sched.run_tasks(self._injected)
        except anyio.get_cancelled_exc_class():
            external = True
            raise
        except BaseException as exc:  # a bug in the engine (or an interrupt): end visibly
            crashed = exc
            while isinstance(crashed, BaseExceptionGroup) and len(crashed.exceptions) == 1:
                crashed = crashed.exceptions[0]  # name the error, not the task group
            raise
        finally:
            watcher.cancel()
            stopping = (
                external
                or scope.cancel_called
                or crashed is not None
                or sched.interrupted is not None
            )
            with anyio.CancelScope(shield=True):
                # Shielded, the last transitions must not wait for room in a subscriber's
                # buffer (a stuck one would hang them): they are queued past it, and the
                # drain below delivers them or gives up on the stuck subscriber.
                channel.stopping = True
                try:
                    await self._finish(sched, cancelled=stopping, crashed=crashed)
                except BaseException as exc:
                    self.state = Failed(f"Unexpected error in the engine: {exc!r}", exc)
                    stopping = True
                    raise
                finally:
                    # Whatever happened, the pumps are told to finish, so the run's task
                    # group can close: an engine error never turns into a hang.
                    channel.close()
                    if stopping:
                        await channel.grace()
            if not stopping:
                # Not shielded: a cancellation arriving now cuts the wait short (abandon()).
                try:
                    await channel.drain(self.bus.drain_timeout)
                finally:
                    channel.abandon()

    def _ended_paused(self, sched: Scheduler, result: dict[Task, State]) -> State | None:
        """The final state of a sync run that leaves tasks paused (Prefect 1.x would prompt)."""
        paused = sorted(
            {repr(u.spec.task) for u in sched.all_units() if isinstance(u.state, Paused)}
        )
        if not paused:
            return None
        return Cancelled(
            f"Flow run ended with paused task(s) that nothing can resume under flow.run(): "
            f"{', '.join(paused)}. Resume them with flow.start() and run.resume(task), or run "
            "again with task_states={task: Resume()}.",
            result,
        )

    def _executor_for(self, ts: TaskSpec, named: Mapping[str, Executor]) -> Executor:
        """The executor of one task: its own, one named by it or by a tag, or the run's."""
        choice = ts.executor
        if isinstance(choice, Executor):
            return choice
        if isinstance(choice, str):
            if choice not in named:
                raise ValueError(
                    f"{ts.task!r} asks for executor {choice!r}, but the run has no such named "
                    f"executor (executors={sorted(named)})"
                )
            return named[choice]
        if choice is not None:
            raise TypeError(f"{ts.task!r}: executor must be an Executor or a name, got {choice!r}")
        by_tag = {named[t] for t in ts.tags if t in named}
        if len(by_tag) > 1:
            raise ValueError(f"{ts.task!r} has tags naming several executors: {sorted(ts.tags)}")
        return by_tag.pop() if by_tag else self.executor

    def _executors(self) -> list[Executor]:
        seen: list[Executor] = []
        for executor in [self.executor, *self.task_executors]:
            if all(executor is not e for e in seen):
                seen.append(executor)
        return seen

    async def _deadline(
        self, deadline: float, run_scope: anyio.CancelScope, watcher: anyio.CancelScope
    ) -> None:
        with watcher:
            await self.clock.sleep_until(deadline)
            self._timed_out = True
            run_scope.cancel()

    async def _finish(
        self, sched: Scheduler, *, cancelled: bool, crashed: BaseException | None = None
    ) -> None:
        interrupted = sched.interrupted
        if crashed is not None:
            message = f"Unexpected error in the engine: {crashed!r}"
            await sched.cancel_unfinished(message)
        elif interrupted is not None:
            await sched.cancel_unfinished(f"Flow run was interrupted: {interrupted!r}.")
        elif cancelled:
            message = "Flow run timed out." if self._timed_out else "Flow run was cancelled."
            await sched.cancel_unfinished(message)
        if self.state.is_finished():
            return  # a flow state handler already ended the run
        units = self._units
        result = {unit.spec.task: unit.state for unit in units}
        final: State
        if crashed is not None:
            final = Failed(f"Unexpected error in the engine: {crashed!r}", crashed)
        elif interrupted is not None:
            final = Cancelled(f"Flow run was interrupted: {interrupted!r}.", result)
        elif self._timed_out:
            final = TimedOut(f"Flow run timed out after {self.timeout:g} seconds.", result)
        elif cancelled:
            final = Cancelled("Flow run was cancelled.", result)
        else:
            final = pipeline.final_flow_state([units[i].state for i in self.spec.reference], result)
            if self._end_paused and not final.is_finished():
                final = self._ended_paused(sched, result) or final
        handler = self.spec.terminal_state_handler
        if handler is not None:
            try:
                outcome = handler(self.flow, final, {units[i].state for i in self.spec.reference})
                if inspect.isawaitable(outcome):
                    outcome = await outcome
                if outcome is not None:
                    final = outcome
            except Exception as exc:
                final = handler_failure(handler, exc)
        await self._flow_transition(sched, final, final=cancelled or crashed is not None)
        log = _log.info if self.state.is_successful() else _log.warning
        log(finished_line(self.state), state=repr(self.state))
