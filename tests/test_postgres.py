"""PostgresStore on a real private server: bad input, and runs shared by replicas.

The replica test runs replica A in a child process, follows its run from replica B (this
process) through the store's LISTEN/NOTIFY, kills A with SIGKILL and watches B adopt and finish
the run. (The store behaviours shared with SQLite run against PostgreSQL in test_store.py and
test_durable.py, through the ``store`` fixture.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import anyio
import pytest

from asyncflow import Flow, task
from asyncflow.integrations import Runtime
from asyncflow.store import PostgresStore, StoreError

if TYPE_CHECKING:
    from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TestBadInput:
    def test_a_dsn_that_is_not_a_postgresql_uri_is_refused(self) -> None:
        with pytest.raises(ValueError, match="postgresql:// URI, got 'mysql://x'"):
            PostgresStore("mysql://x")

    async def test_an_unreachable_server_is_named_without_its_password(self) -> None:
        with pytest.raises(StoreError, match=r"postgresql://me:\*\*\*@127.0.0.1:1/db") as info:
            await PostgresStore("postgresql://me:secret@127.0.0.1:1/db").open()
        assert "secret" not in str(info.value)

    async def test_a_newer_schema_is_refused(self, postgres_dsn: str) -> None:
        async with PostgresStore(postgres_dsn) as store:
            await store._exec("INSERT INTO asyncflow_schema VALUES (99)")
        with pytest.raises(StoreError, match="schema version 99, newer"):
            await PostgresStore(postgres_dsn).open()


REPLICA = """
import os, sys, anyio
from asyncflow.integrations import Runtime
from asyncflow.store import PostgresStore
sys.path.insert(0, os.environ["TESTS"])
from test_postgres import shared_flow

async def main() -> None:
    flow = shared_flow(hang=True)
    async with Runtime([flow], store=PostgresStore(sys.argv[1]), lease=1.0) as runtime:
        await runtime.start(flow.name, run_id="shared")
        await anyio.sleep(120)

anyio.run(main)
"""


def shared_flow(hang: bool = False) -> Flow:
    @task
    async def step(i: int) -> int:
        if hang and i == 3:
            print("hanging", flush=True)
            await anyio.sleep(120)
        return i * 10

    with Flow("shared") as flow:
        previous = None
        for i in range(1, 5):
            previous = step(i, upstream_tasks=[previous] if previous is not None else None)
    return flow


class TestReplicas:
    async def test_a_run_of_a_killed_replica_is_followed_then_adopted_by_another(
        self, postgres_dsn: str, tmp_path: Path
    ) -> None:
        script = tmp_path / "replica.py"
        script.write_text(textwrap.dedent(REPLICA))
        env = {**os.environ, "PYTHONPATH": ROOT, "TESTS": os.path.join(ROOT, "tests")}
        async with Runtime([shared_flow()], store=PostgresStore(postgres_dsn), lease=1.0) as b:
            with subprocess.Popen(  # noqa: ASYNC220  # started at once; read in a thread
                [sys.executable, str(script), postgres_dsn],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                text=True,
            ) as replica_a:
                assert replica_a.stdout is not None
                line = await anyio.to_thread.run_sync(replica_a.stdout.readline)
                assert line == "hanging\n"
                # Replica B lists and follows the run replica A is running.
                assert "shared" in [r.id for r in await b.store.list_runs()]  # type: ignore[union-attr]
                followed = await b.lookup("shared")
                assert not followed.done
                assert any(e.task_name == "step" for e in followed.events)
                replica_a.send_signal(signal.SIGKILL)
                replica_a.wait()
            with anyio.fail_after(30):
                state = await followed.wait()  # B adopts the run and finishes it
            assert state.is_successful()
            adopted = b.get("shared")
            assert (await adopted.wait()).is_successful()
            assert [s.result for s in adopted.task_states.values()] == [10, 20, 30, 40]
            seqs = [e.seq for e in followed.events]
            assert seqs == list(range(1, len(seqs) + 1))
