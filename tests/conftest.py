"""Shared fixtures: an isolated bus, a fake clock and a recorder for every test that asks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import pytest

from asyncflow import EventBus, Flow, _log, _logsetup, task
from asyncflow.store import MemoryStore, SQLiteStore, Store
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


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open run store: a real SQLite file in the test's directory, then a MemoryStore."""
    s: Store = SQLiteStore(tmp_path / "runs.db") if request.param == "sqlite" else MemoryStore()
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
