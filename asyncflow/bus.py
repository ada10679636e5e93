"""The event bus: every state transition, published to whoever subscribes.

Subscribers *observe*; state handlers *intercept*. A subscriber is a sync function or a
coroutine function taking one :class:`~asyncflow.events.StateChange`, or a pull-style stream
(``async with bus.stream() as events``). Each has its own bounded buffer and overflow policy:

- ``"block"`` (default): a full buffer makes the publishing run wait (back-pressure);
- ``"drop_oldest"``: the oldest buffered event is discarded and ``subscription.dropped`` counts it;
- ``"error"``: the subscription is closed with :class:`~asyncflow.exceptions.BusOverflowError`
  (a stream raises it to its reader).

Handler subscribers are fed by one pump per (run, subscription) inside the run's task group, so
each sees the events of one run in ``seq`` order, a slow one never delays the engine beyond its
buffer, and one that raises is logged and counted in ``subscription.errors`` while everyone goes
on. When a run ends it waits until its pumps have delivered everything (nothing is lost at the
end). Publishing with no subscribers is a loop over an empty tuple.

Buffers are small deques rather than anyio memory streams because ``drop_oldest`` needs to
remove from the reading end, which a memory stream cannot do.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio

from ._log import get_logger
from .exceptions import BusOverflowError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .events import StateChange
    from .states import State

__all__ = (
    "EventBus",
    "EventFilter",
    "Subscription",
    "Subscriber",
    "Overflow",
    "by_flow",
    "by_task",
    "by_state",
    "by_run",
    "default_bus",
)

Subscriber = Callable[["StateChange"], "Awaitable[None] | None"]
Overflow = Literal["block", "drop_oldest", "error"]
_OVERFLOWS = ("block", "drop_oldest", "error")
_log = get_logger("asyncflow.bus")


class EventFilter:
    """A predicate over events that combines with ``&``, ``|`` and ``~``."""

    __slots__ = ("_label", "_predicate")

    def __init__(self, predicate: Callable[[StateChange], bool], label: str = "filter") -> None:
        self._predicate = predicate
        self._label = label

    def __call__(self, event: StateChange) -> bool:
        return self._predicate(event)

    def __and__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: self(e) and other(e), f"({self._label} & {_label(other)})")

    def __or__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: self(e) or other(e), f"({self._label} | {_label(other)})")

    def __rand__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: other(e) and self(e), f"({_label(other)} & {self._label})")

    def __ror__(self, other: Callable[[StateChange], bool]) -> EventFilter:
        return EventFilter(lambda e: other(e) or self(e), f"({_label(other)} | {self._label})")

    def __invert__(self) -> EventFilter:
        return EventFilter(lambda e: not self(e), f"~{self._label}")

    def __repr__(self) -> str:
        return f"<EventFilter {self._label}>"


def _label(f: Callable[..., Any]) -> str:
    return f._label if isinstance(f, EventFilter) else getattr(f, "__name__", repr(f))


def by_flow(name: str) -> EventFilter:
    """Events of flows named ``name``."""
    return EventFilter(lambda e: e.flow_name == name, f"by_flow({name!r})")


def by_task(name: str) -> EventFilter:
    """Events of tasks named ``name`` (flow transitions excluded)."""
    return EventFilter(lambda e: e.task_name == name, f"by_task({name!r})")


def by_state(*state_classes: type[State]) -> EventFilter:
    """Events whose new state is an instance of one of ``state_classes`` (subclasses count)."""
    if not state_classes:
        raise TypeError("by_state() needs at least one State class")
    names = ", ".join(c.__name__ for c in state_classes)
    return EventFilter(lambda e: isinstance(e.new_state, state_classes), f"by_state({names})")


def by_run(run_id: str) -> EventFilter:
    """Events of the flow run ``run_id``."""
    return EventFilter(lambda e: e.run_id == run_id, f"by_run({run_id!r})")


class _Closed(Exception):
    """Raised by an empty, closed mailbox."""


class _Mailbox:
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
                raise _Closed
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


class Subscription:
    """One subscriber's registration; close it to stop delivery.

    Attributes:
        handler: the subscriber function (``None`` for a stream).
        filter: the predicate events must pass, or ``None`` for all.
        buffer: how many events may wait for this subscriber.
        overflow: what happens when the buffer is full.
        delivered: events handed to the handler so far.
        dropped: events lost to ``drop_oldest`` (or left undelivered at a forced stop).
        errors: exceptions raised by the handler or the filter, each logged.
    """

    def __init__(
        self,
        bus: EventBus,
        handler: Subscriber | None,
        filter: Callable[[StateChange], bool] | None,
        buffer: int,
        overflow: Overflow,
    ) -> None:
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1, got {buffer!r}")
        if overflow not in _OVERFLOWS:
            raise ValueError(f"overflow must be one of {_OVERFLOWS}, got {overflow!r}")
        self._bus = bus
        self.handler = handler
        self.filter = filter
        self.buffer = buffer
        self.overflow: Overflow = overflow
        self.delivered = 0
        self.dropped = 0
        self.errors = 0
        self.closed = False
        self.error: BaseException | None = None
        self._is_async = handler is not None and _is_async_callable(handler)
        # A stream has one mailbox for every run; a handler gets one per run, with its pump.
        self._stream_box: _Mailbox | None = _Mailbox(self) if handler is None else None
        self._run_boxes: list[_Mailbox] = []

    def close(self) -> None:
        """Stop delivery now; events still buffered are discarded (and counted as dropped)."""
        if self.closed:
            return
        self.closed = True
        self._bus._remove(self)
        for box in self._boxes():
            self.dropped += box.discard()
            box.wake()

    def _boxes(self) -> list[_Mailbox]:
        return [self._stream_box] if self._stream_box is not None else list(self._run_boxes)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.errors += 1
        _log.error("subscription overflowed and was closed", subscription=repr(self))
        self.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        what = (
            "stream" if self.handler is None else getattr(self.handler, "__qualname__", "handler")
        )
        return f"<Subscription {what} buffer={self.buffer} overflow={self.overflow}>"


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects count too
    )


class EventStream:
    """The async iterator behind :meth:`EventBus.stream`."""

    def __init__(self, sub: Subscription) -> None:
        self.subscription = sub

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StateChange:
        box = self.subscription._stream_box
        assert box is not None
        try:
            return await box.get()
        except _Closed:
            if self.subscription.error is not None:
                raise self.subscription.error from None
            raise StopAsyncIteration from None


class EventBus:
    """Publishes :class:`~asyncflow.events.StateChange` events to subscribers."""

    def __init__(self) -> None:
        # Copy-on-write tuple: publishing iterates it without a lock or a copy.
        self._subs: tuple[Subscription, ...] = ()

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The live subscriptions."""
        return self._subs

    @overload
    def subscribe(
        self,
        handler: Subscriber,
        *,
        filter: Callable[[StateChange], bool] | None = ...,
        buffer: int = ...,
        overflow: Overflow = ...,
    ) -> Subscription: ...

    @overload
    def subscribe(
        self,
        handler: None = None,
        *,
        filter: Callable[[StateChange], bool] | None = ...,
        buffer: int = ...,
        overflow: Overflow = ...,
    ) -> Callable[[Subscriber], Subscription]: ...

    def subscribe(
        self,
        handler: Subscriber | None = None,
        *,
        filter: Callable[[StateChange], bool] | None = None,
        buffer: int = 1024,
        overflow: Overflow = "block",
    ) -> Subscription | Callable[[Subscriber], Subscription]:
        """Deliver matching events to ``handler`` (sync or async).

        Without ``handler`` this is a decorator: ``@bus.subscribe(filter=...)`` subscribes the
        function and binds its name to the :class:`Subscription`.

        Args:
            handler: called with each event, on the event loop.
            filter: a predicate; only events it accepts are delivered.
            buffer: how many events may wait for this subscriber.
            overflow: ``"block"``, ``"drop_oldest"`` or ``"error"`` (see the module docs).
        """
        if handler is None:

            def decorator(fn: Subscriber) -> Subscription:
                return self.subscribe(fn, filter=filter, buffer=buffer, overflow=overflow)

            return decorator
        if not callable(handler):
            raise TypeError(f"subscriber must be callable, got {handler!r}")
        sub = Subscription(self, handler, filter, buffer, overflow)
        self._subs = (*self._subs, sub)
        return sub

    @asynccontextmanager
    async def stream(
        self,
        filter: Callable[[StateChange], bool] | None = None,
        *,
        buffer: int = 1024,
        overflow: Overflow = "block",
    ) -> AsyncIterator[EventStream]:
        """Pull events: ``async with bus.stream() as events: async for ev in events: ...``.

        The iteration ends when the block is left; with ``overflow="error"`` it raises
        :class:`~asyncflow.exceptions.BusOverflowError` once the reader falls behind.
        """
        sub = Subscription(self, None, filter, buffer, overflow)
        self._subs = (*self._subs, sub)
        try:
            yield EventStream(sub)
        finally:
            sub.close()

    def _remove(self, sub: Subscription) -> None:
        self._subs = tuple(s for s in self._subs if s is not sub)

    def channel(self, task_group: TaskGroup) -> RunChannel:
        """A publisher for one run, whose handler pumps live in ``task_group``."""
        return RunChannel(self, task_group)


class RunChannel:
    """Publishes one run's events; owns that run's per-subscriber pumps."""

    __slots__ = ("_boxes", "_bus", "_idle", "_pumps", "_tg", "stopping")

    #: While a run is being torn down, how long a full ``block`` buffer may hold it up before
    #: the event is dropped for that subscriber (so a stuck subscriber cannot hang a cancel).
    STOP_WAIT = 5.0

    def __init__(self, bus: EventBus, task_group: TaskGroup) -> None:
        self._bus = bus
        self._tg = task_group
        self._boxes: dict[Subscription, _Mailbox] = {}
        self._pumps: dict[_Mailbox, anyio.CancelScope] = {}
        self._idle: anyio.Event | None = None
        self.stopping = False  # set when the run is cancelled: back-pressure becomes bounded

    @property
    def active(self) -> bool:
        """Whether anyone would receive an event now."""
        return bool(self._bus._subs)

    def publish(self, event: StateChange) -> list[_Mailbox] | None:
        """Queue ``event`` for every matching subscriber.

        Returns the mailboxes that are full under the ``block`` policy (the caller awaits
        :meth:`wait_room` with them), or ``None`` when every put succeeded.
        """
        blocked: list[_Mailbox] | None = None
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

    async def wait_room(self, boxes: list[_Mailbox], event: StateChange) -> None:
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

    def _open(self, sub: Subscription) -> _Mailbox:
        box = _Mailbox(sub)
        self._boxes[sub] = box
        sub._run_boxes.append(box)
        # Pumps are shielded: a run cancelled from outside still delivers its final events
        # (bounded by the run's drain timeout, after which abandon() cancels them).
        scope = self._pumps[box] = anyio.CancelScope(shield=True)
        self._tg.start_soon(self._pump, sub, box, scope)
        return box

    async def _pump(self, sub: Subscription, box: _Mailbox, scope: anyio.CancelScope) -> None:
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

    async def _deliver(self, sub: Subscription, box: _Mailbox, handler: Subscriber) -> None:
        while True:
            try:
                event = await box.get()
            except _Closed:
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


_DEFAULT_BUS = EventBus()


def default_bus() -> EventBus:
    """The process-wide bus that runs publish to unless given ``bus=``."""
    return _DEFAULT_BUS
