"""Specification of the dashboard: one HTML page that lists runs and follows one run live.

The page is opened in headless Chromium (Debian's package, installed by ``make test`` through
``.ci/ensure-chromium.sh``), driven over the DevTools protocol, against real servers of both
integrations; what it shows is compared with the run itself.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest
from integration_scenarios import on_aiohttp, on_uvicorn, until

from asyncflow import Flow, Parameter, task
from asyncflow.integrations import Runtime
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from asyncflow import EventBus
    from asyncflow.integrations import RunRecord

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (make test installs Debian's package with "
    ".ci/ensure-chromium.sh, which needs root and apt-get)",
)
FRAMEWORKS = ["aiohttp", "fastapi"]


def release_flow(gate: anyio.Event) -> Flow:
    """``versions -> build.map -> approve (manual) -> announce``; ``build`` waits for ``gate``."""

    @task
    async def versions(count: int) -> list[int]:
        return list(range(count))

    @task
    async def build(version: int) -> str:
        await gate.wait()
        return f"build-{version}"

    @task(trigger=manual_only)
    async def approve(builds: list[str]) -> int:
        return len(builds)

    @task
    async def announce(n: int) -> str:
        return f"released {n} builds"

    with Flow("release") as flow:
        announce(approve(build.map(versions(Parameter("count", default=2)))))
    return flow


@contextlib.asynccontextmanager
async def served(framework: str, runtime: Runtime) -> AsyncIterator[str]:
    """The routes under ``/api`` on a real server of ``framework``; yields the base URL."""
    serving = on_aiohttp(runtime, True) if framework == "aiohttp" else on_uvicorn(runtime, None)
    async with serving as base_url:
        yield base_url


class Page:
    """One Chromium tab, driven over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:  # skip the protocol's events until our answer comes
            message: dict[str, Any] = await self.ws.receive_json()
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message["result"]  # type: ignore[no-any-return]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_for(self, expression: str, expected: Any, seconds: float = 5.0) -> Any:
        """Evaluate until it gives ``expected``; return the last value either way."""
        value = None
        with anyio.move_on_after(seconds):
            while (value := await self.evaluate(expression)) != expected:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        return value


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Page]:
    """Headless Chromium with a debugging port; yields its first tab."""
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    quiet = subprocess.DEVNULL
    process = await anyio.open_process(args, stdin=quiet, stdout=quiet, stderr=quiet)
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it chose here
        await until(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, 20)
        port = port_file.read_text().splitlines()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            tab = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Page(ws)
    finally:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


TASKS_SHOWN = (
    "Object.fromEntries([...document.querySelectorAll('tr.task')]"
    ".map(row => [row.dataset.task, row.dataset.state]))"
)
RUN_SHOWN = (
    "document.getElementById('run-state').dataset.state + ' ' + document.body.dataset.stream"
)


def states_of(record: RunRecord) -> dict[str, str]:
    """What the page must show: each task's state now, and each mapped child's as ``name[i]``."""
    shown = {t.name: type(state).__name__ for t, state in record.task_states.items()}
    for event in record.events:  # the run's own history says where each child is
        if event.map_index is not None:
            shown[f"{event.task_name}[{event.map_index}]"] = type(event.new_state).__name__
    return dict(sorted(shown.items()))


class TestThePage:
    @pytest.mark.parametrize("framework", FRAMEWORKS)
    async def test_get_dashboard_serves_one_self_contained_html_page(
        self, bus: EventBus, framework: str
    ) -> None:
        async with (
            served(framework, Runtime({}, bus=bus)) as base,
            aiohttp.ClientSession() as session,
            session.get(f"{base}/dashboard?run=x") as response,
        ):
            page = await response.text()
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
        assert page.startswith("<!doctype html>")
        assert "new EventSource(" in page
        assert "<script src" not in page
        assert "<link" not in page  # no build step, nothing fetched but the API


@needs_chromium
class TestInChromium:
    @pytest.mark.parametrize("framework", FRAMEWORKS)
    async def test_the_run_page_shows_each_task_changing_state_live(
        self, bus: EventBus, tmp_path: Path, framework: str
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime({"release": release_flow(gate)}, bus=bus)
        async with served(framework, runtime) as base, chromium(tmp_path) as page:
            record = await runtime.start("release", {"count": 3})
            await until(lambda: states_of(record).get("build[2]") == "Running", 5)
            await page.call("Page.navigate", url=f"{base}/dashboard?run={record.id}")
            while_building = await page.wait_for(TASKS_SHOWN, states_of(record))
            gate.set()
            await until(lambda: states_of(record).get("approve") == "Paused", 5)
            while_paused = await page.wait_for(TASKS_SHOWN, states_of(record))
            # The page's own button approves the paused task through the API.
            await page.evaluate("document.querySelector('tr[data-task=approve] button').click()")
            final = await page.wait_for(RUN_SHOWN, "Success ended")
            tasks = await page.evaluate(TASKS_SHOWN)
            logged = await page.evaluate("[...document.querySelectorAll('#log li')].length")
        assert while_building == {
            "count": "Success",
            "versions": "Success",
            "build": "Running",
            "build[0]": "Running",
            "build[1]": "Running",
            "build[2]": "Running",
            "approve": "Pending",
            "announce": "Pending",
        }
        assert while_paused["approve"] == "Paused"
        assert final == "Success ended"
        assert record.state.is_successful()
        assert tasks == states_of(record)
        assert tasks["build[2]"] == "Success"
        assert tasks["build"] == "Mapped"
        assert logged == len(record.events)  # one line per event: none lost on the way

    async def test_the_list_links_every_run(self, bus: EventBus, tmp_path: Path) -> None:
        gate = anyio.Event()
        gate.set()
        runtime = Runtime({"release": release_flow(gate)}, bus=bus)
        async with served("aiohttp", runtime) as base, chromium(tmp_path) as page:
            for i in range(3):  # each stops at the approval step
                await runtime.start("release", run_id=f"run-{i}")
            runtime.cancel("run-1")
            await runtime.get("run-1").wait()
            await page.call("Page.navigate", url=f"{base}/dashboard")
            links = await page.wait_for(
                "[...document.querySelectorAll('tr.run a')].map(a => a.getAttribute('href'))",
                ["dashboard?run=run-2", "dashboard?run=run-1", "dashboard?run=run-0"],
            )
            shown = await page.evaluate(
                "[...document.querySelectorAll('tr.run .badge')].map(b => b.dataset.state)"
            )
        assert links == ["dashboard?run=run-2", "dashboard?run=run-1", "dashboard?run=run-0"]
        assert shown == ["Running", "Cancelled", "Running"]
