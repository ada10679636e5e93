"""Delivery of one run's events to subscribers: bounded mailboxes and per-run pumps.

Internal to :mod:`asyncflow.bus`. A :class:`RunChannel` publishes one run's events: it puts each
into the mailbox of every matching subscription (a stream has one mailbox for all runs; a
handler subscription gets one per run, drained by a pump coroutine in the run's task group).

Three rules keep delivery honest:

- **Nothing is lost.** Publishing appends the event to the mailbox at once, whatever the
  policy; under ``"block"`` the publisher then waits until its event is within the buffer. A
  publisher cancelled while it waits leaves its event queued. Every event a subscription
  matches is either delivered or counted in ``subscription.dropped``.
- **Order holds.** Events enter a mailbox in ``seq`` order, synchronously, so waiting
  publishers are served first come, first served: nobody overtakes a waiting event.
- **Nothing hangs.** At the end of a run the pumps finish their buffers, but a subscriber that
  makes no progress for the bus's ``drain_timeout`` is given up on; when the run is cancelled
  or crashes, publishers stop waiting for room and subscribers get :data:`CANCEL_GRACE`
  seconds to take the last events. What is given up on is counted.

Buffers are deques rather than anyio memory streams because ``drop_oldest`` needs to remove
from the reading end, which a memory stream cannot do.
"""

from __future__ import annotations

import inspect
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from ._log import get_logger
from .exceptions import BusOverflowError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .bus import EventBus, Subscriber, Subscription
    from .events import StateChange

__all__ = ("CANCEL_GRACE", "Closed", "Mailbox", "RunChannel", "isolate")

#: When a run is cancelled (or crashes), how long async subscribers get to take its last
#: events before the rest is counted as dropped: short, so the cancellation goes on at once.
CANCEL_GRACE = 0.1

_log = get_logger("asyncflow.bus")


class Closed(Exception):
    """Raised by an empty, closed mailbox."""


def isolate(sub: Subscription, exc: BaseException, what: str, seq: int) -> None:
    """Count and log what a subscriber (or its filter) raised; it goes no further."""
    sub.errors += 1
    _log.error(
        f"{what} raised; it is isolated and delivery goes on",
        subscription=repr(sub),
        seq=seq,
        exc_info=exc,
    )


class Mailbox:
    """A bounded FIFO between the publisher and one reader, with an overflow policy.

    ``taken`` counts the events the reader has taken; an event appended as the ``n``-th
    (``ticket`` ``n``) is within the buffer once ``n - taken < buffer``.
    """

    __slots__ = (
        "_maxsize",
        "_not_empty",
        "_not_full",
        "_queue",
        "_sealed",
        "_sub",
        "appended",
        "progress",
        "taken",
    )

    def __init__(self, sub: Subscription) -> None:
        self._queue: deque[StateChange] = deque()
        self._maxsize = sub.buffer
        self._sub = sub
        self._not_empty: anyio.Event | None = None
        self._not_full: anyio.Event | None = None
        self._sealed = False  # no more puts will come
        self.appended = 0  # events ever appended
        self.taken = 0  # events ever taken by the reader
        self.progress = 0  # events the reader has finished with (a stall detector)

    def put_nowait(self, event: StateChange) -> int:
        """Queue ``event``; return its ticket when it must wait for room, else ``-1``."""
        sub = self._sub
        if sub.closed:
            return -1  # closed by its owner: nobody reads, nothing is promised
        queue = self._queue
        if len(queue) >= self._maxsize:
            overflow = sub.overflow
            if overflow == "drop_oldest":
                queue.popleft()
                self.taken += 1
                sub.dropped += 1
            elif overflow == "error":
                sub.dropped += 1  # this event, and (by closing) the buffered ones
                sub._fail(
                    BusOverflowError(f"{sub!r} fell behind by more than {self._maxsize} events")
                )
                return -1
        ticket = self.appended
        queue.append(event)
        self.appended = ticket + 1
        if self._not_empty is not None:
            self._not_empty.set()
            self._not_empty = None
        return ticket if ticket - self.taken >= self._maxsize else -1

    async def wait_room(self, ticket: int) -> None:
        """Wait until the event with ``ticket`` is within the buffer (or nobody reads)."""
        while ticket - self.taken >= self._maxsize and not (self._sealed or self._sub.closed):
            if self._not_full is None:
                self._not_full = anyio.Event()
            await self._not_full.wait()

    def seal(self) -> None:
        """No more events will be put; the reader drains what is left, then stops."""
        self._sealed = True
        self.wake()

    def wake(self) -> None:
        for ev in (self._not_empty, self._not_full):
            if ev is not None:
                ev.set()
        self._not_empty = self._not_full = None

    async def get(self) -> StateChange:
        while not self._queue:
            if self._sealed or self._sub.closed:
                raise Closed
            if self._not_empty is None:
                self._not_empty = anyio.Event()
            await self._not_empty.wait()
        event = self._queue.popleft()
        self.taken += 1
        if self._not_full is not None:
            self._not_full.set()
            self._not_full = None
        return event

    def discard(self) -> int:
        n = len(self._queue)
        self._queue.clear()
        self.taken += n
        if self._not_full is not None:
            self._not_full.set()
            self._not_full = None
        return n


class RunChannel:
    """Publishes one run's events; owns that run's per-subscriber pumps."""

    __slots__ = ("_boxes", "_bus", "_cancelled", "_idle", "_pumps", "_tg", "stopping")

    def __init__(self, bus: EventBus, task_group: TaskGroup) -> None:
        self._bus = bus
        self._tg = task_group
        self._boxes: dict[Subscription, Mailbox] = {}
        self._pumps: dict[Mailbox, anyio.CancelScope] = {}
        self._idle: anyio.Event | None = None
        self._cancelled = anyio.get_cancelled_exc_class()
        self.stopping = False  # set when the run stops (or ends): publishers no longer wait

    @property
    def active(self) -> bool:
        """Whether anyone would receive an event now."""
        return bool(self._bus._subs)

    def publish(self, event: StateChange) -> list[tuple[Mailbox, int]] | None:
        """Queue ``event`` for every matching subscriber.

        Returns ``(mailbox, ticket)`` for each ``block`` mailbox the event overfills (the
        caller awaits :meth:`wait_room` with them), or ``None`` when there is none.
        """
        blocked: list[tuple[Mailbox, int]] | None = None
        for sub in self._bus._subs:
            flt = sub.filter
            if flt is not None:
                try:
                    if not flt(event):
                        continue
                except BaseException as exc:  # a filter raising a signal too
                    isolate(sub, exc, "event filter", event.seq)
                    continue
            box = sub._stream_box or self._boxes.get(sub) or self._open(sub)
            ticket = box.put_nowait(event)
            if ticket >= 0:
                (blocked := blocked or []).append((box, ticket))
        return blocked

    async def wait_room(self, blocked: list[tuple[Mailbox, int]]) -> None:
        """Back-pressure: wait until the event just published is within every buffer.

        The event is queued already, so a cancellation here loses nothing; once the run
        stops, nobody waits at all.
        """
        for box, ticket in blocked:
            if self.stopping:
                return
            await box.wait_room(ticket)

    def _open(self, sub: Subscription) -> Mailbox:
        box = Mailbox(sub)
        self._boxes[sub] = box
        sub._run_boxes.append(box)
        # Pumps are shielded: a run cancelled from outside still delivers its final events
        # (within CANCEL_GRACE, after which abandon() cancels them).
        scope = self._pumps[box] = anyio.CancelScope(shield=True)
        self._tg.start_soon(self._pump, sub, box, scope)
        return box

    async def _pump(self, sub: Subscription, box: Mailbox, scope: anyio.CancelScope) -> None:
        handler = sub.handler
        assert handler is not None
        try:
            with scope:
                await self._deliver(sub, box, handler, scope)
        finally:
            sub._run_boxes.remove(box)
            del self._pumps[box]
            if self._idle is not None:
                self._idle.set()

    async def _deliver(
        self, sub: Subscription, box: Mailbox, handler: Subscriber, scope: anyio.CancelScope
    ) -> None:
        cancelled = self._cancelled
        while True:
            try:
                event = await box.get()
            except Closed:
                return
            try:
                outcome: Any = handler(event)
                if sub._is_async or inspect.isawaitable(outcome):
                    await outcome
            except BaseException as exc:  # isolated from all it raises, signals too
                if isinstance(exc, cancelled) and scope.cancel_called:
                    # The run gave up on this subscriber in the middle of this event (counted
                    # here, not in _give_up(): a handler about to return still delivers it).
                    sub.dropped += 1
                    raise
                isolate(sub, exc, "subscriber", event.seq)
            box.progress += 1
            sub.delivered += 1

    def close(self) -> None:
        """No more events: each pump drains its buffer, then ends."""
        for box in self._boxes.values():
            box.seal()

    async def drain(self, stall: float) -> None:
        """Wait until every pump has delivered its buffer (after :meth:`close`).

        A pump that makes no progress for ``stall`` seconds is abandoned (what it had not
        delivered is counted as dropped); one that keeps delivering is waited for.
        """
        seen: dict[Mailbox, int] = {}
        while self._pumps:
            self._idle = anyio.Event()
            with anyio.move_on_after(stall) as timer:
                await self._idle.wait()
            if not timer.cancelled_caught:
                continue
            for box in list(self._pumps):
                if seen.get(box) == box.progress:
                    self._give_up(box, "subscriber made no progress at the end of the run")
                seen[box] = box.progress

    async def grace(self) -> None:
        """The short wait of a cancelled run: :data:`CANCEL_GRACE` seconds, then give up.

        A pump of a sync subscriber empties its buffer in one go, so only async subscribers
        that are slow (or stuck) lose events here, and those are counted.
        """
        with anyio.move_on_after(CANCEL_GRACE):
            while self._pumps:
                self._idle = anyio.Event()
                await self._idle.wait()
        self.abandon()

    def abandon(self) -> None:
        """Stop now: undelivered events (and any being handled) are counted as dropped."""
        for box in list(self._pumps):
            self._give_up(box, "events left undelivered when the run stopped")
        for box in self._boxes.values():
            box.seal()

    def _give_up(self, box: Mailbox, why: str) -> None:
        sub = box._sub
        lost = box.discard()
        box.seal()
        if lost:
            sub.dropped += lost
            _log.warning(why, subscription=repr(sub), lost=lost)
        scope = self._pumps.get(box)
        if scope is not None:
            scope.cancel()
