"""The run stores: records, listing, the journal, checkpoints and bad input.

Every behaviour is checked on the real SQLite store and on the in-memory one.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import anyio.to_thread
import attrs
import pytest

from asyncflow import EventBus, Flow, task
from asyncflow.results import LocalResult
from asyncflow.states import Failed, Running, Scheduled, State, Success, TriggerFailed
from asyncflow.store import (
    OwnershipLost,
    RunNotFound,
    RunRecord,
    SQLiteStore,
    Store,
    StoreError,
)
from asyncflow.store.base import process_owner
from asyncflow.store.result import StoreResult
from asyncflow.testing import EventRecorder

if TYPE_CHECKING:
    from pathlib import Path


def record(run_id: str, flow: str = "f", state: State | None = None, at: float = 1.0) -> RunRecord:
    return RunRecord(run_id, flow, "v1", {"x": 1}, state or Scheduled(), at, at, None)


@task
def add(x: int, y: int) -> int:
    return x + y


def small_flow() -> Flow:
    with Flow("small") as flow:
        a = add(1, 2)
        add(a, 10)
    return flow


class TestRecords:
    async def test_a_created_run_reads_back_with_every_field(self, store: Store) -> None:
        await store.create_run(record("r1", at=5.0))
        got = await store.get_run("r1")
        assert (got.id, got.flow_name, got.flow_version, got.parameters) == (
            "r1",
            "f",
            "v1",
            {"x": 1},
        )
        assert (type(got.state), got.created, got.updated, got.owner) == (Scheduled, 5.0, 5.0, None)

    async def test_an_unknown_id_raises_run_not_found_naming_it(self, store: Store) -> None:
        with pytest.raises(RunNotFound, match="'nope'") as info:
            await store.get_run("nope")
        assert isinstance(info.value, LookupError)

    async def test_a_second_run_with_the_same_id_is_refused(self, store: Store) -> None:
        await store.create_run(record("r1"))
        with pytest.raises(StoreError, match="'r1' already exists"):
            await store.create_run(record("r1"))


class TestListRuns:
    async def test_newest_first_with_insertion_order_breaking_ties(self, store: Store) -> None:
        for run_id, at in [("a", 1.0), ("b", 3.0), ("c", 2.0), ("d", 3.0)]:
            await store.create_run(record(run_id, at=at))
        assert [r.id for r in await store.list_runs()] == ["d", "b", "c", "a"]

    async def test_pages_follow_each_other_with_before(self, store: Store) -> None:
        for i in range(7):
            await store.create_run(record(f"r{i}", at=float(i // 2)))
        pages, before = [], None
        while True:
            page = await store.list_runs(limit=3, before=before)
            if not page:
                break
            pages.append([r.id for r in page])
            before = page[-1].id
        assert pages == [["r6", "r5", "r4"], ["r3", "r2", "r1"], ["r0"]]

    @pytest.mark.parametrize(
        ("wanted", "ids"),
        [
            ("Failed", ["tf", "f"]),
            (Failed, ["tf", "f"]),
            (TriggerFailed, ["tf"]),
            ("Success", ["s"]),
            ("State", ["tf", "s", "f", "p"]),
        ],
    )
    async def test_state_matches_the_class_and_its_subclasses(
        self, store: Store, wanted: type[State] | str, ids: list[str]
    ) -> None:
        states = {"p": Scheduled(), "f": Failed("x"), "s": Success("y"), "tf": TriggerFailed("z")}
        for i, (run_id, state) in enumerate(states.items()):
            await store.create_run(record(run_id, state=state, at=float(i)))
        assert [r.id for r in await store.list_runs(state=wanted)] == ids

    async def test_flow_keeps_only_that_flows_runs(self, store: Store) -> None:
        await store.create_run(record("a", flow="one"))
        await store.create_run(record("b", flow="two"))
        assert [r.id for r in await store.list_runs(flow="two")] == ["b"]

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"limit": 0}, ValueError, "limit must be at least 1"),
            ({"state": "Happy"}, ValueError, "'Happy' is not a state class"),
            ({"state": int}, TypeError, "State class or its name"),
            ({"before": "ghost"}, RunNotFound, "'ghost'"),
        ],
    )
    async def test_bad_arguments_are_refused_by_name(
        self, store: Store, kwargs: dict[str, object], error: type[Exception], match: str
    ) -> None:
        with pytest.raises(error, match=match):
            await store.list_runs(**kwargs)  # type: ignore[arg-type]


class TestOwnership:
    async def test_claim_takes_a_run_only_from_the_expected_owner(self, store: Store) -> None:
        await store.create_run(record("r"))
        assert await store.claim("r", "a", None, 10.0)
        assert not await store.claim("r", "b", None, None)
        assert await store.claim("r", "b", "a", None)
        assert (await store.get_run("r")).owner == "b"

    async def test_renew_extends_the_lease_of_the_owners_unfinished_runs(
        self, store: Store
    ) -> None:
        await store.create_run(attrs.evolve(record("open"), owner="a", lease_until=1.0))
        await store.create_run(
            attrs.evolve(record("done", state=Success("x")), owner="a", lease_until=1.0)
        )
        await store.create_run(attrs.evolve(record("other"), owner="b", lease_until=1.0))
        await store.renew("a", 99.0)
        leases = {r.id: r.lease_until for r in await store.list_runs()}
        assert leases == {"open": 99.0, "done": 1.0, "other": 1.0}

    async def test_release_gives_up_only_the_owners_claim(self, store: Store) -> None:
        await store.create_run(attrs.evolve(record("mine"), owner="a", lease_until=5.0))
        await store.create_run(attrs.evolve(record("theirs"), owner="b", lease_until=5.0))
        await store.release("a", ["mine", "theirs", "ghost"])
        owners = {r.id: (r.owner, r.lease_until) for r in await store.list_runs()}
        assert owners == {"mine": (None, None), "theirs": ("b", 5.0)}

    async def test_unfinished_lists_the_served_flows_open_runs_oldest_first(
        self, store: Store
    ) -> None:
        await store.create_run(record("late", flow="f", state=Running(), at=3.0))
        await store.create_run(record("early", flow="f", at=1.0))
        await store.create_run(record("over", flow="f", state=Failed("x"), at=2.0))
        await store.create_run(record("elsewhere", flow="g", at=0.5))
        assert [r.id for r in await store.unfinished(["f"])] == ["early", "late"]
        assert await store.unfinished([]) == []


class TestJournal:
    async def test_the_stored_events_are_what_a_subscriber_saw(self, store: Store) -> None:
        bus, recorder = EventBus(), EventRecorder()
        bus.subscribe(recorder)
        with Flow("mapped") as flow:
            add.map([1, 2, 3], y=add(1, 1))
        await flow.run_async(store=store, bus=bus, run_id="r")

        def view(events: list[object]) -> list[tuple[object, ...]]:
            return [
                (
                    e.seq,
                    e.task_name,
                    e.task_run_id,
                    e.map_index,
                    type(e.new_state),
                    e.new_state.message,
                )  # type: ignore[attr-defined]
                for e in events
            ]

        stored = [e async for e in store.events("r")]
        assert view(stored) == view(recorder.events)
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))

    async def test_events_after_a_seq_skip_the_earlier_ones(self, store: Store) -> None:
        await small_flow().run_async(store=store, run_id="r")
        assert [e.seq for e in [e async for e in store.events("r", after=4)]] == [5, 6]

    async def test_events_of_an_unknown_run_raise_run_not_found(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            [e async for e in store.events("ghost")]

    async def test_the_run_record_follows_the_flow_state(self, store: Store) -> None:
        await small_flow().run_async(store=store, run_id="r", parameters=None)
        got = await store.get_run("r")
        assert got.state == Success("All reference tasks succeeded.")
        assert got.owner == process_owner()
        assert got.updated >= got.created

    async def test_a_run_whose_owner_changed_cannot_write_any_more(self, store: Store) -> None:
        @task
        async def steal() -> None:
            await store.claim("r", "someone-else", process_owner(), None)

        with Flow("stolen") as flow:
            s = steal()
            add(1, 2, upstream_tasks=[s])
        with pytest.raises(OwnershipLost, match="no longer owned"):
            await flow.run_async(store=store, run_id="r")
        got = await store.get_run("r")
        assert got.owner == "someone-else"
        assert not got.state.is_finished()  # the run's end was never written

    async def test_one_batch_writes_the_runs_it_may_and_refuses_the_one_it_lost(
        self, store: Store
    ) -> None:
        await store.create_run(attrs.evolve(record("mine"), owner="me"))
        await store.create_run(attrs.evolve(record("lost"), owner="someone-else"))
        mine, lost = store.journal("mine", "me"), store.journal("lost", "me")
        for seq in (1, 2):  # both runs append in the same tick: one batch
            for journal in (mine, lost):
                journal.append(seq, 1.0, "t", f"{journal.run_id}/t", None, Scheduled(), Running())
            if seq == 1:
                store._flush()  # two chunks of each run in the writer's queue
        with pytest.raises(OwnershipLost, match=r"'lost'.*no longer owned"):
            await lost.flush()
        await mine.flush()
        assert [e.seq async for e in store.events("mine")] == [1, 2]
        assert [e.seq async for e in store.events("lost")] == []


class TestCheckpoints:
    async def test_a_result_is_pickled_into_the_store_at_the_states_location(
        self, store: Store
    ) -> None:
        final = await small_flow().run_async(store=store, run_id="r")
        states = {t.slug: s for t, s in final.result.items()}
        assert states["add-1"].location == "r/add-1"
        assert await store.results(["r/add-1", "r/add-2", "r/missing"]) == {
            "r/add-1": 3,
            "r/add-2": 13,
        }

    async def test_a_stored_checkpoint_reads_back_through_its_store_result(
        self, store: Store
    ) -> None:
        await small_flow().run_async(store=store, run_id="r")
        events = [e async for e in store.events("r")]
        checkpoint = events[2].new_state.checkpoint
        assert isinstance(checkpoint, StoreResult)
        assert checkpoint.location == "r/add-1"
        assert await anyio.to_thread.run_sync(checkpoint.exists, "r/add-1")
        assert not await anyio.to_thread.run_sync(checkpoint.exists, "r/nothing")
        read = await anyio.to_thread.run_sync(checkpoint.read, "r/add-1")
        assert read.value == 3
        with pytest.raises(KeyError, match="no checkpointed value at 'r/nothing'"):
            await anyio.to_thread.run_sync(checkpoint.read, "r/nothing")

    async def test_a_task_with_its_own_result_writes_there_and_resumes_from_there(
        self, store: Store, tmp_path: Path
    ) -> None:
        calls: list[int] = []

        @task(result=LocalResult(str(tmp_path / "results"), location="{task_name}.pickle"))
        def kept() -> int:
            calls.append(1)
            return 7

        @task
        def fails(x: int) -> int:
            if len(calls) == 1:
                raise ValueError("first time")
            return x * 2

        with Flow("own") as flow:
            fails(kept())
        await flow.run_async(store=store, run_id="r")
        assert (tmp_path / "results" / "kept.pickle").exists()
        assert await store.results(["r/kept"]) == {}
        calls.append(2)
        final = await flow.run_async(store=store, resume="r")
        assert sorted(s.result for s in final.result.values()) == [7, 14]
        assert calls == [1, 2]

    async def test_checkpoint_false_writes_nothing(self, store: Store) -> None:
        @task(checkpoint=False)
        def secret() -> str:
            return "s3cret"

        with Flow("private") as flow:
            secret()
        final = await flow.run_async(store=store, run_id="r")
        (state,) = final.result.values()
        assert state.location is None
        assert await store.results(["r/secret"]) == {}

    async def test_an_unpicklable_result_fails_the_run_naming_the_task(self, store: Store) -> None:
        @task
        def handle() -> object:
            return lambda: None

        with Flow("unpicklable") as flow:
            handle()
        with pytest.raises(StoreError, match=r"result of task 'handle'.*cannot be checkpointed"):
            await flow.run_async(store=store, run_id="r")
        assert not (await store.get_run("r")).state.is_finished()


class TestSQLiteFile:
    async def test_when_run_async_returns_another_connection_sees_the_whole_run(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "runs.db"
        await small_flow().run_async(store=SQLiteStore(path), run_id="r")
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT events FROM journal WHERE run_id = 'r'").fetchall()
            (state,) = conn.execute("SELECT state_type FROM runs WHERE id = 'r'").fetchone()
        seqs = [event[0] for (text,) in rows for event in json.loads(text)]
        assert (seqs, state) == ([1, 2, 3, 4, 5, 6], "Success")

    async def test_a_downstream_task_starts_after_its_upstreams_final_state_is_committed(
        self, tmp_path: Path
    ) -> None:
        # When `second` starts, the process could die: what would the next store see? A
        # snapshot of the database and of the store's run log at one instant (the store's
        # writer is held off by a lock meanwhile), opened by a store of its own, which
        # replays that log (its lock is free).
        path = tmp_path / "runs.db"
        snapshot = tmp_path / "snapshot.db"
        seen: list[str] = []  # the states of `first` a store recovering at that moment sees

        @task
        def first() -> int:
            return 1

        @task
        def second(x: int) -> None:
            lock = sqlite3.connect(path, isolation_level=None)
            try:
                lock.execute("BEGIN IMMEDIATE")  # nothing moves from the log to the database
                for log in glob.glob(f"{path}-asyncflow-*.log"):
                    shutil.copy(log, f"{snapshot}-asyncflow-{os.path.basename(log)}")
                with sqlite3.connect(path) as reader, sqlite3.connect(snapshot) as copy:
                    reader.backup(copy)
                lock.execute("ROLLBACK")
            finally:
                lock.close()

            async def recovered() -> None:
                async with SQLiteStore(snapshot) as store:
                    async for e in store.events("r"):
                        if e.task_name == "first":
                            seen.append(type(e.new_state).__name__)

            asyncio.run(recovered())

        with Flow("ordered") as flow:
            second(first())
        async with SQLiteStore(path) as store:
            await flow.run_async(store=store, run_id="r")
        assert seen == ["Running", "Success"]

    async def test_a_new_file_gets_the_current_schema(self, tmp_path: Path) -> None:
        path = tmp_path / "new.db"
        async with SQLiteStore(path):
            pass
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (2,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    @pytest.mark.parametrize(("mode", "level"), [("normal", 1), ("full", 2)])
    async def test_synchronous_sets_the_connections_mode(
        self, tmp_path: Path, mode: str, level: int
    ) -> None:
        async with SQLiteStore(tmp_path / "s.db", synchronous=mode) as store:  # type: ignore[arg-type]
            got = await store._call(lambda: store._db.execute("PRAGMA synchronous").fetchone())
        assert got == (level,)

    def test_an_unknown_synchronous_mode_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match='"normal" or "full", got \'off\''):
            SQLiteStore(tmp_path / "s.db", synchronous="off")  # type: ignore[arg-type]

    async def test_a_file_that_is_not_a_database_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("hello, this is not SQLite\n" * 100)
        with pytest.raises(StoreError, match=f"{path}.*not a database"):
            await SQLiteStore(path).open()

    async def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "future.db"
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
        with pytest.raises(StoreError, match=f"{path} has schema version 99, newer"):
            await SQLiteStore(path).open()

    async def test_a_locked_database_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "locked.db"
        async with SQLiteStore(path):
            pass
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError, match=f"{path}: the database is locked"):
                await small_flow().run_async(store=SQLiteStore(path, timeout=0.05))
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    def test_a_full_disk_fails_the_run_and_never_marks_it_complete(self, tmp_path: Path) -> None:
        # A real child process whose files may not grow past 200 kB (RLIMIT_FSIZE).
        path = tmp_path / "full.db"
        script = textwrap.dedent(
            f"""
            import resource, signal, asyncio
            from asyncflow import Flow, task
            from asyncflow.store import SQLiteStore, StoreError
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

            @task
            def big():
                return b"x" * 1_000_000

            with Flow("big") as flow:
                big()
            try:
                asyncio.run(flow.run_async(store=SQLiteStore({str(path)!r}), run_id="r"))
            except StoreError as exc:
                print("StoreError:", exc)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert f"StoreError: SQLite store {path}:" in out.stdout, out.stderr
        assert "run(s) ['r']" in out.stdout
        with sqlite3.connect(path) as conn:
            (state,) = conn.execute("SELECT state_type FROM runs WHERE id = 'r'").fetchone()
        assert state != "Success"


def test_time_moves_forward() -> None:  # the stores stamp wall-clock times
    assert time.time() > 1_600_000_000
