"""Shared fixtures: an isolated bus, a fake clock and a recorder for every test that asks."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from asyncflow import EventBus, Flow, _log, _logsetup, task
from asyncflow.store import MemoryStore, PostgresStore, SQLiteStore, Store
from asyncflow.testing import EventRecorder, FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from pathlib import Path


@pytest.fixture
def bus() -> EventBus:
    """A bus of the test's own, so that tests never see each other's events."""
    return EventBus()


@pytest.fixture
def recorder(bus: EventBus) -> EventRecorder:
    """An EventRecorder subscribed to ``bus``."""
    rec = EventRecorder()
    bus.subscribe(rec)
    return rec


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock at 0."""
    return FakeClock()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """asyncflow's home (``ASYNCFLOW_HOME``: the default results folder) in the test's folder."""
    monkeypatch.setenv("ASYNCFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a private PostgreSQL server for the whole session (skips where none can run)."""
    from pg_server import PostgresServer, find_bindir

    pytest.importorskip("asyncpg", reason="PostgresStore needs the postgres extra (asyncpg)")

    bindir, why = find_bindir()
    if bindir is None:
        pytest.skip(why)
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server.dsn
    finally:
        server.stop()


async def fresh_schema(server: str) -> str:
    """A DSN of ``server`` whose tables live in a new schema (a fresh database, cheaply)."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    return f"{server}?search_path={name}"


@pytest.fixture
async def postgres_dsn(postgres_server: str) -> str:
    """A DSN of the session's server with a schema of its own."""
    return await fresh_schema(postgres_server)


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open run store: a real SQLite file in the test's directory, a MemoryStore, then a
    PostgresStore on the session's private server."""
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "runs.db")
    elif request.param == "memory":
        s = MemoryStore()
    else:
        s = PostgresStore(await fresh_schema(request.getfixturevalue("postgres_server")))
    async with s:
        yield s


@pytest.fixture
def pristine_logging() -> Iterator[None]:
    """Whatever a test configures, asyncflow's loggers are as they were afterwards."""
    loggers = [logging.getLogger(name) for name in _log.LOGGERS]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    _logsetup._uninstall()
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture
def cancelled_run(bus: EventBus) -> Callable[[], Awaitable[None]]:
    """Runs flow ``cancelled`` on ``bus`` (task ``forever``) and cancels it once it started."""

    async def run() -> None:
        started = anyio.Event()

        @task
        async def forever() -> None:
            started.set()
            await anyio.sleep_forever()

        with Flow("cancelled") as flow:
            forever()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: flow.run_async(bus=bus))
            await started.wait()
            tg.cancel_scope.cancel()

    return run
