"""What every run store shares: the record of a run, and the group-committed journal's batching.

A :class:`Store` keeps runs (:class:`RunRecord`), the journal of every ``StateChange`` of each
run, and checkpointed results. The engine appends events through a per-run
:class:`~asyncflow.store.journal.Journal` without waiting; the store gathers everything appended
during one event-loop tick into one batch, a :class:`~asyncflow.store.journal.Chunk` per run,
and hands it to its writer (see each store), which commits it in one transaction. The journal
then tells the run which ``seq`` is committed, so the scheduler can release a task's downstream
tasks only once the upstream's final state is durable, without ever waiting on the loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import attrs

from ._codec import decode_state, dump_value, encode_state, load_value, state_names
from .errors import FlowMismatch, OwnershipLost, RunNotFound, StoreError
from .journal import Chunk, Journal, merged, refuse
from .owners import new_owner, owner_alive, process_owner, retire_owner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

    from ..events import StateChange
    from ..states import State

__all__ = (
    "RUN_COLUMNS",
    "UNFINISHED",
    "Chunk",
    "FlowMismatch",
    "Journal",
    "OwnershipLost",
    "RunNotFound",
    "RunRecord",
    "Store",
    "StoreError",
    "merged",
    "new_owner",
    "owner_alive",
    "process_owner",
    "record_of",
    "retire_owner",
    "row_of",
)


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


#: The columns of a run's row that make its :class:`RunRecord` (both databases name them so).
RUN_COLUMNS = "id, flow_name, flow_version, parameters, state, created, updated, owner, lease_until"


def row_of(r: RunRecord) -> tuple[Any, ...]:
    """The values of :data:`RUN_COLUMNS` for ``r``, then its state's class name."""
    return (
        r.id,
        r.flow_name,
        r.flow_version,
        dump_value(r.parameters),
        encode_state(r.state),
        r.created,
        r.updated,
        r.owner,
        r.lease_until,
        type(r.state).__name__,
    )


def record_of(row: Sequence[Any], store: Store) -> RunRecord:
    """The :class:`RunRecord` of a row of :data:`RUN_COLUMNS`."""
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


class Store:
    """Base class of the run stores; an async context manager.

    Subclasses implement the ``_`` methods against their database; this class batches the
    journal (one batch per event-loop tick) and settles the journals when a batch is written.
    """

    #: The name used in messages (a path or a DSN without its password).
    where: str = "store"

    def __init__(self) -> None:
        self._dirty: list[Journal] = []
        self._scheduled = False
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
        self._dirty.append(journal)
        if not self._scheduled:
            # Everything appended until the loop comes round again goes in one commit (one
            # callback at a time: a run that pushes its journal itself schedules no more).
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        self._flush()

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
                failures: dict[Journal, StoreError] = {c.journal: error for c in batch}
                refuse(failures)
                self._settle(batch, failures)

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
        """Start writing ``batch`` (at most one chunk per run) in one transaction; call
        :meth:`_settle` on the loop after. A writer that merges batches merges each run's
        chunks too (:func:`~asyncflow.store.journal.merged`), so a run's rows never skip one
        that failed."""
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
