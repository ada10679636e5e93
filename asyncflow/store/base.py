"""What every run store shares: records, errors, owners, and the group-committed journal.

A :class:`Store` keeps runs (:class:`RunRecord`), the journal of every ``StateChange`` of each
run, and checkpointed results. The engine appends events through a per-run :class:`Journal`
without waiting (each is encoded to JSON as it is appended); the store gathers everything
appended during one event-loop tick into one batch, a :class:`Chunk` per run, and hands it to
its writer (see each store), which commits it in one transaction. The journal then tells the
run which ``seq`` is committed, so the scheduler can release a task's downstream tasks only once
the upstream's final state is durable, without ever waiting on the loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

import attrs

from ..exceptions import AsyncflowError
from ._codec import (
    LastEncoded,
    decode_state,
    dump_value,
    encode_chunk,
    encode_event,
    load_value,
    state_names,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence

    from ..events import StateChange
    from ..states import State

__all__ = (
    "Chunk",
    "merged",
    "FlowMismatch",
    "Journal",
    "OwnershipLost",
    "RunNotFound",
    "RunRecord",
    "Store",
    "StoreError",
    "owner_alive",
    "record_of",
    "process_owner",
)


class StoreError(AsyncflowError, RuntimeError):
    """The store cannot be opened, read or written (the message names the path or run)."""


class RunNotFound(StoreError, LookupError):
    """No run with that id is in the store."""


class FlowMismatch(StoreError, ValueError):
    """``resume=`` names a run made by another flow, or by a different graph of this one."""


class OwnershipLost(StoreError):
    """Another owner took the run over (its lease expired): this one may not write to it."""


@attrs.frozen
class RunRecord:
    """One run as the store keeps it.

    Attributes:
        id: the run's id.
        flow_name: the flow's name.
        flow_version: a hash of the flow's graph
            (see :func:`asyncflow.runtime.durable.flow_version`).
        parameters: the run's parameters.
        state: the flow run's last committed state.
        created: when the run was created (seconds since the epoch).
        updated: when the run was last written (while it runs, to within
            :data:`TOUCH_EVERY` seconds).
        owner: the runtime or process that runs it, or ``None`` when nobody does.
        lease_until: until when the owner's claim holds without renewal (``None``: while the
            owning process lives).
    """

    id: str
    flow_name: str
    flow_version: str
    parameters: dict[str, Any]
    state: State
    created: float
    updated: float
    owner: str | None
    lease_until: float | None = None


def record_of(row: Sequence[Any], store: Store) -> RunRecord:
    """The :class:`RunRecord` of a ``runs`` row (columns as in ``_RUN_COLUMNS``)."""
    return RunRecord(
        id=row[0],
        flow_name=row[1],
        flow_version=row[2],
        parameters=load_value(row[3]),
        state=decode_state(row[4], store),
        created=row[5],
        updated=row[6],
        owner=row[7],
        lease_until=row[8],
    )


# -- owners -------------------------------------------------------------------------------

_live_owners: set[str] = set()
_process_owner: tuple[int, str] | None = None


def new_owner() -> str:
    """A fresh owner token: ``host:pid:random``, remembered as live in this process."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    _live_owners.add(owner)
    return owner


def retire_owner(owner: str) -> None:
    """``owner`` no longer runs anything in this process."""
    _live_owners.discard(owner)


def process_owner() -> str:
    """The owner of runs started by ``run_async(store=...)`` in this process."""
    global _process_owner
    pid = os.getpid()
    if _process_owner is None or _process_owner[0] != pid:  # a forked child is another owner
        _process_owner = (pid, new_owner())
    return _process_owner[1]


def owner_alive(owner: str | None, lease_until: float | None, now: float | None = None) -> bool:
    """Whether ``owner`` may still be running its run.

    A released run (no owner) and an expired lease are not; an owner on this host is alive
    while its process is (and, in this very process, while it has not retired).
    """
    if owner is None:
        return False
    if lease_until is not None and lease_until < (time.time() if now is None else now):
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: only its lease tells
    pid = int(pid_text)
    if pid == os.getpid():
        return owner in _live_owners
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


# -- the journal --------------------------------------------------------------------------

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
        combined.flow_state = chunk.flow_state or previous.flow_state
        combined.touch = previous.touch or chunk.touch
        combined.values = previous.values + chunk.values
        by_run[chunk.journal] = combined
    return list(by_run.values())


class Journal:
    """The append side of one run's journal (created by :meth:`Store.journal`).

    Attributes:
        appended: the last ``seq`` handed to the store.
        committed: the last ``seq`` the store has committed.
        error: why writing failed, once it has (later appends are refused).
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
        "run_id",
    )

    def __init__(self, store: Store, run_id: str, owner: str, seq: int) -> None:
        self._store = store
        self.run_id = run_id
        self.owner = owner
        self.appended = seq
        self.committed = seq
        self.error: StoreError | None = None
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


class Store:
    """Base class of the run stores; an async context manager.

    Subclasses implement the ``_`` methods against their database; this class batches the
    journal (one batch per event-loop tick) and settles the journals when a batch is written.
    """

    #: The name used in messages (a path or a DSN without its password).
    where: str = "store"

    def __init__(self) -> None:
        self._dirty: list[Journal] = []
        self._opened = False
        self._open_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where}>"

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the store (create or migrate its schema); done on first use if not called."""
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self._open()
                self._opened = True

    async def aclose(self) -> None:
        """Write what is queued, then close the store."""
        if not self._opened:
            return
        if self._dirty:
            self._flush()
        await self._close()
        self._opened = False

    # -- reads ------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``.

        Raises:
            RunNotFound: no such run.
        """
        await self.open()
        record = await self._get_run(run_id)
        if record is None:
            raise RunNotFound(f"no run with id {run_id!r} in {self.where}")
        return record

    async def list_runs(
        self,
        flow: str | None = None,
        state: type[State] | str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first by creation (insertion order breaks ties).

        Args:
            flow: only runs of the flow with this name.
            state: only runs whose state is this class (or a subclass), or has this name.
            limit: at most this many.
            before: the id of the last record of the previous page.

        Raises:
            RunNotFound: ``before`` names no run.
            ValueError: ``limit`` is not positive, or ``state`` names no state class.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        names = state_names(state) if state is not None else None
        await self.open()
        if before is not None:
            await self.get_run(before)
        return await self._list_runs(flow, names, limit, before)

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[StateChange]:
        """The committed events of run ``run_id`` with ``seq > after``, in order (a snapshot).

        Raises:
            RunNotFound: no such run.
        """
        record = await self.get_run(run_id)
        for event in await self._events(record, after):
            yield event

    async def results(self, locations: Iterable[str]) -> dict[str, Any]:
        """The checkpointed values at ``locations`` (those that exist)."""
        await self.open()
        return await self._results(list(locations))

    def read_values(self, locations: list[str]) -> dict[str, Any]:
        """:meth:`results` for synchronous code (it blocks: call it from a worker thread)."""
        raise NotImplementedError

    async def wait_change(self, run_id: str, timeout: float) -> None:
        """Return when run ``run_id`` may have new committed events, at the latest after
        ``timeout`` seconds (this store polls: it returns after ``timeout``; a
        :class:`~asyncflow.store.PostgresStore` returns as soon as a commit is announced)."""
        await asyncio.sleep(timeout)

    # -- what runs and runtimes do ----------------------------------------------------------

    async def create_run(self, record: RunRecord) -> None:
        """Insert a new run (committed when this returns).

        Raises:
            StoreError: a run with that id exists.
        """
        await self.open()
        await self._create_run(record)

    async def claim(
        self, run_id: str, owner: str, expected: str | None, lease_until: float | None
    ) -> bool:
        """Make ``owner`` the run's owner if its owner is still ``expected``; ``False`` if not."""
        await self.open()
        return await self._claim(run_id, owner, expected, lease_until)

    async def renew(self, owner: str, lease_until: float) -> None:
        """Extend the lease of every unfinished run ``owner`` holds."""
        await self.open()
        await self._renew(owner, lease_until)

    async def release(self, owner: str, run_ids: Iterable[str]) -> None:
        """Give up ``owner``'s claim on ``run_ids`` (another runtime may resume them)."""
        await self.open()
        await self._release(owner, list(run_ids))

    async def unfinished(self, flows: Iterable[str]) -> list[RunRecord]:
        """The runs of ``flows`` that have not reached a final state, oldest first."""
        await self.open()
        return await self._unfinished(list(flows))

    def journal(self, run_id: str, owner: str, seq: int = 0) -> Journal:
        """The append side of run ``run_id``'s journal, whose last ``seq`` is ``seq``."""
        return Journal(self, run_id, owner, seq)

    # -- batching ---------------------------------------------------------------------------

    def _enqueue(self, journal: Journal) -> None:
        """``journal`` has a chunk to write: flush with the others when the loop comes round."""
        if not self._dirty:
            # Everything appended until the loop comes round again goes in one commit.
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.append(journal)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        now = time.monotonic()
        batch = [c for c in (j.take(now) for j in dirty) if c is not None]
        if batch:
            try:
                self._write(batch)
            except Exception as exc:  # never a batch lost with nobody told: its runs fail
                runs = sorted({c.journal.run_id for c in batch})
                error = StoreError(
                    f"{self.where}: the journal of run(s) {runs} could not be written: {exc!r}"
                )
                error.__cause__ = exc
                self._settle(batch, {c.journal: error for c in batch})

    def _settle(self, batch: list[Chunk], failures: Mapping[Journal, StoreError]) -> None:
        """Called on the loop once ``batch`` is written (or failed for some runs)."""
        for chunk in batch:
            chunk.journal._settle(chunk.last, failures.get(chunk.journal))

    # -- what a store implements ------------------------------------------------------------

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def _write(self, batch: list[Chunk]) -> None:
        """Start writing ``batch`` in one transaction; call :meth:`_settle` on the loop after."""
        raise NotImplementedError

    async def _get_run(self, run_id: str) -> RunRecord | None:
        raise NotImplementedError

    async def _list_runs(
        self, flow: str | None, states: list[str] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        raise NotImplementedError

    async def _events(self, record: RunRecord, after: int) -> list[StateChange]:
        raise NotImplementedError

    async def _results(self, locations: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    async def _create_run(self, record: RunRecord) -> None:
        raise NotImplementedError

    async def _claim(
        self, run_id: str, owner: str, expected: str | None, lease_until: float | None
    ) -> bool:
        raise NotImplementedError

    async def _renew(self, owner: str, lease_until: float) -> None:
        raise NotImplementedError

    async def _release(self, owner: str, run_ids: list[str]) -> None:
        raise NotImplementedError

    async def _unfinished(self, flows: list[str]) -> list[RunRecord]:
        raise NotImplementedError


#: The state names that count as unfinished (a run in one of them may be resumed).
UNFINISHED = [n for n in state_names("State") if n not in state_names("Finished")]
