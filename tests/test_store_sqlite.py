"""The SQLite store's commits: small batches made durable in its run log on the loop's thread,
every batch committed to the database by its writer thread.

Each test checks what a user relies on (the journal equals what a subscriber saw, the run is
in the database when it returns, nothing waits on the loop) with and without the run log, the
switches between them (a lock held by another connection, ``synchronous="full"``, a full log,
a log that cannot be written), and recovery: a crashed process's log replayed, fenced, once.
"""

from __future__ import annotations

import errno
import gc
import glob
import json
import os
import pickle
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import weakref
import zlib
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from asyncflow import EventBus, Flow, task
from asyncflow.runtime import scheduler as scheduler_module
from asyncflow.states import Pending, Running, Scheduled, State, Success
from asyncflow.store import SQLiteStore, base
from asyncflow.store import _runlog as runlog_module
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


def log_files(path: Path) -> list[str]:
    return glob.glob(f"{glob.escape(str(path))}-asyncflow-*.log")


def killed_mid_chain(path: Path, links: int, stop_at: int) -> str:
    """Run a chain of ``links`` in a child process whose writer thread commits the run's start
    and then nothing (it hangs), kill it with SIGKILL while link ``stop_at`` runs; the
    links that ran, as the child printed them. The first link waits until the run's start is
    in the database, and the run's ``updated`` time is not due again: every later batch
    is made durable in the run log only."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys, threading
        from asyncflow import Flow, task
        from asyncflow.store import SQLiteStore
        from asyncflow.store import _sqlite_sql as sql, journal

        journal.TOUCH_EVERY = 1e9
        real = sql.write_chunks
        def hangs_after_the_first(conn, batch, where):
            if any(c.last >= 3 for c in batch):  # from link 0's end on
                threading.Event().wait()
            return real(conn, batch, where)
        sql.write_chunks = hangs_after_the_first

        @task
        async def link(i, previous=None):
            print("ran", i, flush=True)
            if i == 0:
                await asyncio.sleep(0.3)
            if i == {stop_at}:
                print("killing", flush=True)
                await asyncio.sleep(60)
            return i

        with Flow("chain") as flow:
            previous = None
            for i in range({links}):
                previous = link(i, previous)

        asyncio.run(flow.run_async(store=SQLiteStore({str(path)!r}), run_id="r"))
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("killing"):
            break
    child.kill()
    _, err = child.communicate(timeout=30)
    assert lines, err
    assert lines[-1].startswith("killing"), err
    return "".join(lines)


class TestRunLog:
    @pytest.mark.parametrize("log", [True, False])
    async def test_both_paths_journal_exactly_what_a_subscriber_saw(
        self, tmp_path: Path, log: bool
    ) -> None:
        async with SQLiteStore(tmp_path / "runs.db", log=log) as store:
            recorder = await run_recorded(chain(20), store, "r")
            stored = [e async for e in store.events("r")]
        seen = recorder.events
        assert [(e.seq, e.task_run_id, type(e.new_state)) for e in stored] == [
            (e.seq, e.task_run_id, type(e.new_state)) for e in seen
        ]
        if log:
            assert store.commits["log"] >= 10  # about one batch per link
        else:
            assert store.commits["log"] == 0
        assert log_files(tmp_path / "runs.db") == []  # deleted on close

    async def test_a_chain_logs_its_links_and_its_values_come_back(self, tmp_path: Path) -> None:
        async with SQLiteStore(tmp_path / "runs.db") as store:
            state = await chain(5).run_async(store=store, run_id="r")
            assert sorted(s.result for s in state.result.values()) == [1, 2, 3, 4, 5]
            assert store.commits["log"] > 0
            again = await chain(5).run_async(store=store, resume="r")
        assert sorted(s.result for s in again.result.values()) == [1, 2, 3, 4, 5]

    async def test_a_run_is_in_the_database_when_it_returns(self, tmp_path: Path) -> None:
        path = tmp_path / "runs.db"
        async with SQLiteStore(path) as store:
            await chain(30).run_async(store=store, run_id="r")
            # Read by another connection while the store is open: nothing waits in the log.
            assert journal_seqs(path, "r") == list(range(1, 63))
            with sqlite3.connect(path) as conn:
                assert conn.execute("SELECT state_type FROM runs").fetchone() == ("Success",)

    @pytest.mark.parametrize(
        "value",
        [
            b"x" * (runlog_module.MAX_VALUE + 1),
            list(range(runlog_module.MAX_NODES + 1)),
            {"nested": [{"deep": list(range(runlog_module.MAX_NODES))}]},
            {i: i for i in range(runlog_module.MAX_NODES // 2 + 1)},
            [f"{i:04d}" * (runlog_module.MAX_VALUE // 4) for i in range(20)],  # 80 kB
            {"an object": object()},
            {"set"},
        ],
        ids=["big", "long", "nested", "wide dict", "heavy", "object", "set"],
    )
    async def test_a_value_that_is_not_a_small_scalar_waits_for_the_database(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: object
    ) -> None:
        @task
        async def slow() -> None:
            await anyio.sleep(0.1)  # the run's start is in the database when this ends

        @task
        async def big() -> object:
            return value

        logged: dict[str, bool] = {}
        real = runlog_module.RunLog.append

        def append(self: runlog_module.RunLog, batch: list[Any]) -> bool:
            done = real(self, batch)
            for row in (row for c in batch for row in c.rows):
                if '"big"' in row and "Success" in row:
                    logged["big"] = done
            return done

        monkeypatch.setattr(runlog_module.RunLog, "append", append)
        with Flow("big") as flow:
            step(upstream_tasks=[big(upstream_tasks=[slow()])])
        async with SQLiteStore(tmp_path / "runs.db") as store:
            await flow.run_async(store=store, run_id="r")
            assert logged == {"big": False}
            assert store.commits["log"] >= 1  # slow's end
            (state,) = [e.new_state async for e in store.events("r") if e.task_name == "big"][-1:]
        assert isinstance(state, Success)

    async def test_json_like_results_are_logged_and_come_back(self, tmp_path: Path) -> None:
        calls = []

        @task
        async def row(previous: dict[str, Any] | None = None) -> dict[str, Any]:
            n = 0 if previous is None else previous["n"] + 1
            calls.append(n)
            return {"n": n, "name": f"row {n}", "tags": ["a", "b"], "score": n / 2, "ok": True}

        with Flow("rows") as flow:
            previous = row()
            for _ in range(9):
                previous = row(previous)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            await flow.run_async(store=store, run_id="r")
            assert store.commits["log"] >= 5
            again = await flow.run_async(store=store, resume="r")  # read back, not run
        assert calls == list(range(10))  # none ran again
        assert sorted(s.result["n"] for s in again.result.values()) == list(range(10))
        assert {s.result["name"] for s in again.result.values()} == {f"row {n}" for n in range(10)}

    async def test_a_large_batch_waits_for_the_database(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(runlog_module, "MAX_TEXT", 10)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            await chain(5).run_async(store=store, run_id="r")
        assert store.commits["log"] == 0
        assert journal_seqs(tmp_path / "runs.db", "r") == list(range(1, 13))

    @pytest.mark.parametrize(
        ("call", "error"),
        [
            ("open", PermissionError(errno.EACCES, "Permission denied")),
            ("write", OSError(errno.ENOSPC, "No space left on device")),
        ],
    )
    async def test_a_log_that_cannot_be_created_only_costs_speed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str, error: OSError
    ) -> None:
        def fails(*args: Any) -> int:
            raise error

        monkeypatch.setattr(runlog_module.os, call, fails)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            monkeypatch.undo()
            assert log_files(tmp_path / "runs.db") == []  # nothing half made left behind
            await chain(5).run_async(store=store, run_id="r")
        assert store.commits["log"] == 0
        assert journal_seqs(tmp_path / "runs.db", "r") == list(range(1, 13))

    async def test_synchronous_full_never_logs(self, tmp_path: Path) -> None:
        async with SQLiteStore(tmp_path / "runs.db", synchronous="full") as store:
            assert store.log is False
            assert log_files(tmp_path / "runs.db") == []
            await chain(5).run_async(store=store, run_id="r")
        assert store.commits["log"] == 0
        assert journal_seqs(tmp_path / "runs.db", "r") == list(range(1, 13))

    async def test_a_lock_held_elsewhere_makes_the_writer_wait_and_loses_nothing(
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
        assert waited >= 0.25  # it returned once all of it was in the database
        assert journal_seqs(path, "r") == list(range(1, 7))

    async def test_a_full_log_waits_for_the_writer_then_starts_over(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(runlog_module, "MAX_BYTES", 700)  # room for a record or two
        path = tmp_path / "runs.db"
        starts = 0
        real = runlog_module.RunLog.append

        def append(self: runlog_module.RunLog, batch: list[Any]) -> bool:
            nonlocal starts
            was_empty = self.size == 0
            logged = real(self, batch)
            starts += logged and was_empty
            assert self.size <= 700
            return logged

        monkeypatch.setattr(runlog_module.RunLog, "append", append)
        async with SQLiteStore(path) as store:
            await chain(41).run_async(store=store, run_id="r")
        assert store.commits["log"] >= 10
        assert starts >= 5  # it started over each time the writer had caught up
        assert journal_seqs(path, "r") == list(range(1, 85))

    @pytest.mark.parametrize("log", [True, False])
    @pytest.mark.parametrize(
        "error", [sqlite3.OperationalError("disk I/O error"), MemoryError("disk I/O error")]
    )
    async def test_a_failed_commit_fails_the_run_naming_the_path_and_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: bool, error: Exception
    ) -> None:
        path = tmp_path / "runs.db"
        real = sql.write_chunks

        def failing(conn: sqlite3.Connection, batch: list[Any], where: str) -> Any:
            if any(c.last >= 5 for c in batch):
                raise error
            return real(conn, batch, where)

        monkeypatch.setattr(sql, "write_chunks", failing)
        async with SQLiteStore(path, log=log) as store:
            with pytest.raises(base.StoreError, match=r"disk I/O error.*\['r'\]"):
                await chain(4).run_async(store=store, run_id="r")
            assert not (await store.get_run("r")).state.is_finished()

    async def test_a_logged_batch_the_database_refused_is_kept_and_replayed_later(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        # The database refuses the run's later commits (a full disk, say): links that were
        # told their upstream was durable must not lose it. The log is kept when the store
        # closes, and the next store to open the file replays it.
        path = tmp_path / "runs.db"
        real = sql.write_chunks
        full = True

        def full_disk(conn: sqlite3.Connection, batch: list[Any], where: str) -> Any:
            if full and any(c.last >= 3 for c in batch):  # from the first link's end on
                raise sqlite3.OperationalError("database or disk is full")
            return real(conn, batch, where)

        @task
        async def slow() -> int:
            await anyio.sleep(0.2)  # the run's start is in the database when this ends
            return 0

        with Flow("chain") as flow:
            previous = slow()
            for _ in range(29):
                previous = step(previous)
        monkeypatch.setattr(sql, "write_chunks", full_disk)
        with caplog.at_level("WARNING", logger="asyncflow.store"):
            async with SQLiteStore(path) as store:
                with pytest.raises(base.StoreError, match="disk is full"):
                    await flow.run_async(store=store, run_id="r")
                logged = store.commits["log"]
                full = False  # room again, but this store logs no more: its log is kept
                await chain(5).run_async(store=store, run_id="s")
                assert store.commits["log"] == logged
        assert logged >= 1
        assert any("run log is kept" in r.getMessage() for r in caplog.records)
        assert len(log_files(path)) == 1
        before = journal_seqs(path, "r")
        full = False
        async with SQLiteStore(path) as store:  # the disk has room again
            record = await store.get_run("r")
        after = journal_seqs(path, "r")
        assert log_files(path) == []
        assert after[: len(before)] == before
        assert after == list(range(1, len(after) + 1))  # no gap
        assert len(after) > len(before)
        assert not record.state.is_finished()  # a prefix, resumable: never shown complete

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
        async with SQLiteStore(path, log=False) as store:
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
        def broken(self: Any, batch: list[Any]) -> bool:
            raise RuntimeError("a bug in the store")

        monkeypatch.setattr(runlog_module.RunLog, "append", broken)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            with pytest.raises(base.StoreError, match=r"run\(s\) \['r'\].*a bug in the store"):
                await chain(3).run_async(store=store, run_id="r")

    def test_a_full_disk_during_small_commits_fails_the_run_and_never_marks_it_complete(
        self, tmp_path: Path
    ) -> None:
        # A real child process whose files may not grow past 300 kB (RLIMIT_FSIZE): a long
        # chain of small commits fills the database's WAL. The run fails; the links it had
        # logged are kept in its run log, which the next store replays.
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
                    print("logged:", store.commits["log"] > 0)
                    print("StoreError:", exc)
                await store.aclose()

            asyncio.run(main())
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert "logged: True" in out.stdout, out.stderr
        assert f"StoreError: SQLite store {path}:" in out.stdout
        assert "run(s) ['r']" in out.stdout
        with sqlite3.connect(path) as conn:
            (state,) = conn.execute("SELECT state_type FROM runs WHERE id = 'r'").fetchone()
        assert state != "Success"
        seqs = journal_seqs(path, "r")
        assert seqs == list(range(1, len(seqs) + 1))


class TestRecovery:
    def test_links_a_crashed_process_logged_are_replayed_and_never_run_again(
        self, tmp_path: Path
    ) -> None:
        # The child's writer thread hangs after the run's first commit, so every later link
        # is durable only in the run log when the child is killed.
        path = tmp_path / "runs.db"
        out = killed_mid_chain(path, links=12, stop_at=7)
        assert out.count("ran ") == 8
        assert journal_seqs(path, "r") == [1, 2]  # the flow running, link 0 running
        (crashed,) = log_files(path)

        ran: list[int] = []

        @task
        async def link(i: int, previous: int | None = None) -> int:
            ran.append(i)
            return i

        with Flow("chain") as flow:
            previous = None
            for i in range(12):
                previous = link(i, previous)

        async def resume() -> State:
            async with SQLiteStore(path) as store:
                seqs = journal_seqs(path, "r")
                assert crashed not in log_files(path)  # replayed on open, then deleted
                assert seqs == list(range(1, len(seqs) + 1))
                return await flow.run_async(store=store, resume="r")

        state = anyio.run(resume)
        assert state.is_successful()
        assert ran == list(range(7, 12))  # links 0-6 had their final state in the log
        assert sorted(s.result for s in state.result.values()) == list(range(12))

    async def test_an_open_stores_log_is_left_alone(self, tmp_path: Path) -> None:
        path = tmp_path / "runs.db"
        async with SQLiteStore(path) as first:
            (log,) = log_files(path)
            async with SQLiteStore(path) as second:  # another store on the same file
                assert log in log_files(path)
                await chain(3).run_async(store=second, run_id="r")
                assert (await second.get_run("r")).state.is_successful()
            assert log in log_files(path)
            await chain(3).run_async(store=first, run_id="s")
        assert log_files(path) == []

    def test_a_child_forked_by_a_crashed_process_does_not_keep_its_log_alive(
        self, tmp_path: Path
    ) -> None:
        # The process opens a store, forks a child that lives on (a process pool's worker,
        # say), and dies without closing the store: its log must be recoverable at once.
        path = tmp_path / "runs.db"
        pid_file = tmp_path / "child.pid"
        script = textwrap.dedent(
            f"""
            import asyncio, os, time
            from asyncflow.store import SQLiteStore

            async def main():
                store = SQLiteStore({str(path)!r})
                await store.open()
                child = os.fork()
                if child == 0:
                    time.sleep(30)
                    os._exit(0)
                with open({str(pid_file)!r}, "w") as f:
                    f.write(str(child))
                os._exit(0)  # a crash: the store is never closed

            asyncio.run(main())
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0
        child = int(pid_file.read_text())
        try:
            (log,) = log_files(path)

            async def open_store() -> None:
                async with SQLiteStore(path):
                    assert log not in log_files(path)  # recovered while the child lives

            anyio.run(open_store)
            os.kill(child, 0)  # it does live
        finally:
            os.kill(child, signal.SIGKILL)

    async def test_a_forked_childs_copy_of_the_log_is_never_written_deleted_or_locked(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "runs.db"
        async with SQLiteStore(path) as store:
            (log,) = log_files(path)
            runlog_module._forget_in_child()  # what runs in a child process after a fork
            await chain(3).run_async(store=store, run_id="r")
            assert store.commits["log"] == 0  # every batch waited for the database
        assert log in log_files(path)  # not deleted: it is its parent's
        async with SQLiteStore(path):  # nor locked: a store that opens now takes it
            pass
        assert log_files(path) == []
        assert journal_seqs(path, "r") == list(range(1, 9))

    async def test_a_torn_tail_is_cut_and_a_copy_replays_nothing_twice(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "runs.db"
        out = killed_mid_chain(path, links=6, stop_at=3)
        assert "ran 3" in out
        (log,) = log_files(path)
        shutil.copy(log, f"{path}-asyncflow-copy.log")  # the same records, twice
        with open(log, "r+b") as f:  # noqa: ASYNC230 - a test's own small file
            data = bytearray(f.read())
            starts, at = [], 0
            while length := int.from_bytes(data[at : at + 4], "little"):
                starts.append(at)
                at += 12 + length
            assert len(starts) >= 2
            data[starts[-1] + 12] ^= 0xFF  # the last record, torn by the crash
            f.seek(0)
            f.write(data)
        with caplog.at_level("WARNING", logger="asyncflow.store"):
            async with SQLiteStore(path):
                pass
        assert log_files(path) == []
        assert any("torn record" in r.getMessage() for r in caplog.records)
        seqs = journal_seqs(path, "r")
        assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order
        assert len(seqs) > 3

    async def test_a_dead_log_that_would_leave_a_gap_is_not_replayed(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "runs.db"
        killed_mid_chain(path, links=6, stop_at=3)
        with sqlite3.connect(path) as conn:  # the run's start is gone from the database
            conn.execute("DELETE FROM journal")
        with caplog.at_level("WARNING", logger="asyncflow.store"):
            async with SQLiteStore(path):
                pass
        assert journal_seqs(path, "r") == []  # never an event past a gap
        assert any("skips events" in r.getMessage() for r in caplog.records)

    async def test_an_empty_dead_log_is_deleted(self, tmp_path: Path) -> None:
        path = tmp_path / "runs.db"
        async with SQLiteStore(path):
            pass
        dead = runlog_module.RunLog.create(str(path))
        assert dead is not None
        dead._map.close()  # its process died before it logged anything
        os.close(dead._fd)
        async with SQLiteStore(path):
            assert dead.path not in log_files(path)

    async def test_a_dead_log_that_cannot_be_replayed_stops_the_store_naming_it(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "runs.db"
        async with SQLiteStore(path):
            pass
        payload = pickle.dumps([("r", "owner", 1)])  # intact, but not rows of a run log
        bad = f"{path}-asyncflow-bad.log"
        with open(bad, "wb") as f:  # noqa: ASYNC230 - a test's own small file
            f.write(struct.pack("<III", len(payload), zlib.crc32(payload, 1), 1) + payload)
        with pytest.raises(base.StoreError, match=f"run log {re.escape(bad)} could not be"):
            async with SQLiteStore(path):
                pass
        assert log_files(path) == [bad]  # nothing else left behind
        os.rename(bad, f"{bad}.aside")
        async with SQLiteStore(path):
            pass

    async def test_a_run_another_owner_took_is_not_written_from_a_dead_log(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "runs.db"
        killed_mid_chain(path, links=6, stop_at=3)
        with sqlite3.connect(path) as conn:  # a replica adopted the run before replaying
            conn.execute("UPDATE runs SET owner = 'another'")
        with caplog.at_level("WARNING", logger="asyncflow.store"):
            async with SQLiteStore(path):
                pass
        assert journal_seqs(path, "r") == [1, 2]  # fenced: nothing of the old owner's
        assert log_files(path) == []
        assert any("another owner took" in r.getMessage() for r in caplog.records)


class TestCheckpoints:
    async def test_the_writer_checkpoints_the_wal_and_makes_the_write_after_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sqlite_module, "CHECKPOINT_PAGES", 2)  # after every commit
        path = tmp_path / "runs.db"
        async with SQLiteStore(path) as store:
            await run_recorded(chain(40), store, "r")
            await store.aclose()
        with sqlite3.connect(path) as conn:
            (count,) = conn.execute("SELECT value FROM meta WHERE key = 'checkpoints'").fetchone()
        assert count == store.commits["thread"]
        assert count >= 2
        assert journal_seqs(path, "r") == list(range(1, 83))

    async def test_a_failed_checkpoint_loses_nothing_and_is_logged(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def failing(conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("checkpoint refused")

        monkeypatch.setattr(sqlite_module, "CHECKPOINT_PAGES", 1)
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
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with Flow("wide") as flow:
            for i in range(1500):
                step(i)
        handed: list[int] = []
        real = SQLiteStore._write

        def write(self: SQLiteStore, batch: list[Any]) -> None:
            handed.append(sum(len(c.rows) for c in batch))
            real(self, batch)

        monkeypatch.setattr(SQLiteStore, "_write", write)
        async with SQLiteStore(tmp_path / "runs.db") as store:
            recorder = await run_recorded(flow, store, "r")
        assert sum(handed) == 3002
        assert len(handed) >= 3  # handed over mid-tick, journal_module.CHUNK_ROWS at a time
        assert max(handed) <= journal_module.CHUNK_ROWS
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
