"""``SQLiteStore``: the embedded run store (stdlib ``sqlite3``, WAL mode, one writer thread).

Every database call runs on one dedicated thread that owns the connection, so the event loop
never waits on the disk. The journal reaches that thread in batches (one per event-loop tick,
see :class:`~asyncflow.store.base.Store`); the thread also merges the batches that queued up
while it was committing, so under load one commit carries many ticks' worth of events.

``synchronous="normal"`` (the default) survives a crash of the process: a committed
transaction is in the write-ahead log before the commit returns. ``"full"`` also syncs the log
to the disk at every commit, which survives a power cut at the price of an ``fsync`` per commit.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from ._codec import decode_chunk, dump_value, encode_chunk, encode_state
from .base import (
    SCHEMA_VERSION,
    UNFINISHED,
    OwnershipLost,
    RunRecord,
    Store,
    StoreError,
    record_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import StateChange
    from .base import BatchItem, Journal

__all__ = ("SQLiteStore",)

_MIGRATIONS = [
    # version 1
    """
    CREATE TABLE runs (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        flow_name TEXT NOT NULL,
        flow_version TEXT NOT NULL,
        parameters BLOB NOT NULL,
        state TEXT NOT NULL,
        state_type TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        owner TEXT,
        lease_until REAL
    );
    CREATE INDEX runs_by_created ON runs (created, n);
    CREATE INDEX runs_by_flow ON runs (flow_name, created, n);
    CREATE TABLE journal (
        run_id TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        events TEXT NOT NULL,
        PRIMARY KEY (run_id, first_seq)
    ) WITHOUT ROWID;
    CREATE TABLE results (
        location TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
]
assert len(_MIGRATIONS) == SCHEMA_VERSION

_RUN_COLUMNS = (
    "id, flow_name, flow_version, parameters, state, created, updated, owner, lease_until"
)
_Call = tuple[
    "Callable[..., Any]", tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"
]
_Batch = tuple[list["BatchItem"], asyncio.AbstractEventLoop]


def checkpoints(events: list[tuple[StateChange, bool]]) -> list[tuple[str, bytes]]:
    """The ``(location, pickled value)`` pairs a run's part of a batch writes.

    Raises:
        StoreError: a value cannot be pickled (the message names the task).
    """
    out = []
    for event, checkpoint in events:
        state = event.new_state
        if checkpoint and state.location is not None:
            try:
                out.append((state.location, dump_value(state.result)))
            except Exception as exc:
                raise StoreError(
                    f"the result of task {event.task_name!r} (run {event.run_id!r}) cannot be "
                    f"checkpointed: {exc!r}; give the task checkpoint=False or a Result of its own"
                ) from exc
    return out


def chunk_of(journal: Journal, events: list[tuple[StateChange, bool]]) -> tuple[int, int, str]:
    """One journal row of a run's part of a batch: first seq, last seq, the events' JSON."""
    text = encode_chunk([e for e, _ in events], journal.encoded)
    return events[0][0].seq, events[-1][0].seq, text


def group(batch: list[BatchItem]) -> dict[Journal, list[tuple[StateChange, bool]]]:
    """The batch's events per run, in order."""
    per_run: dict[Journal, list[tuple[StateChange, bool]]] = {}
    for journal, event, checkpoint in batch:
        per_run.setdefault(journal, []).append((event, checkpoint))
    return per_run


class SQLiteStore(Store):
    """Runs, their journals and checkpointed results in one SQLite database file.

    Args:
        path: the database file (created with its schema when missing; an older schema is
            migrated on open).
        synchronous: ``"normal"`` (survives a process crash) or ``"full"`` (survives a power
            cut; an ``fsync`` per commit).
        timeout: seconds to wait for a lock held by another connection before failing.

    Raises:
        ValueError: an unknown ``synchronous`` mode.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["normal", "full"] = "normal",
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        if synchronous not in ("normal", "full"):
            raise ValueError(f'synchronous must be "normal" or "full", got {synchronous!r}')
        self.path = os.fspath(path)
        self.where = self.path
        self.synchronous = synchronous
        self.timeout = timeout
        self._queue: queue.SimpleQueue[_Call | _Batch | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    # -- the writer thread ------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put((fn, args, loop, fut))
        return await fut

    def _serve(self) -> None:
        """The writer thread: run calls and write batches until told to stop."""
        todo: deque[_Call | _Batch | None] = deque()
        while True:
            item = todo.popleft() if todo else self._queue.get()
            if item is None:
                break
            if len(item) == 2:
                # A batch: merge every batch already queued behind it into one commit.
                items, loop = item
                items = list(items)
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is not None and len(more) == 2 and more[1] is loop:
                        items.extend(more[0])
                    else:
                        todo.append(more)
                        break
                failures = self._write_batch(items)
                loop.call_soon_threadsafe(self._settle, items, failures)
                continue
            fn, args, loop, fut = item
            try:
                result = fn(*args)
            except BaseException as exc:
                loop.call_soon_threadsafe(_fail, fut, self._error(exc))
            else:
                loop.call_soon_threadsafe(_succeed, fut, result)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, StoreError) or not isinstance(exc, sqlite3.Error):
            return exc
        text = str(exc)
        if "locked" in text or "busy" in text:
            text = f"the database is locked by another connection (waited {self.timeout:g} s)"
        err = StoreError(f"SQLite store {self.path}: {text}")
        err.__cause__ = exc
        return err

    def _connect(self) -> None:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite store {self.path} has schema version {version}, newer than this "
                    f"asyncflow's {SCHEMA_VERSION}: upgrade asyncflow to open it"
                )
            for v in range(version, SCHEMA_VERSION):
                conn.executescript(
                    f"BEGIN IMMEDIATE; {_MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;"
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _open(self) -> None:
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name=f"asyncflow-sqlite {self.path}", daemon=True
        )
        self._thread.start()
        try:
            await self._call(self._connect)
        except BaseException:
            await self._close()
            raise

    async def _close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _write(self, batch: list[BatchItem]) -> None:
        self._queue.put((batch, asyncio.get_running_loop()))

    # -- on the writer thread ---------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def _write_batch(self, batch: list[BatchItem]) -> dict[Journal, StoreError]:
        conn = self._db
        failures: dict[Journal, StoreError] = {}
        per_run = group(batch)
        try:
            conn.execute("BEGIN IMMEDIATE")
            now = time.time()
            for journal, events in per_run.items():
                try:
                    pairs = checkpoints(events)
                except StoreError as exc:
                    failures[journal] = exc
                    continue
                flow_states = [e.new_state for e, _ in events if e.task_name is None]
                if flow_states:
                    cur = conn.execute(
                        "UPDATE runs SET updated = ?, state = ?, state_type = ? "
                        "WHERE id = ? AND owner = ?",
                        (
                            now,
                            encode_state(flow_states[-1]),
                            type(flow_states[-1]).__name__,
                            journal.run_id,
                            journal.owner,
                        ),
                    )
                else:
                    cur = conn.execute(
                        "UPDATE runs SET updated = ? WHERE id = ? AND owner = ?",
                        (now, journal.run_id, journal.owner),
                    )
                if cur.rowcount != 1:
                    failures[journal] = OwnershipLost(
                        f"run {journal.run_id!r} in {self.path} is no longer owned by "
                        f"{journal.owner!r}; its events were not written"
                    )
                    continue
                conn.execute(
                    "INSERT INTO journal VALUES (?, ?, ?, ?)",
                    (journal.run_id, *chunk_of(journal, events)),
                )
                if pairs:
                    conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", pairs)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            runs = sorted(j.run_id for j in per_run)
            error = self._error(exc)
            wrapped = StoreError(f"{error} (while writing the journal of run(s) {runs})")
            wrapped.__cause__ = exc
            return dict.fromkeys(per_run, wrapped)
        return failures

    def _q_get(self, run_id: str) -> RunRecord | None:
        row = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return record_of(row, self) if row is not None else None

    def _q_list(
        self, flow: str | None, states: list[str] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE 1 = 1"
        args: list[Any] = []
        if flow is not None:
            sql += " AND flow_name = ?"
            args.append(flow)
        if states is not None:
            sql += f" AND state_type IN ({', '.join('?' * len(states))})"
            args += states
        if before is not None:
            sql += " AND (created, n) < (SELECT created, n FROM runs WHERE id = ?)"
            args.append(before)
        sql += " ORDER BY created DESC, n DESC LIMIT ?"
        args.append(limit)
        return [record_of(r, self) for r in self._db.execute(sql, args).fetchall()]

    def _q_events(self, record: RunRecord, after: int) -> list[StateChange]:
        rows = self._db.execute(
            "SELECT events FROM journal WHERE run_id = ? AND last_seq > ? ORDER BY first_seq",
            (record.id, after),
        ).fetchall()
        return [
            e
            for (text,) in rows
            for e in decode_chunk(record.id, record.flow_name, text, self, after)
        ]

    def _q_results(
        self, locations: list[str], conn: sqlite3.Connection | None = None
    ) -> dict[str, Any]:
        from ._codec import load_value

        db = conn if conn is not None else self._db
        out: dict[str, Any] = {}
        for i in range(0, len(locations), 500):
            chunk = locations[i : i + 500]
            rows = db.execute(
                f"SELECT location, value FROM results WHERE location IN "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            out.update((loc, load_value(value)) for loc, value in rows)
        return out

    def read_values(self, locations: list[str]) -> dict[str, Any]:
        """The checkpointed values at ``locations``, read on a connection of the caller's own
        (it blocks: call it from a worker thread)."""
        conn = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            return self._q_results(locations, conn)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            conn.close()

    def _q_create(self, r: RunRecord) -> None:
        try:
            self._db.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, state_type) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                ),
            )
        except sqlite3.IntegrityError:
            raise StoreError(f"a run with id {r.id!r} already exists in {self.path}") from None

    def _q_claim(
        self, run_id: str, owner: str, expected: str | None, lease_until: float | None
    ) -> bool:
        cur = self._db.execute(
            "UPDATE runs SET owner = ?, lease_until = ? WHERE id = ? AND owner IS ?",
            (owner, lease_until, run_id, expected),
        )
        return cur.rowcount == 1

    def _q_renew(self, owner: str, lease_until: float) -> None:
        self._db.execute(
            f"UPDATE runs SET lease_until = ? WHERE owner = ? AND state_type IN "
            f"({', '.join('?' * len(UNFINISHED))})",
            (lease_until, owner, *UNFINISHED),
        )

    def _q_release(self, owner: str, run_ids: list[str]) -> None:
        self._db.executemany(
            "UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = ? AND id = ?",
            [(owner, i) for i in run_ids],
        )

    def _q_unfinished(self, flows: list[str]) -> list[RunRecord]:
        if not flows:
            return []
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE flow_name IN ({', '.join('?' * len(flows))}) "
            f"AND state_type IN ({', '.join('?' * len(UNFINISHED))}) ORDER BY created, n"
        )
        return [record_of(r, self) for r in self._db.execute(sql, [*flows, *UNFINISHED]).fetchall()]

    # -- the store interface ----------------------------------------------------------------

    async def _get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = await self._call(self._q_get, run_id)
        return result

    async def _list_runs(
        self, flow: str | None, states: list[str] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        result: list[RunRecord] = await self._call(self._q_list, flow, states, limit, before)
        return result

    async def _events(self, record: RunRecord, after: int) -> list[StateChange]:
        result: list[StateChange] = await self._call(self._q_events, record, after)
        return result

    async def _results(self, locations: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(self._q_results, locations)
        return result

    async def _create_run(self, record: RunRecord) -> None:
        await self._call(self._q_create, record)

    async def _claim(
        self, run_id: str, owner: str, expected: str | None, lease_until: float | None
    ) -> bool:
        result: bool = await self._call(self._q_claim, run_id, owner, expected, lease_until)
        return result

    async def _renew(self, owner: str, lease_until: float) -> None:
        await self._call(self._q_renew, owner, lease_until)

    async def _release(self, owner: str, run_ids: list[str]) -> None:
        await self._call(self._q_release, owner, run_ids)

    async def _unfinished(self, flows: list[str]) -> list[RunRecord]:
        result: list[RunRecord] = await self._call(self._q_unfinished, flows)
        return result


def _succeed(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
