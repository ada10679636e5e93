"""Specification of the dashboard's list of runs (``GET /dashboard``) and of the page's files.

The page is opened in headless Chromium (one browser for the module, driven over the DevTools
protocol, see ``chromium.py``) against real servers; what it lists is compared with the
runtime's runs. The run page itself is specified in ``test_run_page.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest
from chromium import FRAMEWORKS, Tab, browser, needs_chromium, page_on, restartable, tab
from integration_scenarios import until

from asyncflow import Flow, Parameter, task
from asyncflow.integrations import Runtime
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from asyncflow import EventBus

__all__ = ("browser",)  # the module's browser fixture

ROWS = (
    "[...document.querySelectorAll('#runs tr.run')].map(tr => [tr.dataset.run,"
    " ...[...tr.children].slice(1).map(td => td.textContent)])"
)
CONNECTION = "document.getElementById('connection').textContent"


def flows() -> dict[str, Flow]:
    """``release`` (waits for approval after ``count`` builds) and ``echo`` (returns at once)."""

    @task
    async def build(count: int) -> int:
        return count

    @task(trigger=manual_only)
    async def approve(n: int) -> int:
        return n

    @task
    async def echo(word: str) -> str:
        return word

    with Flow("release") as release:
        approve(build(Parameter("count", default=2)))
    with Flow("echo") as echoing:
        echo(Parameter("word"))
    return {"release": release, "echo": echoing}


async def click(page: Tab, selector: str) -> None:
    await page.evaluate(f"document.querySelector('{selector}').click()")


async def choose(page: Tab, select: str, value: str) -> None:
    """Choose ``value`` in the ``<select>`` of id ``select``, as a user would."""
    await page.evaluate(
        f"(() => {{ const s = document.getElementById('{select}'); s.value = '{value}';"
        " s.dispatchEvent(new Event('change')); })()"
    )


class TestThePage:
    @pytest.mark.parametrize("framework", FRAMEWORKS)
    async def test_get_dashboard_serves_the_page_and_the_files_it_loads(
        self, bus: EventBus, framework: str
    ) -> None:
        async with (
            page_on(framework, Runtime({}, bus=bus)) as base,
            aiohttp.ClientSession() as session,
        ):
            async with session.get(f"{base}/dashboard?run=x") as response:
                page = await response.text()
                kind = response.headers["Content-Type"]
            loaded = {}
            for name in ("dashboard.js", "dashboard.css", "dagre.min.js"):
                async with session.get(f"{base}/static/{name}") as response:
                    loaded[name] = (response.status, response.headers["Content-Type"])
        assert kind.startswith("text/html")
        assert page.startswith("<!doctype html>")
        # No build step: the page loads its own files, by relative URLs (any mount prefix).
        assert '<script src="static/dagre.min.js" defer></script>' in page
        assert '<script src="static/dashboard.js" defer></script>' in page
        assert '<link rel="stylesheet" href="static/dashboard.css">' in page
        assert loaded == {
            "dashboard.js": (200, "text/javascript; charset=utf-8"),
            "dashboard.css": (200, "text/css; charset=utf-8"),
            "dagre.min.js": (200, "text/javascript; charset=utf-8"),
        }


@needs_chromium
class TestTheListOfRuns:
    async def test_each_run_shows_its_flow_state_start_and_duration_newest_first(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime(flows(), bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            done = await runtime.run("echo", {"word": "hi"}, run_id="run-0")
            waiting = await runtime.start("release", run_id="run-1")
            await until(lambda: waiting.activity.awaiting_approval)
            cancelled = await runtime.start("release", run_id="run-2")
            runtime.cancel("run-2")
            await cancelled.wait()
            await page.open(f"{base}/dashboard")
            rows = await page.wait_for(ROWS + ".length", 3)
            shown = await page.evaluate(ROWS)
            links = await page.evaluate(
                "[...document.querySelectorAll('#runs tr.run a')].map(a => a.getAttribute('href'))"
            )
            awaiting = await page.evaluate(
                "[...document.querySelectorAll('#runs tr.run')].map(tr => !!tr.dataset.awaiting)"
            )
            await page.screenshot("run-list", height=420)
        assert done.state.is_successful()
        assert rows == 3
        assert [row[0] for row in shown] == ["run-2", "run-1", "run-0"]
        assert [row[1] for row in shown] == ["release", "release", "echo"]
        assert [row[2] for row in shown] == ["Cancelled", "Running awaiting approval", "Success"]
        for row in shown:
            assert row[3].startswith("20")  # "2026-12-03 09:55:00": when it started
            assert row[4].endswith(("ms", " s"))  # how long it ran (or runs so far)
        assert links == ["dashboard?run=run-2", "dashboard?run=run-1", "dashboard?run=run-0"]
        assert awaiting == [False, True, False]

    async def test_filters_and_pages_ask_the_server_for_what_is_shown(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime(flows(), bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            for i in range(23):
                await runtime.run("echo", {"word": str(i)}, run_id=f"echo-{i:02}")
            failing = await runtime.start("release", run_id="release-0")
            runtime.cancel(failing.id)
            await failing.wait()
            await page.open(f"{base}/dashboard")
            first = await page.wait_for(ROWS + ".length", 20)
            newest = await page.evaluate(ROWS + "[0][0]")
            await click(page, "#older")
            second = await page.wait_for(
                ROWS + ".map(r => r[0])", ["echo-03", "echo-02", "echo-01", "echo-00"]
            )
            older_disabled = await page.evaluate("document.getElementById('older').disabled")
            await click(page, "#newer")
            back = await page.wait_for(ROWS + "[0][0]", "release-0")
            await choose(page, "filter-flow", "release")
            by_flow = await page.wait_for(ROWS + ".map(r => r[0])", ["release-0"])
            await choose(page, "filter-flow", "")
            await choose(page, "filter-state", "Success")
            by_state = await page.wait_for(ROWS + ".map(r => r[2])", ["Success"] * 20)
        assert (first, newest) == (20, "release-0")
        assert second == ["echo-03", "echo-02", "echo-01", "echo-00"]
        assert older_disabled is True
        assert back == "release-0"
        assert by_flow == ["release-0"]
        assert by_state == ["Success"] * 20

    async def test_the_form_starts_a_run_with_its_parameters_and_opens_it(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime(flows(), bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            await page.open(f"{base}/dashboard")
            labels = await page.wait_for(
                "[...document.querySelectorAll('#start-parameters label')]"
                ".map(l => l.textContent.trim())",
                ["count"],
            )
            # Choose the echo flow: its one parameter is required; its value is not JSON.
            await page.evaluate(
                "(() => { const s = document.getElementById('start-flow'); s.value = 'echo';"
                " s.dispatchEvent(new Event('change')); })()"
            )
            required = await page.wait_for(
                "document.querySelector('#start-parameters input').required", True
            )
            await page.evaluate(
                "document.querySelector('#start-parameters input').value = 'hello world';"
                "document.querySelector('#start-form button').click()"
            )
            await until(lambda: len(runtime.runs()) == 1)
            record = runtime.runs()[0]
            opened = await page.wait_for("location.search", f"?run={record.id}")
            # Back to the list: a JSON value (3) is sent as JSON.
            await page.open(f"{base}/dashboard")
            await page.wait_for("document.querySelectorAll('#start-flow option').length", 2)
            await page.evaluate(
                "document.querySelector('#start-parameters input').value = '3';"
                "document.querySelector('#start-form button').click()"
            )
            await until(lambda: len(runtime.runs()) == 2)
        assert labels == ["count"]
        assert required is True
        assert record.flow_name == "echo"
        assert record.parameters == {"word": "hello world"}
        assert opened == f"?run={record.id}"
        assert runtime.runs()[1].parameters == {"count": 3}

    async def test_a_refused_start_names_the_problem(self, bus: EventBus, browser: str) -> None:
        runtime = Runtime(flows(), bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            await page.open(f"{base}/dashboard")
            await page.wait_for("document.querySelectorAll('#start-flow option').length", 2)
            await runtime.shutdown()  # the server now refuses new runs
            await page.evaluate("document.querySelector('#start-form button').click()")
            error = await page.wait_for("document.getElementById('error').textContent !== ''", True)
            text = await page.evaluate("document.getElementById('error').textContent")
        assert error is True
        assert text == "the runtime is shutting down; it takes no new run"

    async def test_polling_goes_on_through_a_failed_fetch_and_says_the_server_is_unreachable(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime(flows(), bus=bus)
        async with restartable(runtime) as server, tab(browser) as page:
            await page.open(f"{server.base}/dashboard")
            before = await page.wait_for(CONNECTION, "connected")
            await server.stop()
            cut = await page.wait_for(CONNECTION, "Server unreachable; retrying…")
            await runtime.run("echo", {"word": "meanwhile"}, run_id="meanwhile")
            await server.start()
            rows = await page.wait_for(ROWS + ".map(r => r[0])", ["meanwhile"], seconds=6)
            after = await page.evaluate(CONNECTION)
        assert before == "connected"
        assert cut == "Server unreachable; retrying…"
        assert rows == ["meanwhile"]
        assert after == "connected"

    async def test_the_controls_have_labels(self, bus: EventBus, browser: str) -> None:
        async with page_on("aiohttp", Runtime(flows(), bus=bus)) as base, tab(browser) as page:
            await page.open(f"{base}/dashboard")
            await page.wait_for("document.querySelectorAll('#start-flow option').length", 2)
            unlabelled = await page.evaluate(
                "[...document.querySelectorAll('input, select')]"
                ".filter(c => !c.labels.length && !c.getAttribute('aria-label')).map(c => c.id)"
            )
        assert unlabelled == []
