"""``SQLiteStore``: the embedded run store (stdlib ``sqlite3``, WAL mode, a writer thread).

Every read and every write of the database runs on one dedicated thread, so the event loop
never waits on the disk or on a lock. The journal reaches the database in batches (one per
event-loop tick, see :class:`~asyncflow.store.base.Store`); the thread merges the batches that
queued up while it was committing, so under load one commit carries many ticks' worth of
events.

A small batch that a task waits for is made durable at once on the loop's thread instead, by
a copy into the store's memory-mapped run log (:mod:`asyncflow.store._runlog`), and the
thread commits it to the database with the next ones. That saves a downstream task the two
thread hand-offs and the commit (a chain of tasks makes one per link). A batch goes to the log
when all of this holds: ``synchronous="normal"``, no batch that bypassed the log is still on
its way to the database (the log never gets ahead of one), it changes no run's state or
``updated`` time, it is small and its checkpointed values are small (scalars, and lists,
tuples and dicts of a few hundred of them). Others wait for the database's commit.
``SQLiteStore(path, log=False)`` never uses the log.

``synchronous="normal"`` (the default) survives a crash of the process: a committed
transaction is in the write-ahead log, or a batch in the run log, before the commit returns.
``"full"`` also syncs the database's log to the disk at every commit, which survives a power
cut at the price of an ``fsync`` per commit.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from .._log import get_logger
from . import _runlog
from . import _sqlite_sql as sql
from ._runlog import RunLog
from ._sqlite_sql import SCHEMA_VERSION
from .base import Store, StoreError
from .journal import merged, refuse, writable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import StateChange
    from .base import Chunk, Journal, RunRecord

__all__ = ("SQLiteStore",)

#: Checkpoint the WAL after about this many pages were written to it (SQLite's default).
CHECKPOINT_PAGES = 1000

_log = get_logger("asyncflow.store")

_Call = tuple[
    "Callable[..., Any]", tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"
]
#: A journal batch for the thread: its chunks, the loop to settle on, whether it is in the run
#: log already.
_Batch = tuple[list["Chunk"], asyncio.AbstractEventLoop, bool]


class SQLiteStore(Store):
    """Runs, their journals and checkpointed results in one SQLite database file.

    Args:
        path: the database file (created with its schema when missing; an older schema is
            migrated on open).
        synchronous: ``"normal"`` (survives a process crash) or ``"full"`` (survives a power
            cut; an ``fsync`` per commit).
        timeout: seconds to wait for a lock held by another connection before failing.
        log: make small journal batches that a task waits for durable in the store's run
            log, on the event loop's thread (see the module's documentation; never with
            ``synchronous="full"``, whose commits sync); ``False``: every batch waits for the
            database's commit on the writer thread.

    Raises:
        ValueError: an unknown ``synchronous`` mode.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["normal", "full"] = "normal",
        timeout: float = 5.0,
        log: bool = True,
    ) -> None:
        super().__init__()
        if synchronous not in ("normal", "full"):
            raise ValueError(f'synchronous must be "normal" or "full", got {synchronous!r}')
        self.path = os.fspath(path)
        self.where = self.path
        self.synchronous = synchronous
        self.timeout = timeout
        self.log = log and synchronous == "normal"
        self._queue: queue.SimpleQueue[_Call | _Batch | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._runlog: RunLog | None = None
        self._in_flight = 0  # journal batches handed to the thread, not settled yet
        self._unlogged = 0  # of which, batches not in the run log
        self._pages = 0  # WAL pages written since the last checkpoint (about; on the thread)
        #: How many journal batches were made durable in the run log on the loop's thread
        #: (``"log"``), and how many commits the writer thread made (``"thread"``; one
        #: commit may carry several batches).
        self.commits = {"log": 0, "thread": 0}

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
            if isinstance(item[0], list):
                # A batch: merge every batch already queued behind it into one commit.
                chunks, loop, logged = item
                chunks = list(chunks)
                n = 1
                unlogged = int(not logged)
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is not None and isinstance(more[0], list) and more[1] is loop:
                        chunks.extend(more[0])
                        logged = logged or more[2]
                        unlogged += not more[2]
                        n += 1
                    else:
                        todo.append(more)
                        break
                chunks = merged(chunks)
                try:
                    failures = self._commit(self._db, chunks)
                except Exception as exc:
                    failures = self._failed(chunks, exc)
                loop.call_soon_threadsafe(
                    self._done_on_thread, chunks, failures, n, unlogged, logged and bool(failures)
                )
                self._pages += sum(2 + sum(map(len, c.rows)) // 4096 for c in chunks)  # about
                if self._pages >= CHECKPOINT_PAGES:
                    self._pages = 0
                    self._checkpoint()
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

    def _checkpoint(self) -> None:
        try:
            sql.after_checkpoint(self._db)
        except sqlite3.Error as exc:  # nothing is lost: the WAL keeps every commit
            _log.warning("WAL checkpoint failed", path=self.path, error=str(exc))

    def _commit(self, conn: sqlite3.Connection, chunks: list[Chunk]) -> dict[Journal, StoreError]:
        """Write what may be written of ``chunks``; the runs refused, with why."""
        todo, failures = writable(chunks)
        if todo:
            failures.update(sql.write_chunks(conn, todo, self.path))
        refuse(failures)
        return failures

    def _failed(self, chunks: list[Chunk], exc: Exception) -> dict[Journal, StoreError]:
        runs = sorted({c.journal.run_id for c in chunks})
        wrapped = StoreError(f"{self._error(exc)} (while writing the journal of run(s) {runs})")
        wrapped.__cause__ = exc
        failures = {c.journal: c.journal.refused or wrapped for c in chunks}
        refuse(failures)
        return failures

    def _error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, StoreError) or not isinstance(exc, sqlite3.Error):
            return exc
        text = str(exc)
        if "locked" in text or "busy" in text:
            text = f"the database is locked by another connection (waited {self.timeout:g} s)"
        err = StoreError(f"SQLite store {self.path}: {text}")
        err.__cause__ = exc
        return err

    def _open_conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the writer thread checkpoints
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> None:
        conn = self._open_conn()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite store {self.path} has schema version {version}, newer than this "
                    f"asyncflow's {SCHEMA_VERSION}: upgrade asyncflow to open it"
                )
            for v in range(version, SCHEMA_VERSION):
                conn.executescript(
                    f"BEGIN IMMEDIATE; {sql.MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;"
                )
            self._runlog = RunLog.create(self.path) if self.log else None
            _runlog.recover(conn, self.path, self._runlog)
        except BaseException:
            conn.close()
            runlog, self._runlog = self._runlog, None
            if runlog is not None:
                runlog.close()
            raise
        self._conn = conn

    async def _open(self) -> None:
        self._queue = queue.SimpleQueue()
        self._in_flight = self._unlogged = 0
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
        runlog, self._runlog = self._runlog, None
        if runlog is not None:
            runlog.close()

    # -- the journal ------------------------------------------------------------------------

    def _write(self, batch: list[Chunk]) -> None:
        runlog = self._runlog
        logged = runlog is not None and self._unlogged == 0 and runlog.append(batch)
        self._in_flight += 1
        self._unlogged += not logged
        self._queue.put((batch, asyncio.get_running_loop(), logged))
        if logged:
            self.commits["log"] += 1
            self._settle(batch, {})  # durable: what waited for it goes on

    def _done_on_thread(
        self,
        chunks: list[Chunk],
        failures: dict[Journal, StoreError],
        n: int,
        unlogged: int,
        logged_failed: bool,
    ) -> None:
        """On the loop: the thread committed ``n`` batches (``unlogged`` of them not logged)."""
        self._in_flight -= n
        self._unlogged -= unlogged
        self.commits["thread"] += 1
        runlog = self._runlog
        if runlog is not None:
            if logged_failed:
                runlog.keep()
            elif self._in_flight == 0:
                runlog.empty()
        self._settle(chunks, failures)

    # -- on the writer thread ---------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    @property
    def _recovered(self) -> sqlite3.Connection:
        """The connection, once the logs of stores that are gone are replayed (a read or an
        adoption then sees everything they made durable)."""
        _runlog.recover(self._db, self.path, self._runlog)
        return self._db

    def read_values(self, locations: list[str]) -> dict[str, Any]:
        """The checkpointed values at ``locations``, read on a connection of the caller's own
        (it blocks: call it from a worker thread)."""
        conn = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            return sql.results(conn, locations)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        finally:
            conn.close()

    # -- the store interface ----------------------------------------------------------------

    async def _get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = await self._call(lambda: sql.get(self._recovered, self, run_id))
        return result

    async def _list_runs(
        self, flow: str | None, states: list[str] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        result: list[RunRecord] = await self._call(
            lambda: sql.list_runs(self._recovered, self, flow, states, limit, before)
        )
        return result

    async def _events(self, record: RunRecord, after: int) -> list[StateChange]:
        result: list[StateChange] = await self._call(
            lambda: sql.events(self._db, self, record, after)
        )
        return result

    async def _results(self, locations: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(lambda: sql.results(self._db, locations))
        return result

    async def _create_run(self, record: RunRecord) -> None:
        await self._call(lambda: sql.create(self._db, self.path, record))

    async def _claim(
        self, run_id: str, owner: str, expected: str | None, lease_until: float | None
    ) -> bool:
        result: bool = await self._call(
            lambda: sql.claim(self._recovered, run_id, owner, expected, lease_until)
        )
        return result

    async def _renew(self, owner: str, lease_until: float) -> None:
        await self._call(lambda: sql.renew(self._db, owner, lease_until))

    async def _release(self, owner: str, run_ids: list[str]) -> None:
        await self._call(lambda: sql.release(self._db, owner, run_ids))

    async def _unfinished(self, flows: list[str]) -> list[RunRecord]:
        result: list[RunRecord] = await self._call(
            lambda: sql.unfinished(self._recovered, self, flows)
        )
        return result


def _succeed(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
