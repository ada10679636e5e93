"""The SQLite store's commits: on the loop's thread when nothing can wait, else on its writer.

Each test checks what a user relies on (the journal equals what a subscriber saw, the run is
committed when it returns, nothing waits on the loop) on both paths, and the switches between
them: a lock held by another connection, ``synchronous="full"``, a slow commit, checkpoints.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from asyncflow import EventBus, Flow, task
from asyncflow.runtime import scheduler as scheduler_module
from asyncflow.states import Pending, Running, Scheduled, Success
from asyncflow.store import SQLiteStore, base
from asyncflow.store import _sqlite_sql as sql
from asyncflow.store import journal as journal_module
from asyncflow.store import sqlite as sqlite_module
from asyncflow.store.owners import process_owner
from asyncflow.testing import EventRecorder

if TYPE_CHECKING:
    from pathlib import Path


@task
async def step(x: int | None = None) -> int:
    return (x or 0) + 1


def chain(n: int, name: str = "chain") -> Flow:
    with Flow(name) as flow:
        previous = step()
        for _ in range(n - 1):
            previous = step(previous)
    return flow


def record_of_run(run_id: str, owner: str) -> base.RunRecord:
    now = time.time()
    return base.RunRecord(run_id, "f", "v", {}, Scheduled(), now, now, owner)


def journal_seqs(path: Path, run_id: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT events FROM journal WHERE run_id = ? ORDER BY first_seq", (run_id,)
        ).fetchall()
    return [event[0] for (text,) in rows for event in json.loads(text)]


async def run_recorded(flow: Flow, store: SQLiteStore, run_id: str) -> EventRecorder:
    bus = EventBus()
    recorder = EventRecorder()
    bus.subscribe(recorder)
    state = await flow.run_async(bus=bus, store=store, run_id=run_id)
    assert state.is_successful()
    return recorder


class TestInlineCommits:
    @pytest.mark.parametrize("inline", [True, False])
    async def test_both_paths_journal_exactly_what_a_subscriber_saw(
        self, tmp_path: Path, inline: bool
    ) -> None:
        async with SQLiteStore(tmp_path / "runs.db", inline=inline) as store:
            recorder = await run_recorded(chain(20), store, "r")
            stored = [e async for e in store.events("r")]
        seen = recorder.events
        assert [(e.seq, e.task_run_id, type(e.new_state)) for e in stored] == [
            (e.seq, e.task_run_id, type(e.new_state)) for e in seen
        ]
        if inline:
            assert store.commits["inline"] >= 20  # at least one commit per link
        else:
            assert store.commits["inline"] == 0

    async def test_a_chain_commits_on_the_loop_and_its_values_come_back(
        self, tmp_path: Path
    ) -> None:
        async with SQLiteStore(tmp_path / "runs.db") as store:
            state = await chain(5).run_async(store=store, run_id="r")
            assert sorted(s.result for s in state.result.values()) == [1, 2, 3, 4, 5]
            assert store.commits["inline"] > 0
            again = await chain(5).run_async(store=store, resume="r")
        assert sorted(s.result for s in again.result.values()) == [1, 2, 3, 4, 5]

    async def test_a_value_that_is_not_a_small_scalar_goes_to_the_writer_thread(
        self, tmp_path: Path
    ) -> None:
        @task
        async def big() -> bytes:
            return b"x" * (sqlite_module.INLINE_MAX_VALUE + 1)

        with Flow("big") as flow:
            big()
        async with SQLiteStore(tmp_path / "runs.db") as store:
            await flow.run_async(store=store, run_id="r")
            assert store.commits["thread"] >= 1
            (state,) = [e.new_state async for e in store.events("r") if e.task_name == "big"][-1:]
        assert isinstance(state, Success)

    async def test_synchronous_full_always_commits_on_the_writer_thread(
        self, tmp_path: Path
    ) -> None:
        async with SQLiteStore(tmp_path / "runs.db", synchronous="full") as store:
            assert store.inline is False
            await chain(5).run_async(store=store, run_id="r")
        assert store.commits["inline"] == 0
        assert journal_seqs(tmp_path / "runs.db", "r") == list(range(1, 13))

    async def test_a_lock_held_elsewhere_sends_the_commit_to_the_writer_which_waits(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "runs.db"
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        releases: list[threading.Timer] = []

        @task
        async def lock_the_database() -> None:
            holder.execute("BEGIN IMMEDIATE")  # another writer, for 0.3 s
            timer = threading.Timer(0.3, holder.execute, ("COMMIT",))
            releases.append(timer)
            timer.start()

        with Flow("locked") as flow:
            step(upstream_tasks=[lock_the_database()])
        try:
            async with SQLiteStore(path) as store:
                began = time.perf_counter()
                await flow.run_async(store=store, run_id="r")
                waited = time.perf_counter() - began
        finally:
            for timer in releases:
                timer.join()
            holder.close()
        assert waited >= 0.25  # nothing was written past the lock, and nothing failed
        assert store.commits["inline"] >= 1  # before the lock was taken
        assert store.commits["thread"] >= 1  # the commit that found it taken
        assert journal_seqs(path, "r") == list(range(1, 7))

    async def test_a_slow_inline_commit_sends_the_next_ones_to_the_writer_thread(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sqlite_module, "SLOW_INLINE", 0.0)  # every commit is "slow"
        async with SQLiteStore(tmp_path / "runs.db") as store:
            await chain(10).run_async(store=store, run_id="r")
        assert store.commits["inline"] == 1
        assert store.commits["thread"] >= 10
        assert journal_seqs(tmp_path / "runs.db", "r") == list(range(1, 23))

    @pytest.mark.parametrize("inline", [True, False])
    @pytest.mark.parametrize(
        "error", [sqlite3.OperationalError("disk I/O error"), MemoryError("disk I/O error")]
    )
    async def test_a_failed_commit_fails_the_run_naming_the_path_and_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool, error: Exception
    ) -> None:
        path = tmp_path / "runs.db"
        real = sql.write_chunks

        def failing(conn: sqlite3.Connection, batch: list[Any], where: str) -> Any:
            if any(c.last >= 5 for c in batch):
                raise error
            return real(conn, batch, where)

        monkeypatch.setattr(sql, "write_chunks", failing)
        async with SQLiteStore(path, inline=inline) as store:
            with pytest.raises(base.StoreError, match=r"disk I/O error.*\['r'\]"):
                await chain(4).run_async(store=store, run_id="r")
            assert not (await store.get_run("r")).state.is_finished()

    async def test_after_a_failed_batch_no_later_one_of_that_run_is_written(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The run's first batch fails on the writer thread while its next ones wait behind it
        # (the writer holds the first until they are queued): none of them may be written, or
        # the run's end would be recorded over a gap.
        real = sql.write_chunks
        queued = threading.Event()

        def first_fails(conn: sqlite3.Connection, batch: list[Any], where: str) -> Any:
            if any(c.first == 1 for c in batch):
                assert queued.wait(5)
                raise sqlite3.OperationalError("database or disk is full")
            return real(conn, batch, where)

        monkeypatch.setattr(sql, "write_chunks", first_fails)
        path = tmp_path / "runs.db"
        async with SQLiteStore(path, inline=False) as store:
            await store.create_run(record_of_run("r", process_owner()))
            journal = store.journal("r", process_owner())
            journal.append(1, 1.0, "t", "r/t", None, Pending(), Running())
            store._flush()
            await anyio.sleep(0.05)  # the writer took it, alone
            journal.append(2, 2.0, "t", "r/t", None, Running(), Success())
            store._flush()
            journal.append(3, 3.0, None, None, None, Running(), Success())  # the flow's end
            store._flush()
            queued.set()
            with pytest.raises(base.StoreError, match="disk is full"):
                await journal.flush()
        assert journal_seqs(path, "r") == []
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT state_type FROM runs").fetchone() == ("Scheduled",)

    async def test_a_store_that_raises_while_handed_a_batch_fails_the_run_never_hangs_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(self: SQLiteStore, batch: list[Any]) -> None:
            raise RuntimeError("a bug in the store")

        monkeypatch.setattr(SQLiteStore, "_write_inline", broken)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            with pytest.raises(base.StoreError, match=r"run\(s\) \['r'\].*a bug in the store"):
                await chain(3).run_async(store=store, run_id="r")

    def test_a_full_disk_during_small_commits_fails_the_run_and_never_marks_it_complete(
        self, tmp_path: Path
    ) -> None:
        # A real child process whose files may not grow past 300 kB (RLIMIT_FSIZE): a long
        # chain of small commits, made on the loop's thread, fills it.
        path = tmp_path / "full.db"
        script = textwrap.dedent(
            f"""
            import resource, signal, asyncio
            from asyncflow import Flow, task
            from asyncflow.store import SQLiteStore, StoreError
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

            @task
            async def step(x=None):
                return None

            with Flow("long") as flow:
                previous = step()
                for _ in range(3000):
                    previous = step(previous)

            async def main():
                store = SQLiteStore({str(path)!r})
                try:
                    await flow.run_async(store=store, run_id="r")
                except StoreError as exc:
                    print("inline commits:", store.commits["inline"] > 0)
                    print("StoreError:", exc)

            asyncio.run(main())
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert "inline commits: True" in out.stdout, out.stderr
        assert f"StoreError: SQLite store {path}:" in out.stdout
        assert "run(s) ['r']" in out.stdout
        with sqlite3.connect(path) as conn:
            (state,) = conn.execute("SELECT state_type FROM runs WHERE id = 'r'").fetchone()
        assert state != "Success"


class TestCheckpoints:
    async def test_the_writer_checkpoints_the_wal_and_makes_the_write_after_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sqlite_module, "CHECKPOINT_PAGES", 20)
        path = tmp_path / "runs.db"
        async with SQLiteStore(path) as store:
            await run_recorded(chain(40), store, "r")
            await store.aclose()
        with sqlite3.connect(path) as conn:
            (count,) = conn.execute("SELECT value FROM meta WHERE key = 'checkpoints'").fetchone()
        assert count >= 3
        assert journal_seqs(path, "r") == list(range(1, 83))

    async def test_a_failed_checkpoint_loses_nothing_and_is_logged(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def failing(conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("checkpoint refused")

        monkeypatch.setattr(sqlite_module, "CHECKPOINT_PAGES", 5)
        monkeypatch.setattr(sql, "after_checkpoint", failing)
        path = tmp_path / "runs.db"
        with caplog.at_level("WARNING", logger="asyncflow.store"):
            async with SQLiteStore(path) as store:
                await chain(10).run_async(store=store, run_id="r")
        assert journal_seqs(path, "r") == list(range(1, 23))
        assert any("WAL checkpoint failed" in r.getMessage() for r in caplog.records)


class TestSchema:
    async def test_a_version_1_file_is_migrated_and_its_runs_go_on(self, tmp_path: Path) -> None:
        path = tmp_path / "old.db"
        async with SQLiteStore(path) as store:
            await chain(3).run_async(store=store, run_id="done")
        with sqlite3.connect(path, isolation_level=None) as conn:  # back to what version 1 was
            conn.executescript("DROP TABLE meta; PRAGMA user_version = 1;")
        async with SQLiteStore(path) as store:
            assert (await store.get_run("done")).state.is_successful()
            await chain(3).run_async(store=store, run_id="new")
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
            assert conn.execute("SELECT value FROM meta").fetchone() == (0,)
        assert journal_seqs(path, "new") == list(range(1, 9))


class TestBatching:
    async def test_a_tick_of_thousands_of_tasks_is_written_in_parts_in_order(
        self, tmp_path: Path
    ) -> None:
        with Flow("wide") as flow:
            for i in range(1500):
                step(i)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            recorder = await run_recorded(flow, store, "r")
        with sqlite3.connect(tmp_path / "runs.db") as conn:
            (rows,) = conn.execute("SELECT count(*) FROM journal").fetchone()
        assert rows >= 3  # 3002 events, at most journal_module.CHUNK_ROWS a row
        assert journal_seqs(tmp_path / "runs.db", "r") == [e.seq for e in recorder.events]

    async def test_the_runs_updated_time_is_written_with_each_flow_state(
        self, tmp_path: Path
    ) -> None:
        async with SQLiteStore(tmp_path / "runs.db") as store:
            before = time.time()
            await chain(3).run_async(store=store, run_id="r")
            record = await store.get_run("r")
        assert before <= record.created <= record.updated <= time.time()

    async def test_while_a_run_goes_on_its_updated_time_follows_its_commits(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(journal_module, "TOUCH_EVERY", 0.0)  # every commit writes it
        path = tmp_path / "runs.db"
        seen: dict[str, float] = {}

        @task
        async def first() -> None:
            seen["first"] = time.time()

        @task
        async def second() -> None:
            with sqlite3.connect(path) as conn:  # what another reader sees mid-run
                (seen["updated"],) = conn.execute("SELECT updated FROM runs").fetchone()

        with Flow("touch") as flow:
            second(upstream_tasks=[first()])
        async with SQLiteStore(path) as store:
            await flow.run_async(store=store, run_id="r")
        assert seen["updated"] >= seen["first"]  # first's final commit wrote it

    async def test_a_finished_run_is_freed_without_the_garbage_collector(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        made: list[weakref.ref[Any]] = []
        real = scheduler_module.Scheduler.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            real(self, *args, **kwargs)
            made.append(weakref.ref(self))

        monkeypatch.setattr(scheduler_module.Scheduler, "__init__", init)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            gc.collect()
            gc.disable()
            try:
                await chain(3).run_async(store=store)
                assert made
                assert made[-1]() is None  # no reference cycle kept it
            finally:
                gc.enable()
