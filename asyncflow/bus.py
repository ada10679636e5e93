"""The event bus: every state transition, published to whoever subscribes.

Subscribers *observe*; state handlers *intercept*. A subscriber is a sync function or a
coroutine function taking one :class:`~asyncflow.events.StateChange`, or a pull-style stream
(``async with bus.stream() as events``). Each has its own bounded buffer and overflow policy:

- ``"block"`` (default): a full buffer makes the publishing run wait (back-pressure);
- ``"drop_oldest"``: the oldest buffered event is discarded and ``subscription.dropped`` counts it;
- ``"error"``: the subscription is closed with :class:`~asyncflow.exceptions.BusOverflowError`
  (a stream raises it to its reader).

Handler subscribers are fed by one pump per (run, subscription) inside the run's task group, so
each sees the events of one run in ``seq`` order (publishers waiting for room are served first
come, first served), a slow one never delays the engine beyond its buffer, and whatever one
raises (signals included) is logged and counted in ``subscription.errors`` while everyone goes
on. Every event a subscription matches is delivered or counted in ``subscription.dropped``: when
a run ends it waits for its pumps to deliver everything, giving up only on a subscriber that
makes no progress for ``drain_timeout`` seconds; a cancelled run gives them a moment, never
more, so a stuck subscriber cannot hold up a cancellation. Publishing with no subscribers is a
loop over an empty tuple.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

from ._delivery import Closed, Mailbox, RunChannel
from ._log import get_logger
from .filters import EventFilter as EventFilter
from .filters import by_flow as by_flow
from .filters import by_run as by_run
from .filters import by_state as by_state
from .filters import by_task as by_task

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .events import StateChange

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


class Subscription:
    """One subscriber's registration; close it to stop delivery.

    Attributes:
        handler: the subscriber function (``None`` for a stream).
        filter: the predicate events must pass, or ``None`` for all.
        buffer: how many events may wait for this subscriber.
        overflow: what happens when the buffer is full.
        delivered: events handed to the handler so far.
        dropped: events this subscription matched but did not get: lost to ``drop_oldest``
            or ``error``, discarded by :meth:`close`, or given up on when a run stopped.
        errors: exceptions raised by the handler or the filter, each logged (an event whose
            handler raised still counts as delivered).
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
        self._stream_box: Mailbox | None = Mailbox(self) if handler is None else None
        self._run_boxes: list[Mailbox] = []

    def close(self) -> None:
        """Stop delivery now; events still buffered are discarded (and counted as dropped)."""
        if self.closed:
            return
        self.closed = True
        self._bus._remove(self)
        for box in self._boxes():
            self.dropped += box.discard()
            box.wake()

    def _boxes(self) -> list[Mailbox]:
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
        except Closed:
            if self.subscription.error is not None:
                raise self.subscription.error from None
            raise StopAsyncIteration from None


class EventBus:
    """Publishes :class:`~asyncflow.events.StateChange` events to subscribers.

    Args:
        drain_timeout: at the end of a run, how long a subscriber may make no progress on
            the run's last events before the run stops waiting for it (what it did not take
            is counted in its ``dropped``).
    """

    def __init__(self, *, drain_timeout: float = 5.0) -> None:
        if not drain_timeout > 0:
            raise ValueError(
                f"drain_timeout must be a positive number of seconds, got {drain_timeout!r}"
            )
        self.drain_timeout = drain_timeout
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


_DEFAULT_BUS = EventBus()


def default_bus() -> EventBus:
    """The process-wide bus that runs publish to unless given ``bus=``."""
    return _DEFAULT_BUS
