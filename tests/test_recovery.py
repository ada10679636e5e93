"""A Runtime with a store: runs outlive the runtime, orphans are adopted, approvals survive.

The crash tests kill a real child process with SIGKILL in the middle of a run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import anyio
import integration_scenarios as scenarios
import pytest
from integration_scenarios import client_of, on_aiohttp, on_uvicorn, read_sse

from asyncflow import Flow, task, triggers
from asyncflow.integrations import Runtime
from asyncflow.integrations.errors import InvalidQuery
from asyncflow.integrations.runtime import UnknownRun
from asyncflow.states import Paused, Running
from asyncflow.store import SQLiteStore

if TYPE_CHECKING:
    from pathlib import Path

    from asyncflow.integrations.record import RunRecord

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def approval_flow(log: list[str]) -> Flow:
    @task
    def prepare() -> int:
        log.append("prepare")
        return 41

    @task(trigger=triggers.manual_only)
    def deploy(x: int) -> int:
        log.append("deploy")
        return x + 1

    with Flow("approval") as flow:
        deploy(prepare())
    return flow


async def until(predicate: object, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110  # polls a registry
            await anyio.sleep(0.01)


def paused(record: RunRecord, name: str) -> bool:
    return any(t.name == name and isinstance(s, Paused) for t, s in record.task_states.items())


class TestRestart:
    async def test_a_paused_run_comes_back_paused_and_is_approved_after_a_restart(
        self, tmp_path: Path
    ) -> None:
        log: list[str] = []
        flow = approval_flow(log)
        path = tmp_path / "runs.db"
        async with Runtime([flow], store=SQLiteStore(path)) as first:
            record = await first.start("approval")
            await until(lambda: paused(record, "deploy"))
        stored = await SQLiteStore(path).get_run(record.id)
        assert isinstance(stored.state, Running)
        assert stored.owner is None  # released at shutdown, not cancelled
        async with Runtime([flow], store=SQLiteStore(path)) as second:
            again = second.get(record.id)
            await until(lambda: paused(again, "deploy"))
            second.resume(record.id, "deploy")
            assert (await again.wait()).is_successful()
        assert log == ["prepare", "deploy"]
        seqs = [e.seq for e in again.events]
        assert seqs == list(range(1, len(seqs) + 1))

    async def test_a_finished_run_of_an_earlier_runtime_is_read_from_the_store(
        self, tmp_path: Path
    ) -> None:
        @task
        def one() -> int:
            return 1

        with Flow("simple") as flow:
            one()
        path = tmp_path / "runs.db"
        async with Runtime([flow], store=SQLiteStore(path)) as first:
            record = await first.start("simple")
            await record.wait()
        async with Runtime([flow], store=SQLiteStore(path)) as second:
            with pytest.raises(UnknownRun):
                second.get(record.id)
            found = await second.lookup(record.id)
            assert found.state.is_successful()
            assert [s.result for s in found.task_states.values()] == [1]
            assert [e.seq for e in found.events] == [1, 2, 3, 4]
            assert found.events[1].subject is flow.get_tasks("one")[0]
            with pytest.raises(UnknownRun, match="'ghost'"):
                await second.lookup("ghost")

    async def test_the_listing_reads_the_store_newest_first(self, tmp_path: Path) -> None:
        @task
        def one() -> int:
            return 1

        with Flow("simple") as flow:
            one()
        path = tmp_path / "runs.db"
        async with Runtime([flow], store=SQLiteStore(path)) as first:
            for run_id in ("a", "b"):
                await (await first.start("simple", run_id=run_id)).wait()
        async with Runtime([flow, approval_flow([])], store=SQLiteStore(path)) as second:
            await (await second.start("simple", run_id="c")).wait()
            page = await second.list_runs(limit=2)
            assert [r.id for r in page] == ["c", "b"]
            assert page[0] is second.get("c")
            assert page[1].state.is_successful()
            assert [s.result for s in page[1].task_states.values()] == [1]
            assert [r.id for r in await second.list_runs(before="b")] == ["a"]
            assert await second.list_runs(flow="approval") == []
            assert [r.id for r in await second.list_runs(state="Success")] == ["c", "b", "a"]
            with pytest.raises(InvalidQuery, match="no run with id 'ghost' is stored"):
                await second.list_runs(before="ghost")

    async def test_without_a_store_lookup_reads_the_registry(self) -> None:
        async with Runtime([approval_flow([])]) as runtime:
            with pytest.raises(UnknownRun):
                await runtime.lookup("ghost")

    def test_a_lease_must_be_positive(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="lease must be a positive"):
            Runtime([approval_flow([])], store=SQLiteStore(tmp_path / "r.db"), lease=0)

    @pytest.mark.realtime
    async def test_a_run_whose_owners_lease_expired_is_adopted(self, tmp_path: Path) -> None:
        log: list[str] = []
        flow = approval_flow(log)
        store = SQLiteStore(tmp_path / "runs.db")
        first = await flow.run_async(store=store, run_id="r", owner="replica-a:1:x", lease=1.5)
        assert isinstance(first, Running)  # left waiting for the approval
        async with Runtime([flow], store=store, lease=0.15) as runtime:
            with pytest.raises(UnknownRun):
                runtime.get("r")  # its owner's lease still holds
            await until(lambda: "r" in {r.id for r in runtime.runs()})
            record = runtime.get("r")
            await until(lambda: paused(record, "deploy"))
            runtime.resume("r", "deploy")
            assert (await record.wait()).is_successful()
        assert log == ["prepare", "deploy"]


CHILD = """
import os, sys, anyio
from asyncflow import Flow, task
from asyncflow.integrations import Runtime
from asyncflow.store import SQLiteStore

path, marks = sys.argv[1], sys.argv[2]

@task
async def step(i: int, x: int) -> int:
    with open(marks, "a") as f:
        f.write(f"start {i}\\n")
    if i == 3 and os.environ.get("CHILD") == "1":
        print("step 3 started", flush=True)
        await anyio.sleep(60)  # killed here
    return x + i

with Flow("steps") as flow:
    x = 0
    for i in range(1, 6):
        x = step(i, x)

async def main() -> None:
    async with Runtime([flow], store=SQLiteStore(path)) as runtime:
        if os.environ.get("CHILD") == "1":
            await runtime.start("steps", run_id="crash")
            await anyio.sleep(60)
        else:
            print("resumed")
            record = runtime.get("crash")
            state = await record.wait()
            print(state, [s.result for s in record.task_states.values()])

anyio.run(main)
"""


class TestCrash:
    def test_a_run_killed_with_sigkill_is_adopted_by_the_next_runtime(self, tmp_path: Path) -> None:
        script = tmp_path / "service.py"
        script.write_text(textwrap.dedent(CHILD))
        path, marks = tmp_path / "runs.db", tmp_path / "marks.txt"
        env = {**os.environ, "PYTHONPATH": ROOT, "CHILD": "1"}
        with subprocess.Popen(
            [sys.executable, str(script), str(path), str(marks)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline() == "step 3 started\n"
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        start = time.monotonic()
        out = subprocess.run(
            [sys.executable, str(script), str(path), str(marks)],
            capture_output=True,
            env={**env, "CHILD": "0"},
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            "resumed",
            'Success("All reference tasks succeeded.") [1, 3, 6, 10, 15]',
        ]
        # Steps 1 and 2 were committed before the kill: they never ran again.
        assert marks.read_text().split("\n")[:-1] == [
            "start 1",
            "start 2",
            "start 3",
            "start 3",
            "start 4",
            "start 5",
        ]
        assert time.monotonic() - start < 30


SERVERS = ["uvicorn", "aiohttp"]


def serve(kind: str, runtime: Runtime) -> Any:
    if kind == "uvicorn":
        return on_uvicorn(runtime, graceful=1.0)
    return on_aiohttp(runtime, manage=False)


async def eventually(check: Any, timeout: float = 10.0) -> None:
    """Poll the async ``check()`` until it is true."""
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110  # it asks a server over HTTP
            await anyio.sleep(0.02)


class TestOverHTTP:
    @pytest.mark.parametrize("kind", SERVERS)
    async def test_history_and_an_approval_survive_a_restart_of_the_service(
        self, tmp_path: Path, kind: str
    ) -> None:
        path = tmp_path / "runs.db"
        async with (
            serve(kind, Runtime([scenarios.approval_flow()], store=SQLiteStore(path))) as api,
            client_of(api) as client,
        ):
            created = await client.post("/flows/approval/runs", json={"parameters": {"draft": "x"}})
            run_id = created.json()["id"]

            async def waiting() -> bool:
                detail = (await client.get(f"/runs/{run_id}")).json()
                return bool(detail["tasks"]["publish"]["type"] == "Paused")

            await eventually(waiting)
        # A new service on the same store: the run is listed, paused, and can be approved.
        async with (
            serve(kind, Runtime([scenarios.approval_flow()], store=SQLiteStore(path))) as api,
            client_of(api) as client,
        ):
            listed = (await client.get("/runs")).json()["runs"]
            assert [r["id"] for r in listed] == [run_id]
            await eventually(waiting)
            approved = await client.post(f"/runs/{run_id}/tasks/publish/resume")
            assert approved.status_code == 202
            async with client.stream("GET", f"/runs/{run_id}/events") as response:
                messages = await read_sse(response.aiter_lines())
        seqs = [int(m["id"]) for m in messages if m.get("event") == "state"]
        assert seqs == list(range(1, len(seqs) + 1))  # the history from before the restart too
        assert messages[-1]["event"] == "end"
        assert messages[-1]["data"]["state"]["type"] == "Success"
