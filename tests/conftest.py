"""Shared fixtures: an isolated bus, a fake clock and a recorder for every test that asks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from asyncflow import EventBus
from asyncflow.store import MemoryStore, SQLiteStore, Store
from asyncflow.testing import EventRecorder, FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
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
