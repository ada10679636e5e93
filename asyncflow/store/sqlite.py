"""``SQLiteStore``: the embedded run store (stdlib ``sqlite3``, WAL mode, a writer thread).

Every read and every write that may wait runs on one dedicated thread, so the event loop never
waits on the disk or on a lock. The journal reaches the database in batches (one per event-loop
tick, see :class:`~asyncflow.store.base.Store`); the thread merges the batches that queued up
while it was committing, so under load one commit carries many ticks' worth of events.

A small batch that cannot wait is committed where it was made instead, on the loop's thread,
which saves the two thread hand-offs of a commit (they cost more than the commit itself: a
chain of tasks makes one commit per link). "Cannot wait" holds only when all of this does:
``synchronous="normal"`` (a commit writes the WAL and never syncs), nothing is queued for the
thread (commits stay in order), the batch is small and its checkpointed values are small
scalars, the database lock is free at once (that connection has no busy timeout: when another
connection holds the lock the batch goes to the thread), and no WAL checkpoint is due (the
thread runs checkpoints and the write after each, the only ones that sync). An inline commit
that took longer than :data:`SLOW_INLINE` sends the next ones to the thread for
:data:`SLOW_PAUSE` seconds. ``SQLiteStore(path, inline=False)`` always uses the thread.

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

from .._log import get_logger
from . import _sqlite_sql as sql
from ._sqlite_sql import SCHEMA_VERSION
from .base import Store, StoreError
from .journal import merged, refuse, writable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import StateChange
    from .base import Chunk, Journal, RunRecord

__all__ = ("SLOW_INLINE", "SLOW_PAUSE", "SQLiteStore")

#: Seconds an inline commit may take before the next ones go to the writer thread.
SLOW_INLINE = 0.002
#: Seconds the commits go to the writer thread after a slow inline one.
SLOW_PAUSE = 10.0
#: An inline batch at most this many characters of events.
INLINE_MAX_TEXT = 64 * 1024
#: A checkpointed value committed inline: a scalar of at most this many characters or bytes.
INLINE_MAX_VALUE = 4096
#: Checkpoint the WAL after about this many pages were written to it (SQLite's default).
CHECKPOINT_PAGES = 1000

_log = get_logger("asyncflow.store")
_INLINE_VALUE_TYPES = (type(None), bool, int, float, str, bytes)

_Call = tuple[
    "Callable[..., Any]", tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"
]
#: A journal batch for the thread: its chunks, the loop to settle on, checkpoint after it.
_Batch = tuple[list["Chunk"], asyncio.AbstractEventLoop, bool]


def _small_values(batch: list[Chunk]) -> bool:
    """Whether every value ``batch`` checkpoints is a small scalar (cheap to pickle here)."""
    for c in batch:
        for _, value, _ in c.values:
            if type(value) not in _INLINE_VALUE_TYPES:
                return False
            if isinstance(value, str | bytes) and len(value) > INLINE_MAX_VALUE:
                return False
    return True


class SQLiteStore(Store):
    """Runs, their journals and checkpointed results in one SQLite database file.

    Args:
        path: the database file (created with its schema when missing; an older schema is
            migrated on open).
        synchronous: ``"normal"`` (survives a process crash) or ``"full"`` (survives a power
            cut; an ``fsync`` per commit).
        timeout: seconds to wait for a lock held by another connection before failing.
        inline: commit small journal batches on the event loop's thread when that cannot
            wait (see the module's documentation; never with ``synchronous="full"``, whose
            commits sync); ``False``: always on the writer thread.

    Raises:
        ValueError: an unknown ``synchronous`` mode.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["normal", "full"] = "normal",
        timeout: float = 5.0,
        inline: bool = True,
    ) -> None:
        super().__init__()
        if synchronous not in ("normal", "full"):
            raise ValueError(f'synchronous must be "normal" or "full", got {synchronous!r}')
        self.path = os.fspath(path)
        self.where = self.path
        self.synchronous = synchronous
        self.timeout = timeout
        self.inline = inline and synchronous == "normal"
        self._queue: queue.SimpleQueue[_Call | _Batch | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._inline_conn: sqlite3.Connection | None = None
        self._in_flight = 0  # journal batches handed to the thread, not settled yet
        self._pages = 0  # WAL pages written since the last checkpoint (about)
        self._inline_after = 0.0  # monotonic time before which nothing is committed inline
        #: How many commits of the journal were made on the loop's thread (``"inline"``) and
        #: on the writer thread (``"thread"``, where one commit may carry several batches).
        self.commits = {"inline": 0, "thread": 0}

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
            if len(item) == 3:
                # A batch: merge every batch already queued behind it into one commit.
                chunks, loop, checkpoint = item
                chunks = list(chunks)
                n = 1
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is not None and len(more) == 3 and more[1] is loop:
                        chunks.extend(more[0])
                        checkpoint = checkpoint or more[2]
                        n += 1
                    else:
                        todo.append(more)
                        break
                chunks = merged(chunks)
                try:
                    failures = self._commit(self._db, chunks)
                except Exception as exc:
                    failures = self._failed(chunks, exc)
                loop.call_soon_threadsafe(self._settle, chunks, failures)
                if checkpoint:
                    self._checkpoint()
                # Only now may the loop commit again (after the write that follows a checkpoint).
                loop.call_soon_threadsafe(self._done_on_thread, n)
                continue
            fn, args, loop, fut = item
            try:
                result = fn(*args)
            except BaseException as exc:
                loop.call_soon_threadsafe(_fail, fut, self._error(exc))
            else:
                loop.call_soon_threadsafe(_succeed, fut, result)
        for conn in (self._conn, self._inline_conn):
            if conn is not None:
                conn.close()
        self._conn = self._inline_conn = None

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

    def _open_conn(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
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
        conn = self._open_conn(self.timeout)
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
            self._inline_conn = self._open_conn(0.0) if self.inline else None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _open(self) -> None:
        self._queue = queue.SimpleQueue()
        self._in_flight = 0
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

    # -- the journal ------------------------------------------------------------------------

    def _write(self, batch: list[Chunk]) -> None:
        sizes = [sum(map(len, c.rows)) for c in batch]
        self._pages += sum(2 + size // 4096 for size in sizes)  # about: WAL pages written
        checkpoint = self._pages >= CHECKPOINT_PAGES
        if (
            self._inline_conn is not None
            and not checkpoint
            and self._in_flight == 0
            and sum(sizes) <= INLINE_MAX_TEXT
            and _small_values(batch)
            and time.monotonic() >= self._inline_after
        ):
            failures = self._write_inline(batch)
            if failures is not None:
                self.commits["inline"] += 1
                self._settle(batch, failures)
                return
        if checkpoint:
            self._pages = 0
        self._in_flight += 1
        self._queue.put((batch, asyncio.get_running_loop(), checkpoint))

    def _write_inline(self, batch: list[Chunk]) -> dict[Journal, StoreError] | None:
        """Commit ``batch`` on this thread; ``None`` when the lock is taken (nothing written)."""
        assert self._inline_conn is not None
        begin = time.monotonic()
        try:
            failures = self._commit(self._inline_conn, batch)
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None  # another connection writes: the thread waits for it
            return self._failed(batch, exc)
        except Exception as exc:
            return self._failed(batch, exc)
        took = time.monotonic() - begin
        if took > SLOW_INLINE:
            self._inline_after = time.monotonic() + SLOW_PAUSE
            _log.debug(
                "a commit on the loop was slow: the next ones go to the writer thread",
                path=self.path,
                took_ms=round(took * 1e3, 2),
                for_s=SLOW_PAUSE,
            )
        return failures

    def _done_on_thread(self, n: int) -> None:
        self._in_flight -= n
        self.commits["thread"] += 1

    # -- on the writer thread ---------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

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
        result: RunRecord | None = await self._call(lambda: sql.get(self._db, self, run_id))
        return result

    async def _list_runs(
        self, flow: str | None, states: list[str] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        result: list[RunRecord] = await self._call(
            lambda: sql.list_runs(self._db, self, flow, states, limit, before)
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
            lambda: sql.claim(self._db, run_id, owner, expected, lease_until)
        )
        return result

    async def _renew(self, owner: str, lease_until: float) -> None:
        await self._call(lambda: sql.renew(self._db, owner, lease_until))

    async def _release(self, owner: str, run_ids: list[str]) -> None:
        await self._call(lambda: sql.release(self._db, owner, run_ids))

    async def _unfinished(self, flows: list[str]) -> list[RunRecord]:
        result: list[RunRecord] = await self._call(lambda: sql.unfinished(self._db, self, flows))
        return result


def _succeed(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
