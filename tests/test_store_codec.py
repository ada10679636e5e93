"""How the journal encodes events (on the loop, as they happen) and reads them back."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from asyncflow.states import Failed, Looped, Mapped, Pending, Retrying, Running, Success
from asyncflow.store import MemoryStore, SQLiteStore
from asyncflow.store._codec import LastEncoded, decode_chunk, encode_chunk, encode_event
from asyncflow.store._sqlite_sql import write_chunks
from asyncflow.store.journal import merged
from asyncflow.store.result import StoreResult

if TYPE_CHECKING:
    from pathlib import Path

    from asyncflow.states import State


def roundtrip(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    last = LastEncoded()
    rows = [encode_event(*e, last) for e in events]  # type: ignore[arg-type]
    text = encode_chunk(rows)
    json.loads(text)  # one JSON document
    back = decode_chunk("run", "flow", text, MemoryStore())
    return [
        (e.seq, e.timestamp, e.task_name, e.task_run_id, e.map_index, e.old_state, e.new_state)
        for e in back
    ]


class TestEncodeEvent:
    def test_the_usual_transitions_read_back_as_they_were(self) -> None:
        running = Running("Starting task run.")
        events = [
            (1, 1733228000.25, "load", "run/load", None, Pending(), running),
            (2, 1733228000.5, "load", "run/load", None, running, Success("Task run succeeded.")),
            (3, 1733228001.0, "map", "run/map[2]", 2, Pending(), Success(result=7)),
        ]
        assert roundtrip(events) == events

    @pytest.mark.parametrize("name", [7, 1.5, None, 'quote " and \\ and é'])
    def test_task_names_of_any_json_kind_read_back(self, name: object) -> None:
        (event,) = roundtrip([(1, 2.0, name, "run/x", None, Pending(), Running())])
        assert event[2] == name

    @pytest.mark.parametrize("stamp", [5, 5.0, 1e-7])
    def test_timestamps_read_back_exactly(self, stamp: float) -> None:
        (event,) = roundtrip([(1, stamp, "t", "run/t", None, Pending(), Running())])
        assert event[1] == stamp

    def test_an_old_state_that_is_not_the_last_one_encoded_is_encoded_itself(self) -> None:
        first = Running("first")
        other = Running("changed by a handler")
        got = roundtrip(
            [
                (1, 1.0, "t", "run/t", None, Pending(), first),
                (2, 2.0, "t", "run/t", None, other, Success()),
            ]
        )
        assert got[1][5] == other

    def test_states_with_fields_of_their_own_keep_what_a_resume_needs(self) -> None:
        at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
        states: list[State] = [
            Retrying("again", start_time=at, run_count=2),
            Looped("Looped (iteration 3).", 9, loop_count=3),
            Mapped("Mapped", map_states=[Success(result=1), Failed("no")]),
        ]
        events = [(i, 1.0, "t", f"run/t{i}", None, Pending(), s) for i, s in enumerate(states, 1)]
        got = [e[6] for e in roundtrip(events)]
        assert got[0].start_time == at
        assert got[0].run_count == 2  # type: ignore[attr-defined]
        assert (got[1].result, got[1].loop_count) == (9, 3)  # type: ignore[attr-defined]
        assert [type(s) for s in got[2].map_states] == [Success, Failed]  # type: ignore[attr-defined]

    def test_a_failed_states_error_is_kept_as_its_repr(self) -> None:
        (event,) = roundtrip(
            [(1, 1.0, "t", "run/t", None, Running(), Failed("boom", ValueError("bad")))]
        )
        assert isinstance(event[6], Failed)
        assert event[6].result is None  # the error object is not stored, its repr is


class TestWriteChunks:
    async def test_a_transaction_that_fails_writes_nothing_of_its_batch(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "runs.db"
        async with SQLiteStore(path) as store:
            await one_run(store)
            journal = store.journal("r", store_owner(path), 2)
            journal.append(1, 1.0, "t", "r/t", None, Pending(), Running())  # seq 1 again
            chunk = journal.take(0.0)
            assert chunk is not None
            with sqlite3.connect(path, isolation_level=None) as conn:
                (before,) = conn.execute("SELECT count(*) FROM journal").fetchone()
                with pytest.raises(sqlite3.IntegrityError):
                    write_chunks(conn, [chunk], str(path))  # a row that is there already
                assert not conn.in_transaction
                assert conn.execute("SELECT count(*) FROM journal").fetchone() == (before,)


async def one_run(store: SQLiteStore) -> None:
    from asyncflow import Flow, task

    @task
    def t() -> None:
        return None

    with Flow("f") as flow:
        t()
    await flow.run_async(store=store, run_id="r")


def store_owner(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        (owner,) = conn.execute("SELECT owner FROM runs WHERE id = 'r'").fetchone()
    return str(owner)


class TestMerged:
    async def test_a_runs_chunks_become_one_row_in_order_keeping_what_each_carried(self) -> None:
        store = MemoryStore()
        a, b = store.journal("a", "me"), store.journal("b", "me")
        chunks = []
        for seq, journal, task_name, checkpoint in [
            (1, a, None, False),  # a's flow state
            (1, b, "t", False),
            (2, a, "t", True),  # a checkpointed value
        ]:
            new = Success(result=seq)
            if checkpoint:
                result = StoreResult(seq, f"{journal.run_id}/t", store=store)
                new = Success(result=seq, checkpoint=result)
            journal.append(seq, 1.0, task_name, None, None, Running(), new, checkpoint)
            chunk = journal.take(0.0 if seq == 1 else 0.5)
            assert chunk is not None
            chunks.append(chunk)
        first, second = merged(chunks)
        assert (first.journal, first.first, first.last) == (a, 1, 2)
        assert [json.loads(r)[0] for r in first.rows] == [1, 2]
        assert first.flow_state == Success(result=1)  # the earlier chunk's, kept
        assert first.touch  # from the first chunk
        assert [loc for loc, _, _ in first.values] == ["a/t"]
        assert (second.journal, second.first, second.last) == (b, 1, 1)
