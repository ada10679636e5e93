"""The SQLite store's schema and statements, as plain functions of a connection.

They run wherever the store calls them: on its writer thread, or (for a small journal batch that
cannot wait, see :mod:`asyncflow.store.sqlite`) on the event loop's thread.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ._codec import decode_chunk, encode_state, load_value
from .base import (
    RUN_COLUMNS,
    UNFINISHED,
    OwnershipLost,
    RunRecord,
    StoreError,
    record_of,
    row_of,
)

if TYPE_CHECKING:
    from ..events import StateChange
    from .base import Chunk, Journal, Store

__all__ = (
    "INSERT_FENCED",
    "INSERT_RESULT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "after_checkpoint",
    "claim",
    "create",
    "events",
    "get",
    "list_runs",
    "release",
    "renew",
    "results",
    "unfinished",
    "write_chunks",
)

MIGRATIONS = [
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
    # version 2: a counter the writer bumps after each WAL checkpoint (see after_checkpoint)
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta VALUES ('checkpoints', 0);
    """,
]
#: The schema version this asyncflow writes (``PRAGMA user_version``).
SCHEMA_VERSION = len(MIGRATIONS)

#: A journal row, written only while the run's owner is the journal's (the fence).
INSERT_FENCED = "INSERT INTO journal SELECT ?, ?, ?, ? FROM runs WHERE id = ? AND owner = ?"
#: A checkpointed value: ``(location, pickled value)``.
INSERT_RESULT = "INSERT OR REPLACE INTO results VALUES (?, ?)"


def _lost(journal: Journal, where: str) -> OwnershipLost:
    return OwnershipLost(
        f"run {journal.run_id!r} in {where} is no longer owned by {journal.owner!r}; "
        "its events were not written"
    )


def write_chunks(
    conn: sqlite3.Connection, batch: list[Chunk], where: str
) -> dict[Journal, StoreError]:
    """Write ``batch`` in one transaction; the runs that could not be written, with why.

    ``batch`` has at most one chunk per run. A run whose owner changed, or whose result cannot
    be pickled, is refused; the others are committed.

    Raises:
        sqlite3.Error: the transaction failed as a whole (nothing of it is written).
    """
    failures: dict[Journal, StoreError] = {}
    if len(batch) == 1 and not (batch[0].touch or batch[0].values):
        # The common case in a chain: one statement, committed on its own.
        c = batch[0]
        j = c.journal
        cur = conn.execute(INSERT_FENCED, (j.run_id, c.first, c.last, c.text, j.run_id, j.owner))
        if cur.rowcount != 1:
            failures[j] = _lost(j, where)
        return failures
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = time.time()
        for c in batch:
            j = c.journal
            try:
                pairs = c.pickled()
            except StoreError as exc:
                failures[j] = exc
                continue
            flow = c.flow_state
            if flow is not None:
                conn.execute(
                    "UPDATE runs SET state = ?, state_type = ?, updated = ? "
                    "WHERE id = ? AND owner = ?",
                    (encode_state(flow), type(flow).__name__, now, j.run_id, j.owner),
                )
            elif c.touch:
                conn.execute(
                    "UPDATE runs SET updated = ? WHERE id = ? AND owner = ?",
                    (now, j.run_id, j.owner),
                )
            cur = conn.execute(
                INSERT_FENCED, (j.run_id, c.first, c.last, c.text, j.run_id, j.owner)
            )
            if cur.rowcount != 1:
                failures[j] = _lost(j, where)
                continue
            if pairs:
                conn.executemany(INSERT_RESULT, pairs)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return failures


def after_checkpoint(conn: sqlite3.Connection) -> None:
    """Checkpoint the WAL, then count it in ``meta`` (a figure for whoever inspects the file).

    That write also restarts the WAL when the checkpoint was complete (which syncs the WAL's
    header), so the next journal commit does not.
    """
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'checkpoints'")


# -- reads and run records (on the writer thread) ------------------------------------------


def get(conn: sqlite3.Connection, store: Store, run_id: str) -> RunRecord | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    return record_of(row, store) if row is not None else None


def list_runs(
    conn: sqlite3.Connection,
    store: Store,
    flow: str | None,
    states: list[str] | None,
    limit: int,
    before: str | None,
) -> list[RunRecord]:
    sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1"
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
    return [record_of(r, store) for r in conn.execute(sql, args).fetchall()]


def events(
    conn: sqlite3.Connection, store: Store, record: RunRecord, after: int
) -> list[StateChange]:
    rows = conn.execute(
        "SELECT events FROM journal WHERE run_id = ? AND last_seq > ? ORDER BY first_seq",
        (record.id, after),
    ).fetchall()
    return [
        e for (text,) in rows for e in decode_chunk(record.id, record.flow_name, text, store, after)
    ]


def results(conn: sqlite3.Connection, locations: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(locations), 500):
        chunk = locations[i : i + 500]
        rows = conn.execute(
            f"SELECT location, value FROM results WHERE location IN "
            f"({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
        out.update((loc, load_value(value)) for loc, value in rows)
    return out


def create(conn: sqlite3.Connection, where: str, r: RunRecord) -> None:
    try:
        conn.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}, state_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row_of(r),
        )
    except sqlite3.IntegrityError:
        raise StoreError(f"a run with id {r.id!r} already exists in {where}") from None


def claim(
    conn: sqlite3.Connection, run_id: str, owner: str, expected: str | None, lease: float | None
) -> bool:
    cur = conn.execute(
        "UPDATE runs SET owner = ?, lease_until = ? WHERE id = ? AND owner IS ?",
        (owner, lease, run_id, expected),
    )
    return cur.rowcount == 1


def renew(conn: sqlite3.Connection, owner: str, lease_until: float) -> None:
    conn.execute(
        f"UPDATE runs SET lease_until = ? WHERE owner = ? AND state_type IN "
        f"({', '.join('?' * len(UNFINISHED))})",
        (lease_until, owner, *UNFINISHED),
    )


def release(conn: sqlite3.Connection, owner: str, run_ids: list[str]) -> None:
    conn.executemany(
        "UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = ? AND id = ?",
        [(owner, i) for i in run_ids],
    )


def unfinished(conn: sqlite3.Connection, store: Store, flows: list[str]) -> list[RunRecord]:
    if not flows:
        return []
    sql = (
        f"SELECT {RUN_COLUMNS} FROM runs WHERE flow_name IN ({', '.join('?' * len(flows))}) "
        f"AND state_type IN ({', '.join('?' * len(UNFINISHED))}) ORDER BY created, n"
    )
    return [record_of(r, store) for r in conn.execute(sql, [*flows, *UNFINISHED]).fetchall()]
