"""Headless Chromium for the run page's tests: one browser per test module, one tab per test.

Not a test file. ``browser`` (a module-scoped fixture) starts Debian's Chromium (installed by
``make test`` through ``.ci/ensure-chromium.sh``) with a DevTools port; ``tab(port)`` opens a
fresh tab and drives it over the DevTools protocol. ``page_on(framework, runtime)`` serves the
routes under ``/api`` on a real server of either integration. With ``ASYNCFLOW_SCREENSHOTS`` set
to a folder, :meth:`Tab.screenshot` saves PNGs there (how ``docs/images`` is made); otherwise it
only checks that a screenshot can be taken.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest
from integration_scenarios import on_aiohttp, on_uvicorn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from asyncflow.integrations import Runtime

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (make test installs Debian's package with "
    ".ci/ensure-chromium.sh, which needs root and apt-get)",
)
FRAMEWORKS = ["aiohttp", "fastapi"]
SCREENSHOTS = os.environ.get("ASYNCFLOW_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless Chromium for the whole module; yields its DevTools ``host:port``."""
    assert CHROMIUM is not None
    # A profile folder that pytest removes later: Chromium's helpers may still write to it
    # for a moment after the browser has exited.
    profile = tmp_path_factory.mktemp("chromium")
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
        "--hide-scrollbars",
        "--font-render-hinting=none",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    quiet = subprocess.DEVNULL
    process = subprocess.Popen(args, stdin=quiet, stdout=quiet, stderr=quiet)
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port here
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert time.monotonic() < deadline, "chromium did not start"
            assert process.poll() is None, "chromium exited"
            time.sleep(0.02)
        yield "127.0.0.1:" + port_file.read_text().splitlines()[0]
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Tab:
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

    async def wait_for(self, expression: str, expected: Any, seconds: float = 15.0) -> Any:
        """Evaluate until it gives ``expected``, and return it.

        Raises:
            AssertionError: it did not within ``seconds``; the message tells what the page
                shows (its connection line, its error line, the start of its text).
        """
        value = None
        with anyio.move_on_after(seconds):
            while (value := await self.evaluate(expression)) != expected:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            return value
        shown = await self.evaluate(
            "[document.getElementById('connection')?.textContent,"
            " document.getElementById('error')?.textContent,"
            " document.body.innerText.slice(0, 600)]"
        )
        raise AssertionError(f"{expression} gave {value!r}, not {expected!r}; the page: {shown}")

    async def open(self, url: str) -> None:
        """Navigate to ``url`` and wait until its scripts have run."""
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState", "complete")

    async def press(self, key: str) -> None:
        """Press and release ``key`` ("Enter", "Tab", " ", "Escape") in the focused element."""
        code = {"Enter": 13, "Tab": 9, " ": 32, "Escape": 27}[key]
        text = {"Enter": "\r", " ": " "}.get(key)
        down: dict[str, Any] = {"type": "keyDown", "key": key, "windowsVirtualKeyCode": code}
        if text is not None:
            down["text"] = text
        await self.call("Input.dispatchKeyEvent", **down)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key)

    async def screenshot(self, name: str, width: int = 1280, height: int = 860) -> bytes:
        """A PNG of the tab at ``width`` x ``height``; saved as ``<name>.png`` in the folder
        ``ASYNCFLOW_SCREENSHOTS`` names, when it is set."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await anyio.sleep(0.3)  # a frame or two for the page to lay itself out again
        shot = await self.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        if SCREENSHOTS:
            folder = anyio.Path(SCREENSHOTS)
            await folder.mkdir(parents=True, exist_ok=True)
            await (folder / f"{name}.png").write_bytes(png)
        return png


@contextlib.asynccontextmanager
async def tab(browser: str) -> AsyncIterator[Tab]:
    """A new tab of ``browser``, closed afterwards."""
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://{browser}/json/new?about:blank") as response:
            target = await response.json()
        try:
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Tab(ws)
                await page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=1280,
                    height=860,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                yield page
        finally:
            async with session.get(f"http://{browser}/json/close/{target['id']}"):
                pass


class Restartable:
    """``runtime``'s routes (aiohttp, under ``/api``) on a port that can go down and come back,
    while the runtime and its runs go on."""

    def __init__(self, runtime: Runtime, middlewares: list[Any] | None = None) -> None:
        from aiohttp import web

        from asyncflow.integrations.aiohttp import subapp

        self.app = web.Application(middlewares=middlewares or [])
        self.app.add_subapp("/api/", subapp(runtime, manage=False))
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def start(self) -> None:
        from aiohttp import web

        self.runner = web.AppRunner(self.app, shutdown_timeout=1, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the port and every connection (open event streams included)."""
        assert self.runner is not None
        await self.runner.cleanup()
        self.runner = None


@contextlib.asynccontextmanager
async def restartable(
    runtime: Runtime, middlewares: list[Any] | None = None
) -> AsyncIterator[Restartable]:
    """A :class:`Restartable` server of ``runtime`` (with aiohttp ``middlewares``), started;
    the runtime lives around it."""
    server = Restartable(runtime, middlewares)
    async with runtime:
        await server.start()
        try:
            yield server
        finally:
            if server.runner is not None:
                await server.stop()


@contextlib.asynccontextmanager
async def page_on(framework: str, runtime: Runtime) -> AsyncIterator[str]:
    """The routes under ``/api`` on a real server of ``framework``; yields the base URL."""
    serving = on_aiohttp(runtime, True) if framework == "aiohttp" else on_uvicorn(runtime, None)
    async with serving as base_url:
        yield base_url
