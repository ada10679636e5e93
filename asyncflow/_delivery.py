"""Delivery of one run's events to subscribers: bounded mailboxes and per-run pumps.

Internal to :mod:`asyncflow.bus`. A :class:`RunChannel` publishes one run's events: it puts each
into the mailbox of every matching subscription (a stream has one mailbox for all runs; a
handler subscription gets one per run, drained by a pump coroutine in the run's task group).
Buffers are small deques rather than anyio memory streams because ``drop_oldest`` needs to
remove from the reading end, which a memory stream cannot do.
"""

from __future__ import annotations

import inspect
from collections import deque
from typing import TYPE_CHECKING

import anyio

from ._log import get_logger
from .exceptions import BusOverflowError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .bus import EventBus, Subscriber, Subscription
    from .events import StateChange

__all__ = ("Closed", "Mailbox", "RunChannel")

_log = get_logger("asyncflow.bus")


class Closed(Exception):
    """Raised by an empty, closed mailbox."""


class Mailbox:
    """A bounded FIFO between the publisher and one reader, with an overflow policy."""

    __slots__ = ("_maxsize", "_not_empty", "_not_full", "_queue", "_sealed", "_sub")

    def __init__(self, sub: Subscription) -> None:
        self._queue: deque[StateChange] = deque()
        self._maxsize = sub.buffer
        self._sub = sub
        self._not_empty: anyio.Event | None = None
        self._not_full: anyio.Event | None = None
        self._sealed = False  # no more puts will come

    def put_nowait(self, event: StateChange) -> bool:
        """Queue ``event``; ``False`` only when the buffer is full and the policy is block."""
        sub = self._sub
        if sub.closed:
            return True  # a closed subscription swallows events: nobody is reading
        if len(self._queue) >= self._maxsize:
            if sub.overflow == "block":
                return False
            if sub.overflow == "drop_oldest":
                self._queue.popleft()
                sub.dropped += 1
            else:
                sub._fail(
                    BusOverflowError(f"{sub!r} fell behind by more than {self._maxsize} events")
                )
                return True
        self._queue.append(event)
        if self._not_empty is not None:
            self._not_empty.set()
            self._not_empty = None
        return True

    async def put(self, event: StateChange) -> None:
        """Queue ``event``, waiting for room (back-pressure)."""
        while not self.put_nowait(event):
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
        if self._not_full is not None:
            self._not_full.set()
            self._not_full = None
        return event

    def discard(self) -> int:
        n = len(self._queue)
        self._queue.clear()
        return n


class RunChannel:
    """Publishes one run's events; owns that run's per-subscriber pumps."""

    __slots__ = ("_boxes", "_bus", "_idle", "_pumps", "_tg", "stopping")

    #: While a run is being torn down, how long a full ``block`` buffer may hold it up before
    #: the event is dropped for that subscriber (so a stuck subscriber cannot hang a cancel).
    STOP_WAIT = 5.0

    def __init__(self, bus: EventBus, task_group: TaskGroup) -> None:
        self._bus = bus
        self._tg = task_group
        self._boxes: dict[Subscription, Mailbox] = {}
        self._pumps: dict[Mailbox, anyio.CancelScope] = {}
        self._idle: anyio.Event | None = None
        self.stopping = False  # set when the run is cancelled: back-pressure becomes bounded

    @property
    def active(self) -> bool:
        """Whether anyone would receive an event now."""
        return bool(self._bus._subs)

    def publish(self, event: StateChange) -> list[Mailbox] | None:
        """Queue ``event`` for every matching subscriber.

        Returns the mailboxes that are full under the ``block`` policy (the caller awaits
        :meth:`wait_room` with them), or ``None`` when every put succeeded.
        """
        blocked: list[Mailbox] | None = None
        for sub in self._bus._subs:
            flt = sub.filter
            if flt is not None:
                try:
                    if not flt(event):
                        continue
                except Exception:
                    sub.errors += 1
                    _log.exception(
                        "event filter raised; event not delivered", subscription=repr(sub)
                    )
                    continue
            box = sub._stream_box or self._boxes.get(sub) or self._open(sub)
            if not box.put_nowait(event):
                (blocked := blocked or []).append(box)
        return blocked

    async def wait_room(self, boxes: list[Mailbox], event: StateChange) -> None:
        """Finish a publish that met full ``block`` buffers, in order."""
        for box in boxes:
            if not self.stopping:
                await box.put(event)
                continue
            with anyio.move_on_after(self.STOP_WAIT):
                await box.put(event)
                continue
            box._sub.dropped += 1
            _log.warning(
                "subscriber stuck while the run stops; event dropped",
                subscription=repr(box._sub),
                seq=event.seq,
            )

    def _open(self, sub: Subscription) -> Mailbox:
        box = Mailbox(sub)
        self._boxes[sub] = box
        sub._run_boxes.append(box)
        # Pumps are shielded: a run cancelled from outside still delivers its final events
        # (bounded by the run's drain timeout, after which abandon() cancels them).
        scope = self._pumps[box] = anyio.CancelScope(shield=True)
        self._tg.start_soon(self._pump, sub, box, scope)
        return box

    async def _pump(self, sub: Subscription, box: Mailbox, scope: anyio.CancelScope) -> None:
        handler = sub.handler
        assert handler is not None
        try:
            with scope:
                await self._deliver(sub, box, handler)
        finally:
            sub._run_boxes.remove(box)
            del self._pumps[box]
            if not self._pumps and self._idle is not None:
                self._idle.set()

    async def _deliver(self, sub: Subscription, box: Mailbox, handler: Subscriber) -> None:
        while True:
            try:
                event = await box.get()
            except Closed:
                return
            try:
                outcome = handler(event)
                if sub._is_async or inspect.isawaitable(outcome):
                    await outcome  # type: ignore[misc]
            except Exception:
                sub.errors += 1
                _log.exception(
                    "subscriber raised; it is isolated and delivery goes on",
                    subscription=repr(sub),
                    seq=event.seq,
                )
            sub.delivered += 1

    def close(self) -> None:
        """No more events: each pump drains its buffer, then ends."""
        for box in self._boxes.values():
            box.seal()

    async def drained(self) -> None:
        """Wait until every pump has delivered its buffer and ended (after :meth:`close`)."""
        while self._pumps:
            self._idle = anyio.Event()
            await self._idle.wait()

    def abandon(self) -> None:
        """Stop now (forced shutdown): undelivered events are counted as dropped."""
        for sub, box in self._boxes.items():
            lost = box.discard()
            if lost:
                sub.dropped += lost
                _log.warning(
                    "events left undelivered at a forced stop", subscription=repr(sub), lost=lost
                )
            box.seal()
        for scope in self._pumps.values():
            scope.cancel()
