"""``PostgresStore``: runs shared by several replicas, in PostgreSQL (asyncpg; extra ``postgres``).

The schema and the journal batching are those of the SQLite store: one journal row per run and
commit, written by a single writer coroutine on a dedicated connection, which merges every batch
queued while it was committing. Each commit also sends ``NOTIFY asyncflow_journal`` with the
run ids it wrote, so other replicas following a run (its SSE stream) hear about new events at
once. Ownership is fenced as in every store: a batch of a run whose owner changed is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._codec import decode_chunk, encode_state, load_value
from .base import (
    RUN_COLUMNS,
    UNFINISHED,
    OwnershipLost,
    RunRecord,
    Store,
    StoreError,
    record_of,
    row_of,
)
from .journal import merged, refuse, writable

if TYPE_CHECKING:
    from ..events import StateChange
    from .base import Chunk, Journal

__all__ = ("PostgresStore",)

CHANNEL = "asyncflow_journal"
_MIGRATIONS = [
    # version 1
    """
    CREATE TABLE asyncflow_runs (
        n BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        flow_name TEXT NOT NULL,
        flow_version TEXT NOT NULL,
        parameters BYTEA NOT NULL,
        state TEXT NOT NULL,
        state_type TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        owner TEXT,
        lease_until DOUBLE PRECISION
    );
    CREATE INDEX asyncflow_runs_by_created ON asyncflow_runs (created, n);
    CREATE INDEX asyncflow_runs_by_flow ON asyncflow_runs (flow_name, created, n);
    CREATE TABLE asyncflow_journal (
        run_id TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        events TEXT NOT NULL,
        PRIMARY KEY (run_id, first_seq)
    );
    CREATE TABLE asyncflow_results (
        location TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    """,
]
#: The schema version this asyncflow writes (rows of ``asyncflow_schema``).
SCHEMA_VERSION = len(_MIGRATIONS)
_LOCK = 0x61737966  # advisory lock held while migrating ("asyf")


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise ImportError(
            "PostgresStore needs asyncpg: pip install 'asyncflow[postgres]'"
        ) from None
    return asyncpg


def _public(dsn: str) -> str:
    """The DSN without its password (for messages)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(Store):
    """Runs, their journals and checkpointed results in a PostgreSQL database.

    Args:
        dsn: a libpq URI, ``postgresql://user@host:port/db``.
        pool_size: connections for reads and run records (the writer has one of its own).

    Raises:
        ValueError: ``dsn`` is not a ``postgresql://`` (or ``postgres://``) URI.
    """

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        super().__init__()
        if urlsplit(dsn).scheme not in ("postgresql", "postgres"):
            raise ValueError(f"PostgresStore takes a postgresql:// URI, got {_public(dsn)!r}")
        self.dsn = dsn
        self.where = _public(dsn)
        self.pool_size = pool_size
        self._pool: Any = None
        self._writer_conn: Any = None
        self._listener: Any = None
        self._queue: asyncio.Queue[list[Chunk]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._changed: dict[str, asyncio.Event] = {}

    def _error(self, exc: BaseException) -> StoreError:
        err = StoreError(f"PostgreSQL store {self.where}: {exc}")
        err.__cause__ = exc
        return err

    # -- lifecycle --------------------------------------------------------------------------

    async def _open(self) -> None:
        asyncpg = _asyncpg()
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS asyncflow_schema (version INTEGER NOT NULL)"
                )
                version = await conn.fetchval("SELECT max(version) FROM asyncflow_schema") or 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"PostgreSQL store {self.where} has schema version {version}, newer "
                        f"than this asyncflow's {SCHEMA_VERSION}: upgrade asyncflow to open it"
                    )
                for v in range(version, SCHEMA_VERSION):
                    await conn.execute(_MIGRATIONS[v])
                    await conn.execute("INSERT INTO asyncflow_schema VALUES ($1)", v + 1)
            self._writer_conn = await asyncpg.connect(self.dsn)
            self._listener = await asyncpg.connect(self.dsn)
            await self._listener.add_listener(CHANNEL, self._heard)
        except StoreError:
            await self._close()
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._close()
            raise self._error(exc) from exc
        self._queue = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            assert self._queue is not None
            await self._queue.join()  # what was queued is written
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        for name in ("_listener", "_writer_conn"):
            conn = getattr(self, name)
            setattr(self, name, None)
            if conn is not None:
                await conn.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- the writer -------------------------------------------------------------------------

    def _write(self, batch: list[Chunk]) -> None:
        assert self._queue is not None
        self._queue.put_nowait(batch)

    async def _write_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            items = list(await queue.get())
            n = 1
            while not queue.empty():
                items.extend(queue.get_nowait())
                n += 1
            items = merged(items)
            try:
                failures = await self._write_batch(items)
            finally:
                for _ in range(n):
                    queue.task_done()
            self._settle(items, failures)

    async def _write_batch(self, batch: list[Chunk]) -> dict[Journal, StoreError]:
        conn = self._writer_conn
        todo, refused = writable(batch)
        failures: dict[Journal, StoreError] = {}
        try:
            async with conn.transaction():
                now = time.time()
                written = []
                for chunk in todo:
                    journal = chunk.journal
                    try:
                        pairs = chunk.pickled()
                    except StoreError as exc:
                        failures[journal] = exc
                        continue
                    flow = chunk.flow_state
                    if flow is not None:
                        await conn.execute(
                            "UPDATE asyncflow_runs SET updated = $1, state = $2, state_type = $3 "
                            "WHERE id = $4 AND owner = $5",
                            now,
                            encode_state(flow),
                            type(flow).__name__,
                            journal.run_id,
                            journal.owner,
                        )
                    elif chunk.touch:
                        await conn.execute(
                            "UPDATE asyncflow_runs SET updated = $1 WHERE id = $2 AND owner = $3",
                            now,
                            journal.run_id,
                            journal.owner,
                        )
                    status = await conn.execute(
                        "INSERT INTO asyncflow_journal "
                        "SELECT $1::text, $2::integer, $3::integer, $4::text "
                        "FROM asyncflow_runs WHERE id = $1 AND owner = $5",
                        journal.run_id,
                        chunk.first,
                        chunk.last,
                        chunk.text,
                        journal.owner,
                    )
                    if status != "INSERT 0 1":
                        failures[journal] = OwnershipLost(
                            f"run {journal.run_id!r} in {self.where} is no longer owned by "
                            f"{journal.owner!r}; its events were not written"
                        )
                        continue
                    if pairs:
                        await conn.executemany(
                            "INSERT INTO asyncflow_results VALUES ($1, $2) "
                            "ON CONFLICT (location) DO UPDATE SET value = excluded.value",
                            pairs,
                        )
                    written.append(journal.run_id)
                if written:
                    await conn.execute(
                        "SELECT pg_notify($1, $2)", CHANNEL, " ".join(dict.fromkeys(written))
                    )
        except Exception as exc:
            runs = sorted({c.journal.run_id for c in batch})
            error = StoreError(
                f"PostgreSQL store {self.where}: {exc} (while writing the journal of run(s) {runs})"
            )
            error.__cause__ = exc
            failures = {c.journal: error for c in todo}
        failures.update(refused)
        refuse(failures)
        return failures

    # -- following runs written by other replicas --------------------------------------------

    def _heard(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        for run_id in payload.split():
            event = self._changed.get(run_id)
            if event is not None:
                event.set()

    async def wait_change(self, run_id: str, timeout: float) -> None:
        """Return when a commit to run ``run_id`` is announced (``NOTIFY``), or after
        ``timeout`` seconds."""
        await self.open()
        event = self._changed.setdefault(run_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            event.clear()

    # -- reads and run records ----------------------------------------------------------------

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        try:
            async with self._pool.acquire() as conn:
                rows: list[Any] = await conn.fetch(sql, *args)
                return rows
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

    async def _exec(self, sql: str, *args: Any) -> str:
        try:
            async with self._pool.acquire() as conn:
                status: str = await conn.execute(sql, *args)
                return status
        except Exception as exc:
            if type(exc).__name__ == "UniqueViolationError":
                raise StoreError(
                    f"a run with id {args[0]!r} already exists in {self.where}"
                ) from None
            raise self._error(exc) from exc

    async def _get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(f"SELECT {RUN_COLUMNS} FROM asyncflow_runs WHERE id = $1", run_id)
        return record_of(rows[0], self) if rows else None

    async def _list_runs(
        self, flow: str | None, states: list[str] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        sql = f"SELECT {RUN_COLUMNS} FROM asyncflow_runs WHERE TRUE"
        args: list[Any] = []
        if flow is not None:
            args.append(flow)
            sql += f" AND flow_name = ${len(args)}"
        if states is not None:
            args.append(states)
            sql += f" AND state_type = ANY(${len(args)}::text[])"
        if before is not None:
            args.append(before)
            sql += (
                f" AND (created, n) < (SELECT created, n FROM asyncflow_runs "
                f"WHERE id = ${len(args)})"
            )
        args.append(limit)
        sql += f" ORDER BY created DESC, n DESC LIMIT ${len(args)}"
        return [record_of(r, self) for r in await self._fetch(sql, *args)]

    async def _events(self, record: RunRecord, after: int) -> list[StateChange]:
        rows = await self._fetch(
            "SELECT events FROM asyncflow_journal WHERE run_id = $1 AND last_seq > $2 "
            "ORDER BY first_seq",
            record.id,
            after,
        )
        return [
            e
            for (text,) in rows
            for e in decode_chunk(record.id, record.flow_name, text, self, after)
        ]

    async def _results(self, locations: list[str]) -> dict[str, Any]:
        rows = await self._fetch(
            "SELECT location, value FROM asyncflow_results WHERE location = ANY($1::text[])",
            locations,
        )
        return {loc: load_value(value) for loc, value in rows}

    def read_values(self, locations: list[str]) -> dict[str, Any]:
        """The checkpointed values at ``locations``, on a connection of the caller's own (it
        blocks: call it from a worker thread)."""
        return asyncio.run(self._read_values(locations))

    async def _read_values(self, locations: list[str]) -> dict[str, Any]:
        conn = await _asyncpg().connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT location, value FROM asyncflow_results WHERE location = ANY($1::text[])",
                locations,
            )
        finally:
            await conn.close()
        return {loc: load_value(value) for loc, value in rows}

    async def _create_run(self, r: RunRecord) -> None:
        await self._exec(
            f"INSERT INTO asyncflow_runs ({RUN_COLUMNS}, state_type) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            *row_of(r),
        )

    async def _claim(
        self, run_id: str, owner: str, expected: str | None, lease_until: float | None
    ) -> bool:
        status = await self._exec(
            "UPDATE asyncflow_runs SET owner = $1, lease_until = $2 "
            "WHERE id = $3 AND owner IS NOT DISTINCT FROM $4",
            owner,
            lease_until,
            run_id,
            expected,
        )
        return status == "UPDATE 1"

    async def _renew(self, owner: str, lease_until: float) -> None:
        await self._exec(
            "UPDATE asyncflow_runs SET lease_until = $1 WHERE owner = $2 "
            "AND state_type = ANY($3::text[])",
            lease_until,
            owner,
            UNFINISHED,
        )

    async def _release(self, owner: str, run_ids: list[str]) -> None:
        await self._exec(
            "UPDATE asyncflow_runs SET owner = NULL, lease_until = NULL "
            "WHERE owner = $1 AND id = ANY($2::text[])",
            owner,
            run_ids,
        )

    async def _unfinished(self, flows: list[str]) -> list[RunRecord]:
        rows = await self._fetch(
            f"SELECT {RUN_COLUMNS} FROM asyncflow_runs WHERE flow_name = ANY($1::text[]) "
            "AND state_type = ANY($2::text[]) ORDER BY created, n",
            flows,
            UNFINISHED,
        )
        return [record_of(r, self) for r in rows]
