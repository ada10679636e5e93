"""The append side of a run's journal: events encoded as they happen, handed over in chunks.

The engine appends each transition to its run's :class:`Journal` without waiting; the journal
encodes it to JSON at once (strings the garbage collector never visits) and keeps it in a
:class:`Chunk` until its store takes it, at the end of the event-loop tick (or sooner, see
:data:`CHUNK_ROWS` and :meth:`Journal.push`). Once the store has committed a chunk, the journal
moves ``committed`` and tells the run, which then releases the downstream tasks that waited.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ._codec import LastEncoded, dump_value, encode_chunk, encode_event
from .errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..states import State
    from .base import Store

__all__ = ("CHUNK_ROWS", "TOUCH_EVERY", "Chunk", "Journal", "merged", "refuse", "writable")

#: A journal hands its events to the store once this many are waiting, even mid-tick.
CHUNK_ROWS = 1024
#: Seconds between two writes of a running run's ``updated`` time (a commit that writes only
#: journal rows leaves the run's record alone: half the pages of a small commit).
TOUCH_EVERY = 1.0


class Chunk:
    """What one run appended since its journal was last flushed: one journal row.

    Events are encoded as they are appended (on the loop, into strings the garbage collector
    never visits); the writer only joins them, pickles the checkpointed values and writes.

    Attributes:
        journal: the run's journal.
        first: the ``seq`` of the first event.
        last: the ``seq`` of the last event.
        rows: each event as JSON (see :func:`~asyncflow.store._codec.encode_event`).
        flow_state: the flow run's last new state among these events, if any.
        touch: whether the run's ``updated`` time is written with this row (with a new flow
            state, and at most every :data:`TOUCH_EVERY` seconds otherwise).
        values: ``(location, value, task name)`` of the results checkpointed into the store.
    """

    __slots__ = ("first", "flow_state", "journal", "last", "rows", "touch", "values")

    def __init__(self, journal: Journal, first: int) -> None:
        self.journal = journal
        self.first = first
        self.last = first
        self.rows: list[str] = []
        self.flow_state: State | None = None
        self.touch = False
        self.values: list[tuple[str, Any, str | None]] = []

    @property
    def text(self) -> str:
        """The row's events as one JSON array."""
        return encode_chunk(self.rows)

    def pickled(self) -> list[tuple[str, bytes]]:
        """The ``(location, pickled value)`` pairs to write with this row.

        Raises:
            StoreError: a value cannot be pickled (the message names the task and run).
        """
        out = []
        for location, value, task_name in self.values:
            try:
                out.append((location, dump_value(value)))
            except Exception as exc:
                raise StoreError(
                    f"the result of task {task_name!r} (run {self.journal.run_id!r}) cannot be "
                    f"checkpointed: {exc!r}; give the task checkpoint=False or a Result of its own"
                ) from exc
        return out


def merged(chunks: list[Chunk]) -> list[Chunk]:
    """``chunks`` with each run's chunks made one, in order (one row, one statement): a writer
    that took several batches at once writes each run's part in one go."""
    by_run: dict[Journal, Chunk] = {}
    for chunk in chunks:
        previous = by_run.get(chunk.journal)
        if previous is None:
            by_run[chunk.journal] = chunk
            continue
        combined = Chunk(chunk.journal, previous.first)
        combined.rows = previous.rows + chunk.rows
        combined.last = chunk.last
        flow_state = chunk.flow_state
        combined.flow_state = flow_state if flow_state is not None else previous.flow_state
        combined.touch = previous.touch or chunk.touch
        combined.values = previous.values + chunk.values
        by_run[chunk.journal] = combined
    return list(by_run.values())


def writable(batch: list[Chunk]) -> tuple[list[Chunk], dict[Journal, StoreError]]:
    """The chunks of ``batch`` a writer may write, and the runs it must refuse: those whose
    journal had a chunk refused already (a later chunk would leave a gap in the journal, or
    record a run as complete whose earlier events were never written)."""
    todo: list[Chunk] = []
    failures: dict[Journal, StoreError] = {}
    for chunk in batch:
        error = chunk.journal.refused
        if error is None:
            todo.append(chunk)
        else:
            failures[chunk.journal] = error
    return todo, failures


def refuse(failures: dict[Journal, StoreError]) -> None:
    """Mark the runs of ``failures`` refused, at once, by the writer that failed them (the loop
    hears of it later, when the batch is settled)."""
    for journal, error in failures.items():
        if journal.refused is None:
            journal.refused = error


class Journal:
    """The append side of one run's journal (created by :meth:`Store.journal`).

    Attributes:
        appended: the last ``seq`` handed to the store.
        committed: the last ``seq`` the store has committed.
        error: why writing failed, once the loop has heard of it (later appends are refused).
        refused: why writing failed, set by the writer the moment it failed (no later chunk of
            this run is written, see :func:`writable`).
        on_commit: called on the loop after each commit that moved ``committed``.
        on_error: called once on the loop when writing fails.
    """

    __slots__ = (
        "_chunk",
        "_encoded",
        "_store",
        "_touched",
        "_waiters",
        "appended",
        "committed",
        "detached",
        "error",
        "on_commit",
        "on_error",
        "owner",
        "refused",
        "run_id",
    )

    def __init__(self, store: Store, run_id: str, owner: str, seq: int) -> None:
        self._store = store
        self.run_id = run_id
        self.owner = owner
        self.appended = seq
        self.committed = seq
        self.error: StoreError | None = None
        self.refused: StoreError | None = None
        self.detached = False
        self.on_commit: Callable[[], None] | None = None
        self.on_error: Callable[[StoreError], None] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._chunk: Chunk | None = None
        self._encoded = LastEncoded()
        self._touched = float("-inf")

    def append(
        self,
        seq: int,
        timestamp: float,
        task_name: str | None,
        task_run_id: str | None,
        map_index: int | None,
        old: State,
        new: State,
        checkpoint: bool = False,
    ) -> None:
        """Queue one transition (the fields of its ``StateChange``) for the next commit; with
        ``checkpoint``, its new state's result is written too. Never blocks."""
        if self.error is not None or self.detached:
            return
        chunk = self._chunk
        if chunk is None:
            chunk = self._chunk = Chunk(self, seq)
            self._store._enqueue(self)
        rows = chunk.rows
        rows.append(
            encode_event(seq, timestamp, task_name, task_run_id, map_index, old, new, self._encoded)
        )
        chunk.last = self.appended = seq
        if task_name is None:
            chunk.flow_state = new
        if checkpoint and new.location is not None:
            chunk.values.append((new.location, new.result, task_name))
        if len(rows) >= CHUNK_ROWS:
            # A long tick (thousands of tasks that never wait): the writer starts on this
            # part now, while the loop goes on, instead of taking it all at the end.
            self._store._flush()

    def push(self) -> None:
        """Hand what was appended to the store now rather than when the loop comes round (a
        run that waits for nothing else but this commit calls it)."""
        if self._chunk is not None:
            self._store._flush()

    def take(self, now: float) -> Chunk | None:
        """What was appended since the last call (the store's batching calls this at
        ``now``, a ``time.monotonic()`` reading)."""
        chunk, self._chunk = self._chunk, None
        if self.refused is not None:
            return None  # never written: its run failed already
        if chunk is not None and (
            chunk.flow_state is not None or now >= self._touched + TOUCH_EVERY
        ):
            chunk.touch = True
            self._touched = now
        return chunk

    def detach(self) -> None:
        """Write nothing more (what was appended is still committed): the run stops here as
        far as the store knows, and another runtime may resume it."""
        self.detached = True

    @property
    def pending(self) -> bool:
        """Whether appended events are not committed yet."""
        return self.committed < self.appended and self.error is None

    async def flush(self) -> None:
        """Wait until everything appended so far is committed.

        Raises:
            StoreError: the store could not write this run's journal.
        """
        if self.pending:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append((self.appended, fut))
            await fut
        if self.error is not None:
            raise self.error

    def _settle(self, seq: int, error: StoreError | None) -> None:
        if error is not None:
            if self.error is None:
                self.error = error
                if self.on_error is not None:
                    self.on_error(error)
        elif seq > self.committed:
            self.committed = seq
            if self.on_commit is not None:
                self.on_commit()
        if self._waiters:
            keep = []
            for want, fut in self._waiters:
                if self.error is not None or want <= self.committed:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((want, fut))
            self._waiters = keep
