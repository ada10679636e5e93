"""A durable run: a child process runs a flow with a SQLite store, is killed with SIGKILL
half-way, and this process resumes the run from the store. Steps 1 to 3 were committed before
the kill, so they keep their results and do not run again; step 4 was running, so it runs
again, then steps 5 and 6.

Run it with ``python examples/durable.py``.

Expected output contains:
    child: step 1 running
    child: step 3 running
    child: step 4 running
    killed the child with SIGKILL during step 4
    stored run: Running("Running flow."), 3 steps committed as finished
    resumed: step 4 running
    resumed: step 6 running
    Success("All reference tasks succeeded.") total=21, steps run again: [4, 5, 6]
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile

from asyncflow import Flow, task
from asyncflow.store import SQLiteStore

WHO = "child" if os.environ.get("DURABLE_CHILD") else "resumed"
ran: list[int] = []


@task
async def step(i: int, total: int) -> int:
    print(f"{WHO}: step {i} running", flush=True)
    ran.append(i)
    if i == 4 and WHO == "child":
        await asyncio.sleep(60)  # the parent kills the process here
    return total + i


with Flow("six-steps") as flow:
    total = 0
    for i in range(1, 7):
        total = step(i, total)


async def resume(path: str) -> None:
    async with SQLiteStore(path) as store:
        stored = await store.get_run("demo")
        n = len([e async for e in store.events("demo") if e.new_state.is_successful()])
        print(f"stored run: {stored.state!r}, {n} steps committed as finished")
        final = await flow.run_async(store=store, resume="demo")
    last = final.result[total].result
    print(f"{final!r} total={last}, steps run again: {ran}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        asyncio.run(flow.run_async(store=SQLiteStore(sys.argv[2]), run_id="demo"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "runs.db")
        env = {**os.environ, "DURABLE_CHILD": "1"}
        with subprocess.Popen(
            [sys.executable, __file__, "--child", path],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                print(line, end="")
                if "step 4 running" in line:
                    break
            child.send_signal(signal.SIGKILL)
            child.wait()
        print("killed the child with SIGKILL during step 4")
        asyncio.run(resume(path))


if __name__ == "__main__":
    main()
