"""``RunRecord``: what a :class:`~asyncflow.integrations.Runtime` keeps of one run.

While the run goes on, a record holds the live ``FlowRun`` handle and copies each of its events
into a history of bounded size; once the run has ended, it keeps the final flow state and task
states and lets the handle go (the run itself keeps no more than ``max_events`` either). Readers
:meth:`RunRecord.follow` the history, then the live events, from any ``seq`` on.
"""

from __future__ import annotations

import bisect
import time
from typing import TYPE_CHECKING, Any

import anyio

from ..exceptions import AsyncflowError, RunStateError
from ..states import Scheduled
from .activity import LogEntry, RunActivity

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

    from ..events import StateChange
    from ..runtime.flow_run import FlowRun
    from ..states import State
    from ..task import Task

__all__ = ("RunRecord", "UnknownTask", "copy_events")


class UnknownTask(AsyncflowError, ValueError):
    """The run's flow has no such task, or the task no such mapped child (HTTP 404)."""


class RunRecord:
    """What the runtime keeps of one run.

    Attributes:
        id: the run's id.
        flow_name: the name the flow is registered under.
        parameters: the parameters the run was started with.
        run: the live ``FlowRun`` handle; ``None`` before the run starts and once it has ended
            (so that the engine's own history of the run is freed).
        created: when the record was made (``time.time()``).
        updated: when the record last changed (an event arrived, or the run ended).
        finished: when the run ended (``time.time()``), else ``None``.
        activity: each task run's times, run count, traceback and log records, kept from
            every event (whatever ``max_events`` drops) and bounded by ``max_logs``.
    """

    def __init__(
        self,
        run_id: str,
        flow_name: str,
        parameters: Mapping[str, Any],
        max_events: int | None,
        max_logs: int | None = 1000,
    ) -> None:
        self.id = run_id
        self.flow_name = flow_name
        self.parameters = dict(parameters)
        self.run: FlowRun | None = None
        self.created = self.updated = time.time()
        self.finished: float | None = None
        self._max_events = max_events
        self._events: list[StateChange] = []
        self._offset = 0  # position (0-based, over the whole run) of self._events[0]
        self._total = 0  # events received so far
        self._state: State = Scheduled()
        self._tasks: dict[Task, State] = {}
        self._done = anyio.Event()
        self._changed: anyio.Event | None = None
        self.activity = RunActivity(max_logs)

    def __repr__(self) -> str:
        return f"<RunRecord {self.id} of {self.flow_name!r}: {self.state!r}>"

    # -- what users read --------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The flow run's state now (its final state once it has ended)."""
        return self.run.state if self.run is not None else self._state

    @property
    def task_states(self) -> dict[Task, State]:
        """Every task of the flow with its state now (final ones once the run has ended)."""
        return self.run.task_states if self.run is not None else dict(self._tasks)

    @property
    def done(self) -> bool:
        """Whether the run has ended and every one of its events is recorded."""
        return self._done.is_set()

    @property
    def events(self) -> list[StateChange]:
        """The events kept: the last ``max_events`` of the run, in ``seq`` order."""
        return self._events[self._visible() - self._offset :]

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the last event recorded (0 before the first)."""
        return self._events[-1].seq if self._events else 0

    @property
    def dropped_events(self) -> int:
        """How many of the run's first events the size limit has dropped."""
        return self._visible()

    async def wait(self) -> State:
        """Wait until the run has ended and its events are recorded; return its final state."""
        await self._done.wait()
        return self._state

    async def follow(
        self, after: int = 0, *, heartbeat: float | None = None
    ) -> AsyncGenerator[StateChange | None, None]:
        """The run's events with ``seq > after``: history first, then live, until the run ends.

        Args:
            after: the last ``seq`` the reader already has (``Last-Event-ID``); 0 for all.
            heartbeat: when given, yield ``None`` after that many seconds without an event, so
                that a stream can send a keep-alive.

        A reader slower than ``max_events`` events skips the events dropped meanwhile.
        """
        async for batch in self._follow(after, heartbeat, 256, logs=False):
            if not batch:
                yield None
            for event in batch:
                yield event

    async def follow_batches(
        self, after: int = 0, *, heartbeat: float | None = None, size: int = 256
    ) -> AsyncGenerator[list[StateChange], None]:
        """Like :meth:`follow`, in lists of up to ``size`` events already there.

        A stream writes each list at once (one write instead of one per event); an empty list
        is the heartbeat.
        """
        async for batch in self._follow(after, heartbeat, size, logs=False):
            yield batch  # without logs, only events

    async def follow_with_logs(
        self, after: int = 0, *, heartbeat: float | None = None, size: int = 256
    ) -> AsyncGenerator[list[StateChange | LogEntry], None]:
        """Like :meth:`follow_batches`, with the run's log records (:class:`LogEntry`) too.

        The kept log records come first after the history, then each new one as it is made,
        after the events that came before it; a log record alone wakes the reader.
        """
        async for batch in self._follow(after, heartbeat, size, logs=True):
            yield batch

    async def _follow(
        self, after: int, heartbeat: float | None, size: int, *, logs: bool
    ) -> AsyncGenerator[list[Any], None]:
        lo = self._visible() - self._offset
        pos = self._offset + bisect.bisect_right(self._events, after, lo=lo, key=_seq)
        log_pos = 0
        while True:
            # Positions are counted over the whole run, so trimming the list while this
            # generator is suspended never shifts what it reads next.
            if pos < self._total:
                pos = max(pos, self._visible())
                start = pos - self._offset
                batch = self._events[start : start + size]
                pos += len(batch)
                if batch[-1].seq > after:  # `after` may be ahead of what has happened yet
                    yield [e for e in batch if e.seq > after] if batch[0].seq <= after else batch
                continue
            if logs and log_pos < self.activity.log_total:
                records = self.activity.logs_after(log_pos)
                log_pos = self.activity.log_total
                if records:
                    yield records
                continue
            if self.done:
                return
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            if heartbeat is None:
                await changed.wait()
            else:
                with anyio.move_on_after(heartbeat):
                    await changed.wait()
                if not changed.is_set():
                    yield []

    def cancel(self) -> None:
        """Cancel the run (its running tasks end ``Cancelled``, then the flow does).

        Raises:
            RunStateError: the run has already ended.
        """
        if self.run is None or self.run.done:
            raise RunStateError(f"run {self.id} has ended ({self.state!r}); it cannot be cancelled")
        self.run.cancel()

    def resume(self, task: Task | str, map_index: int | None = None) -> None:
        """Approve a ``Paused`` task (or one mapped child) of the run.

        Raises:
            UnknownTask: the flow has no such task (or child).
            RunStateError: the task is not paused, or the run has ended.
        """
        if self.run is None or self.run.done:
            raise RunStateError(f"run {self.id} has ended ({self.state!r}); nothing can resume")
        try:
            self.run.resume(task, map_index)
        except ValueError as exc:
            raise UnknownTask(str(exc)) from exc

    # -- kept up to date by the runtime -----------------------------------------------------

    def _visible(self) -> int:
        """Position of the first event still kept."""
        if self._max_events is None:
            return self._offset
        return max(self._offset, self._total - self._max_events)

    def _add(self, event: StateChange) -> None:
        last = self._events[-1].seq if self._events else self._total
        if event.seq <= last:
            return  # already copied (the catch-up after a cancellation re-reads the history)
        if event.seq > last + 1:
            # The run's own bounded history moved on while this copy lagged behind: what it
            # skipped is older than what is kept, so it counts as dropped.
            gap = event.seq - last - 1
            self._total += gap
            self._offset = self._total
            self._events.clear()
        self._events.append(event)
        self._total += 1
        self.activity.observe(event)
        self.updated = time.time()
        limit = self._max_events
        # Trim in batches (an eighth of the limit) so that appending stays O(1) amortised.
        if limit is not None and len(self._events) > limit + max(1, limit // 8):
            drop = len(self._events) - limit
            del self._events[:drop]
            self._offset += drop
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _close(self) -> None:
        run = self.run
        if run is not None:
            self._state = run.state
            self._tasks = run.task_states
        self.run = None
        self.finished = self.updated = time.time()
        self._done.set()
        self._notify()


def _seq(event: StateChange) -> int:
    return event.seq


async def copy_events(run: FlowRun, record: RunRecord) -> None:
    """Copy the run's events into the record until the run ends."""
    events = run.events()
    try:
        async for event in events:
            record._add(event)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:  # do not leave the generator for the garbage collector
            await aclose()
