"""A SQLite store's run log: small journal batches made durable on the loop, with no syscall.

A chain of tasks needs one commit per link (a downstream task starts only once its upstream's
final state is durable), and a SQLite commit costs more than a link's own work: its locks, its
B-tree, its WAL frames, and on the writer thread two thread hand-offs. So a small batch is
first copied into this log, a file beside the database (``<database>-asyncflow-<token>.log``)
mapped into memory with ``MAP_SHARED``: the copy lands in the kernel's page cache, so it
survives a crash of the process exactly like a WAL commit with ``synchronous="normal"`` (and,
like it, not a power cut). It makes no system call, so the loop's thread never lets go of the
GIL for it. The store's writer thread still commits every batch to the database, in order and
many at a time; the log starts over once the database has all of it.

Each store holds an exclusive ``flock`` on its log while it is open. A log whose lock can be
taken belongs to a store that is gone (its process crashed): :func:`recover` replays it into
the database, fenced like any write (a run that changed owner is left alone) and skipping
what the database already has, then deletes it. Stores replay such logs when they open and
before they read runs or adopt them, so a crash loses nothing a task was told was durable.

The file has a fixed size (:data:`MAX_BYTES`, written with zeros when it is created, so no
write ever allocates). A record is ``<length> <crc32> <generation>`` (little-endian 32-bit
integers) and the pickled list of its rows, ``(run id, owner, first seq, last seq, events
JSON, [(location, pickled value)])``. The generation counts the times the log started over: a
reader stops at a zero length or at a record of another generation (what is left of an older
one), and warns at a record whose checksum fails (torn by the crash).
"""

from __future__ import annotations

import glob
import mmap
import os
import pickle
import struct
import sys
import uuid
import weakref
import zlib
from typing import TYPE_CHECKING, Any

from .._log import get_logger
from ._codec import dump_value
from ._sqlite_sql import INSERT_FENCED, INSERT_RESULT
from .errors import StoreError

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    import sqlite3

    from .journal import Chunk

__all__ = ("MAX_BYTES", "MAX_NODES", "MAX_TEXT", "MAX_VALUE", "RunLog", "recover")

#: The size of a log: a batch that does not fit in what is left waits for the database, and
#: the log starts over as soon as the writer has caught up.
MAX_BYTES = 256 * 1024
#: A batch is logged only with at most this many characters of events and pickled values ...
MAX_TEXT = 64 * 1024
#: ... and checkpointed values cheap to pickle on the loop: scalars (strings and bytes of at
#: most this many characters) ...
MAX_VALUE = 4096
#: ... and lists, tuples and dicts of them, at most this many items in all (JSON-like results).
MAX_NODES = 256

_log = get_logger("asyncflow.store")
_HEADER = struct.Struct("<III")
_SCALARS = (type(None), bool, int, float, str, bytes)

Row = tuple[str, str, int, int, str, list[tuple[str, bytes]]]


def _pattern(db_path: str) -> str:
    return f"{glob.escape(db_path)}-asyncflow-*.log"


def _small(value: Any) -> bool:
    """Whether ``value`` is cheap to pickle on the loop (see :data:`MAX_NODES`): looked at
    item by item, never more than :data:`MAX_NODES` of them."""
    todo = [value]
    budget = MAX_NODES
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is str or kind is bytes:
            if len(item) > MAX_VALUE:
                return False
        elif kind in _SCALARS:
            continue
        elif kind is list or kind is tuple:
            budget -= len(item)
            if budget < 0:
                return False
            todo.extend(item)
        elif kind is dict:
            budget -= 2 * len(item)
            if budget < 0:
                return False
            todo.extend(item.keys())
            todo.extend(item.values())
        else:
            return False
    return True


def _values(chunk: Chunk) -> list[tuple[str, bytes]] | None:
    """The chunk's checkpointed values pickled, or ``None`` when one is not small."""
    pairs = []
    for location, value, _ in chunk.values:
        if not _small(value):
            return None
        pairs.append((location, dump_value(value)))
    return pairs


class RunLog:
    """The log of one open store (see the module's documentation).

    Attributes:
        path: the log file.
        size: the bytes of records in it.
        kept: a batch it holds failed in the database: the log is kept for :func:`recover`
            and no more is appended to it.
    """

    __slots__ = ("__weakref__", "_fd", "_generation", "_map", "kept", "path", "size")

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self._map = mmap.mmap(fd, MAX_BYTES)
        self._generation = 1
        self.path = path
        self.size = 0
        self.kept = False
        _open_logs.add(self)

    @classmethod
    def create(cls, db_path: str) -> RunLog | None:
        """A new, locked, empty log beside ``db_path``; ``None`` where there cannot be one (no
        ``flock`` on this platform, or no room or no right to create it)."""
        if sys.platform == "win32":  # pragma: no cover - no flock: every batch waits
            return None
        while True:
            path = f"{db_path}-asyncflow-{uuid.uuid4().hex[:16]}.log"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:  # pragma: no cover - a 64-bit token drawn twice
                continue
            except OSError as exc:
                _log.debug("no run log: every commit waits for the database", error=str(exc))
                return None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:  # pragma: no cover - the race below
                same = False
            if not same:  # pragma: no cover - a race of a few microseconds
                os.close(fd)  # a recovering store took it for a dead one's: draw another
                continue
            try:
                zeros = bytes(MAX_BYTES)
                if os.write(fd, zeros) != MAX_BYTES:  # pragma: no cover - a disk full mid-way
                    raise OSError(f"short write to {path}")
                return cls(fd, path)
            except OSError as exc:
                os.unlink(path)
                os.close(fd)
                _log.debug("no run log: every commit waits for the database", error=str(exc))
                return None

    def append(self, batch: list[Chunk]) -> bool:
        """Make ``batch`` durable here; ``False`` when it is not for the log (too large, a
        run's state or time with it, a value that is not small, no room left): the batch then
        waits for the database."""
        if self.kept:
            return False
        rows: list[Row] = []
        size = 0
        for c in batch:
            if c.flow_state is not None or c.touch:
                return False  # a run's own record is written only by the database's commit
            size += sum(map(len, c.rows))
            if size > MAX_TEXT:
                return False
            pairs = _values(c) if c.values else []
            if pairs is None:
                return False
            size += sum(len(data) for _, data in pairs)
            if size > MAX_TEXT:
                return False
            j = c.journal
            rows.append((j.run_id, j.owner, c.first, c.last, c.text, pairs))
        payload = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
        start = self.size
        end = start + _HEADER.size + len(payload)
        if end > MAX_BYTES:
            return False
        generation = self._generation
        # The checksum starts from the generation: it covers both.
        header = _HEADER.pack(len(payload), zlib.crc32(payload, generation), generation)
        self._map[start:end] = header + payload
        self.size = end
        return True

    def keep(self) -> None:
        """A logged batch failed in the database: keep this log for :func:`recover`."""
        if not self.kept:
            self.kept = True
            _log.warning(
                "a logged batch failed in the database: the run log is kept and replayed "
                "when the store is next opened",
                path=self.path,
            )

    def empty(self) -> None:
        """The database has everything logged: start the log over."""
        if not self.kept and self.size:
            self._map[: _HEADER.size] = bytes(_HEADER.size)  # a reader stops here at once
            self._generation += 1
            self.size = 0

    def close(self) -> None:
        """Close the log (its store's writer has committed all of it): delete it unless it is
        :attr:`kept`."""
        _open_logs.discard(self)
        if self._fd < 0:
            return  # a forked child's copy, closed at the fork
        self._map.close()
        if not self.kept:
            os.unlink(self.path)
        os.close(self._fd)  # releases the lock: a kept log is now recoverable

    def _forget(self) -> None:
        """In a forked child: let go of the parent's log (never written or deleted here)."""
        self.kept = True
        self._map.close()
        os.close(self._fd)
        self._fd = -1


_open_logs: weakref.WeakSet[RunLog] = weakref.WeakSet()


def _forget_in_child() -> None:
    # A child forked while a store is open (a process pool, say) shares the lock of its log:
    # if the parent crashed while the child lives, its log would look alive, never replayed.
    for runlog in list(_open_logs):
        runlog._forget()
    _open_logs.clear()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_in_child)


def recover(conn: sqlite3.Connection, db_path: str, own: RunLog | None) -> None:
    """Replay into the database, then delete, every log beside ``db_path`` whose store is
    gone (its lock is free). Runs on the writer thread, with its connection."""
    if sys.platform == "win32":  # pragma: no cover - no run logs there
        return
    for path in sorted(glob.glob(_pattern(db_path))):
        if own is not None and path == own.path:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:  # pragma: no cover - a race with another store
            continue  # another store recovered it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its store is open
            if os.fstat(fd).st_nlink == 0:  # pragma: no cover - a race with another store
                continue  # recovered and deleted while we waited to look
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
            try:
                _replay(conn, _rows(data, path), path)
            except Exception as exc:
                raise StoreError(
                    f"the run log {path} could not be replayed into {db_path}: {exc!r} (move "
                    "it away to open the store without it: its runs then lose the events only "
                    "it holds)"
                ) from exc
            os.unlink(path)
        finally:
            os.close(fd)


def _rows(data: bytes, path: str) -> list[Row]:
    rows: list[Row] = []
    at = 0
    generation = None
    while at + _HEADER.size <= len(data):
        length, crc, gen = _HEADER.unpack_from(data, at)
        if length == 0 or (generation is not None and gen != generation):
            break  # the end, or what is left of an older generation
        payload = data[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload, gen) != crc:
            _log.warning("a run log ends with a torn record: replayed up to it", path=path)
            break
        generation = gen
        rows.extend(pickle.loads(payload))  # our own log, beside the user's own database
        at += _HEADER.size + length
    return rows


def _replay(conn: sqlite3.Connection, rows: list[Row], path: str) -> None:
    """Write ``rows`` the database does not have yet, in one transaction."""
    if not rows:
        return
    last: dict[str, int] = {}  # each run's last seq in the database, as replayed so far
    stopped: set[str] = set()  # runs none of whose later rows may be written
    written = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for run_id, owner, first, last_seq, text, pairs in rows:
            if run_id in stopped:
                continue
            done = last.get(run_id)
            if done is None:
                done = last[run_id] = _last_seq(conn, run_id)
            if first <= done:
                continue  # the database has it already
            if first > done + 1:
                _log.warning(
                    "a run log skips events of a run: its rows were not replayed",
                    path=path,
                    run_id=run_id,
                    missing_from=done + 1,
                )
                stopped.add(run_id)  # never write past a gap
                continue
            cur = conn.execute(INSERT_FENCED, (run_id, first, last_seq, text, run_id, owner))
            if cur.rowcount != 1:
                _log.warning(
                    "a run log's rows of a run another owner took were not replayed",
                    path=path,
                    run_id=run_id,
                    owner=owner,
                )
                stopped.add(run_id)
                continue
            if pairs:
                conn.executemany(INSERT_RESULT, pairs)
            last[run_id] = last_seq
            written += 1
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    _log.info("replayed a run log", path=path, rows=written, runs=len(last.keys() | stopped))


def _last_seq(conn: sqlite3.Connection, run_id: str) -> int:
    row: Any = conn.execute(
        "SELECT coalesce(max(last_seq), 0) FROM journal WHERE run_id = ?", (run_id,)
    ).fetchone()
    return int(row[0])
