"""Specification of the run page (``GET /dashboard?run=ID``) in headless Chromium.

What the page shows is compared with the run itself: the schematic (one node per task, laid
out by dagre, coloured by state family, a mapped task as one node with a child summary), each
task's details (times, run count, message, traceback, logs), the timeline, the notices of a
big run, and how the page behaves when the server cannot be reached or the run is unknown.
With ``ASYNCFLOW_SCREENSHOTS=docs/images`` the scenarios save the README's screenshots.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from chromium import FRAMEWORKS, Tab, browser, needs_chromium, page_on, restartable, tab
from integration_scenarios import mapped_approval_flow, until

from asyncflow import Flow, Parameter, get_logger, signals, task
from asyncflow.engine.state import Paused
from asyncflow.integrations import Runtime
from asyncflow.integrations.activity import RunActivity
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from asyncflow import EventBus
    from asyncflow.integrations import RunRecord

pytestmark = [needs_chromium, pytest.mark.usefixtures("browser", "info")]
__all__ = ("browser",)  # the module's browser fixture


@pytest.fixture
def info(caplog: pytest.LogCaptureFixture) -> None:
    """Let INFO records through (as a program that configured no logging gets by default)."""
    caplog.set_level(logging.INFO, logger="asyncflow")


# -- flows --------------------------------------------------------------------------------------


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
        announce(approve(build.map(versions(Parameter("count", default=3)))))
    return flow


def failing_flow() -> Flow:
    """``fetch`` logs, then fails; ``parse`` after it fails its trigger; ``audit`` succeeds."""

    @task
    def fetch(url: str) -> str:
        get_logger().info("fetching", url=url)
        raise ConnectionError(f"{url} is down")

    @task
    def parse(page: str) -> int:
        return len(page)

    @task
    def audit() -> str:
        return "audited"

    with Flow("nightly") as flow:
        parse(fetch(Parameter("url", default="https://example.com")))
        audit()
    return flow


def retrying_flow(gate: anyio.Event) -> Flow:
    """``flaky`` fails and retries in a minute; ``slow`` waits for ``gate`` meanwhile."""

    @task(max_retries=3, retry_delay=60)
    async def flaky() -> None:
        raise TimeoutError("the service did not answer")

    @task
    async def slow() -> None:
        await gate.wait()

    @task
    async def report(a: Any, b: Any) -> str:
        return "done"

    with Flow("sync") as flow:
        report(flaky(), slow())
    return flow


def mapped_flow() -> Flow:
    """``items -> square.map -> total``: children 7 and 1234 fail, so ``total`` fails too."""

    @task
    def items(n: int) -> list[int]:
        return list(range(n))

    @task
    def square(x: int) -> int:
        if x in (7, 1234):
            raise ValueError(f"item {x} is corrupt")
        return x * x

    @task
    def total(squares: list[int]) -> int:
        return sum(squares)

    with Flow("squares") as flow:
        total(square.map(items(Parameter("n", default=2000))))
    return flow


def wide_flow(width: int = 20, depth: int = 10) -> Flow:
    """``width`` chains of ``depth`` tasks, each task also fed by the chain beside it."""

    @task
    def step(**values: Any) -> int:
        return 1

    flow = Flow("wide")
    layers: list[list[Any]] = []
    for d in range(depth):
        layer = [step.copy() for _ in range(width)]
        for i, t in enumerate(layer):
            t.name = f"step-{d}-{i}"
            flow.add_task(t)
            if d:
                flow.add_edge(layers[-1][i], t)
                flow.add_edge(layers[-1][(i + 1) % width], t)
        layers.append(layer)
    return flow


# -- what the page shows ------------------------------------------------------------------------

NODES = (
    "Object.fromEntries([...document.querySelectorAll('#graph g.node')]"
    ".map(n => [n.dataset.task, n.dataset.state]))"
)
FAMILIES = (
    "Object.fromEntries([...document.querySelectorAll('#graph g.node')]"
    ".map(n => [n.dataset.task, n.dataset.family]))"
)
AWAITING = "document.getElementById('approval').offsetParent !== null"  # shown, not just there
RUN = "document.getElementById('run-state').dataset.state + ' ' + document.body.dataset.stream"


def node_text(task_name: str, part: str) -> str:
    return f"document.querySelector('g.node[data-task=\"{task_name}\"] .{part}')?.textContent"


def fact(term: str) -> str:
    """The value the details panel gives for ``term``."""
    return (
        "(() => { const dt = [...document.querySelectorAll('#details-facts dt')]"
        f".find(d => d.textContent === '{term}'); "
        "return dt ? dt.nextElementSibling.textContent : null; })()"
    )


def local_time(timestamp: float) -> str:
    """``HH:MM:SS`` of ``timestamp`` as the browser (in the same time zone) writes it."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def states_of(record: RunRecord) -> dict[str, str]:
    return {t.name: type(s).__name__ for t, s in record.task_states.items()}


async def click(page: Tab, selector: str) -> None:
    await page.evaluate(
        f"document.querySelector('{selector}').dispatchEvent(new MouseEvent('click'))"
    )


# -- the specification --------------------------------------------------------------------------


class TestSchematic:
    @pytest.mark.parametrize("framework", FRAMEWORKS)
    async def test_nodes_change_state_live_and_a_paused_task_is_approved_from_its_details(
        self, bus: EventBus, browser: str, framework: str
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime({"release": release_flow(gate)}, bus=bus)
        async with page_on(framework, runtime) as base, tab(browser) as page:
            record = await runtime.start("release", {"count": 3})
            await until(
                lambda: sum(a.map_index is not None for a in record.activity.tasks.values()) == 3
            )
            await page.open(f"{base}/dashboard?run={record.id}")
            while_building = await page.wait_for(NODES, states_of(record))
            building = await page.wait_for(node_text("build", "summary"), "0 ✔ · 0 ✗ · 3 running")
            awaiting_before = await page.evaluate(AWAITING)
            # The map's time on the timeline is its children's: from the first one's start.
            build_row = await page.evaluate(
                "(() => { const tr = document.querySelector('#timeline tr[data-task=build]');"
                " return [tr.children[2].textContent !== '\u2013', tr.children[3].textContent,"
                " tr.querySelectorAll('.bar').length]; })()"
            )
            gate.set()
            await until(lambda: record.activity.awaiting_approval)
            while_paused = await page.wait_for(NODES, states_of(record))
            awaiting = await page.wait_for(AWAITING, True)
            await page.screenshot("paused-run")
            # Keyboard only: focus the paused node, open it with Enter, approve.
            await page.evaluate("document.querySelector('g.node[data-task=approve]').focus()")
            await page.press("Enter")
            opened = await page.wait_for(
                "document.getElementById('details').dataset.task", "approve"
            )
            await page.evaluate("document.querySelector('#details-actions button').focus()")
            await page.press("Enter")
            final = await page.wait_for(RUN, "Success ended")
            awaiting_after = await page.wait_for(AWAITING, False)
            shown = await page.wait_for(NODES, states_of(record))  # redrawn at the next frame
            families = await page.evaluate(FAMILIES)
            summary = await page.evaluate(node_text("build", "summary"))
        assert while_building == {
            "count": "Success",
            "versions": "Success",
            "build": "Mapped",  # as in Prefect 1.x: ready to map while its children run
            "approve": "Pending",
            "announce": "Pending",
        }
        assert building == "0 ✔ · 0 ✗ · 3 running"
        assert while_paused["approve"] == "Paused"
        assert (awaiting_before, awaiting, awaiting_after) == (False, True, False)
        assert build_row == [True, "\u2013", 1]  # started, not ended, one bar
        assert opened == "approve"
        assert final == "Success ended"
        assert shown == states_of(record)
        assert families == {
            "count": "success",
            "versions": "success",
            "build": "success",
            "approve": "success",
            "announce": "success",
        }
        assert summary == "3 ✔ · 0 ✗ · 0 running"

    async def test_two_hundred_tasks_are_laid_out_in_layers_without_overlapping(
        self, bus: EventBus, browser: str
    ) -> None:
        flow = wide_flow()
        runtime = Runtime({"wide": flow}, bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            record = await runtime.run("wide")
            await page.open(f"{base}/dashboard?run={record.id}")
            count = await page.wait_for("document.querySelectorAll('#graph g.node').length", 200)
            boxes = await page.evaluate(
                "[...document.querySelectorAll('#graph g.node > rect')].map(r => {"
                " const b = r.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom];})"
            )
            edges = await page.evaluate("document.querySelectorAll('#graph path.edge').length")
            scale = await page.evaluate(
                "(() => { const s = document.getElementById('graph');"
                " return s.getBoundingClientRect().width / s.viewBox.baseVal.width; })()"
            )
            columns = await page.evaluate(
                "new Set([...document.querySelectorAll('#graph g.node')]"
                ".map(n => Math.round(n.getBoundingClientRect().left))).size"
            )
        assert count == 200
        assert edges == len(flow.edges)
        assert scale == 1  # drawn at full size (the box scrolls): the names stay readable
        assert columns == 10  # one column per layer, left to right
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)

    async def test_each_state_family_has_its_own_colour_and_readable_text(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime({}, bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            await page.open(f"{base}/dashboard?run=none")
            legend = await page.wait_for("[...document.querySelectorAll('#legend li')].length", 11)
            colours = await page.evaluate(
                "[...document.querySelectorAll('#legend li')].map(li => [li.textContent.trim(),"
                " getComputedStyle(li.querySelector('.badge')).backgroundColor])"
            )
            ink = await page.evaluate("getComputedStyle(document.body).color")
        assert legend == 11
        assert [name for name, _ in colours] == [
            "Pending",
            "Scheduled / Retrying",
            "Running",
            "Success",
            "Cached",
            "Skipped",
            "Paused",
            "Failed",
            "TriggerFailed",
            "TimedOut",
            "Cancelled",
        ]
        assert len({colour for _, colour in colours}) == 11
        for name, colour in colours:
            assert contrast(colour, ink) >= 7, name  # WCAG AAA for the state names on them


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two CSS ``rgb(r, g, b)`` colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


class TestTaskDetails:
    async def test_a_failed_task_shows_its_message_traceback_times_and_logs(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime({"nightly": failing_flow()}, bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            record = await runtime.run("nightly")
            await page.open(f"{base}/dashboard?run={record.id}")
            await page.wait_for(RUN, "Failed ended")
            await click(page, "g.node[data-task=fetch]")
            state = await page.wait_for(
                "document.getElementById('details-state').textContent", "Failed"
            )
            message = await page.evaluate("document.getElementById('details-message').textContent")
            traceback = await page.evaluate(
                "document.querySelector('#details-traceback pre').textContent"
            )
            facts = {t: await page.evaluate(fact(t)) for t in ("Start", "End", "Duration", "Runs")}
            logs = await page.evaluate(
                "[...document.querySelectorAll('#details-logs li')].map(li => li.textContent)"
            )
            timeline = await page.evaluate(
                "[...document.querySelectorAll('#timeline tr')].map(tr => [tr.dataset.task,"
                " tr.children[1].textContent, tr.children[5].textContent,"
                " tr.querySelectorAll('.bar').length])"
            )
            families = await page.evaluate(FAMILIES)
            await page.screenshot("failed-run")
            await page.press("Escape")  # closes the details; the focus goes back to the node
            closed = await page.wait_for("document.getElementById('details').hidden", True)
            focused = await page.evaluate("document.activeElement.dataset.task")
        assert (closed, focused) == (True, "fetch")
        assert state == "Failed"
        assert (
            message
            == "Error during execution of task: ConnectionError('https://example.com is down')"
        )
        assert traceback.startswith("Traceback (most recent call last):")
        assert "ConnectionError: https://example.com is down" in traceback
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", facts["Start"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", facts["End"])
        assert re.fullmatch(r"\d+ ms|\d+\.\d+ s", facts["Duration"])
        assert facts["Runs"] == "1"
        assert any("INFO fetch: fetching url='https://example.com'" in line for line in logs)
        assert {row[0]: row[1:] for row in timeline} == {
            "url": ["Success", "1", 1],
            "fetch": ["Failed", "1", 1],
            "parse": ["TriggerFailed", "0", 0],  # never ran: no bar
            "audit": ["Success", "1", 1],
        }
        assert families == {
            "url": "success",
            "fetch": "failed",
            "parse": "triggerfailed",
            "audit": "success",
        }

    async def test_a_retrying_task_shows_when_it_runs_next_and_the_run_can_be_cancelled(
        self, bus: EventBus, browser: str
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime({"sync": retrying_flow(gate)}, bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            record = await runtime.start("sync")
            await until(lambda: states_of(record)["flaky"] == "Retrying")
            retrying = next(s for t, s in record.task_states.items() if t.name == "flaky")
            await page.open(f"{base}/dashboard?run={record.id}")
            await page.wait_for(NODES + "['flaky']", "Retrying")
            line = await page.evaluate(node_text("flaky", "state"))
            family = await page.evaluate(FAMILIES + "['flaky']")
            await click(page, "g.node[data-task=flaky]")
            next_attempt = await page.wait_for(fact("Next attempt"), line.split("next ")[-1])
            runs = await page.evaluate(fact("Runs"))
            traceback = await page.wait_for(
                "document.querySelector('#details-traceback pre').textContent.includes("
                "'TimeoutError: the service did not answer')",
                True,
            )
            await page.screenshot("retrying-task")
            await click(page, "#cancel")
            final = await page.wait_for(RUN, "Cancelled ended")
            cancel_hidden = await page.evaluate("document.getElementById('cancel').hidden")
        assert retrying.start_time is not None
        local = local_time(retrying.start_time.timestamp())
        assert line == f"Retrying · next {local}"
        assert family == "scheduled"
        assert next_attempt == local
        assert runs == "1"
        assert traceback is True
        assert final == "Cancelled ended"
        assert cancel_hidden is True

    async def test_a_task_paused_until_a_time_says_until_when(
        self, bus: EventBus, browser: str
    ) -> None:
        until_then = datetime.now(UTC) + timedelta(hours=1)

        @task
        async def embargo() -> None:
            raise signals.ENDRUN(Paused("embargoed", start_time=until_then))

        runtime = Runtime({"press": Flow("press", tasks=[embargo])}, bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            record = await runtime.start("press")
            await until(lambda: record.activity.awaiting_approval)
            await page.open(f"{base}/dashboard?run={record.id}")
            line = await page.wait_for(
                node_text("embargo", "state"),
                f"Paused · until {local_time(until_then.timestamp())}",
            )
            await click(page, "g.node[data-task=embargo]")
            resumes = await page.wait_for(fact("Resumes at"), local_time(until_then.timestamp()))
            runtime.cancel(record.id)
            await record.wait()
        assert line == f"Paused · until {local_time(until_then.timestamp())}"
        assert resumes == local_time(until_then.timestamp())

    @pytest.mark.parametrize("framework", FRAMEWORKS)
    async def test_log_records_stream_while_the_task_runs(
        self, bus: EventBus, browser: str, framework: str
    ) -> None:
        gate = anyio.Event()

        @task
        async def migrate() -> None:
            get_logger().info("halfway there", rows=500)
            await gate.wait()
            get_logger().warning("done", rows=1000)

        runtime = Runtime({"db": Flow("db", tasks=[migrate])}, bus=bus)
        logs = "[...document.querySelectorAll('#logs li')].map(li => li.textContent.slice(9))"
        async with page_on(framework, runtime) as base, tab(browser) as page:
            record = await runtime.start("db")
            await page.open(f"{base}/dashboard?run={record.id}")
            await page.wait_for("document.getElementById('stream').textContent", "live")
            await until(lambda: record.activity.log_total >= 2)
            while_running = await page.wait_for(logs + ".length >= 2", True)
            first = await page.evaluate(logs)
            gate.set()
            await page.wait_for(RUN, "Success ended")
            await page.wait_for(logs + ".length", record.activity.log_total)
            after = await page.evaluate(logs)
        assert while_running is True
        assert "INFO migrate: halfway there rows=500" in first
        assert "WARNING migrate: done rows=1000" in after
        assert len(after) == len(set(after)) == record.activity.log_total  # none twice


class TestBigRuns:
    async def test_a_2000_child_map_is_one_node_whose_children_open_from_the_map_states(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime({"squares": mapped_flow()}, bus=bus, max_events=1000)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            record = await runtime.run("squares")
            await page.open(f"{base}/dashboard?run={record.id}")
            summary = await page.wait_for(
                node_text("square", "summary"), "1,998 ✔ · 2 ✗ · 0 running"
            )
            notice = await page.evaluate(
                "document.getElementById('history-dropped')?.textContent ?? null"
            )
            family = await page.evaluate(FAMILIES + "['square']")
            await click(page, "g.node[data-task=square]")
            rows = await page.wait_for("document.querySelectorAll('#children-rows tr').length", 100)
            paging = await page.evaluate("document.getElementById('children-page').textContent")
            await page.evaluate(
                "(() => { const f = document.getElementById('children-filter');"
                " f.value = 'failed'; f.dispatchEvent(new Event('change')); })()"
            )
            failed = await page.wait_for(
                "[...document.querySelectorAll('#children-rows tr')].map(tr => tr.dataset.child)",
                ["7", "1234"],
            )
            await page.screenshot("mapped-2000")
            await click(page, '#children-rows tr[data-child="1234"] button')
            child = await page.wait_for(
                "document.getElementById('details-heading').textContent", "square[1234]"
            )
            traceback = await page.evaluate(
                "document.querySelector('#details-traceback pre').textContent"
            )
        assert record.dropped_events > 0
        assert summary == "1,998 ✔ · 2 ✗ · 0 running"
        assert notice is not None
        assert "were dropped from its history" in notice
        assert family == "failed"  # a map with failed children is not green
        assert rows == 100
        assert paging == "page 1 of 20"
        assert failed == ["7", "1234"]
        assert child == "square[1234]"
        assert "ValueError: item 1234 is corrupt" in traceback

    async def test_without_kept_activity_the_children_come_from_the_map_states(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime({"squares": mapped_flow()}, bus=bus)
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            record = await runtime.run("squares", {"n": 30})
            record.activity = RunActivity()  # as a run read back with its final states only
            await page.open(f"{base}/dashboard?run={record.id}")
            summary = await page.wait_for(node_text("square", "summary"), "29 ✔ · 1 ✗ · 0 running")
        assert summary == "29 ✔ · 1 ✗ · 0 running"

    async def test_each_paused_child_is_approved_on_its_own(
        self, bus: EventBus, browser: str
    ) -> None:
        runtime = Runtime({"mapped": mapped_approval_flow()}, bus=bus)
        children = "[...document.querySelectorAll('#children-rows tr')].map(tr => tr.dataset.state)"
        async with page_on("aiohttp", runtime) as base, tab(browser) as page:
            record = await runtime.start("mapped")
            await until(lambda: record.activity.awaiting_approval)
            await page.open(f"{base}/dashboard?run={record.id}")
            await page.wait_for(node_text("publish", "summary"), "0 ✔ · 0 ✗ · 0 running · 2 paused")
            await click(page, "g.node[data-task=publish]")
            before = await page.wait_for(children, ["Paused", "Paused"])
            await click(page, '#children-rows tr[data-child="1"] button')
            await page.wait_for(
                "document.getElementById('details-heading').textContent", "publish[1]"
            )
            await click(page, "#details-actions button")
            approved = await page.wait_for(
                "document.getElementById('details-state').textContent", "Success"
            )
            runtime.cancel(record.id)
            await record.wait()
        assert before == ["Paused", "Paused"]
        assert approved == "Success"
        (publish,) = record.activity.children.values()
        assert [type(c.state).__name__ for c in publish] == ["Cancelled", "Success"]


class TestConnection:
    async def test_the_page_says_when_the_server_is_unreachable_and_catches_up_after(
        self, bus: EventBus, browser: str
    ) -> None:
        gate = anyio.Event()
        runtime = Runtime({"release": release_flow(gate)}, bus=bus)
        connection = "document.getElementById('connection').textContent"
        async with restartable(runtime) as server, tab(browser) as page:
            record = await runtime.start("release", {"count": 2})
            await page.open(f"{server.base}/dashboard?run={record.id}")
            await page.wait_for("document.getElementById('stream').textContent", "live")
            await server.stop()
            cut = await page.wait_for(connection, "Server unreachable; retrying…")
            gate.set()
            await until(lambda: record.activity.awaiting_approval)
            runtime.resume(record.id, "approve")
            await record.wait()
            await server.start()
            final = await page.wait_for(RUN, "Success ended", seconds=15)
            back = await page.evaluate(connection)
            shown = await page.wait_for(NODES, states_of(record))
        assert cut == "Server unreachable; retrying…"
        assert final == "Success ended"
        assert back == "connected"
        assert shown == states_of(record)

    async def test_a_slow_first_answer_still_gives_the_whole_page(
        self, bus: EventBus, browser: str
    ) -> None:
        from aiohttp import web

        @web.middleware
        async def slow_details(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.startswith("/api/runs/") and request.path.count("/") == 3:
                await anyio.sleep(1.5)  # longer than the page's clock tick
            return await handler(request)  # type: ignore[no-any-return]

        runtime = Runtime({"nightly": failing_flow()}, bus=bus)
        async with restartable(runtime, [slow_details]) as server, tab(browser) as page:
            record = await runtime.run("nightly")
            await page.open(f"{server.base}/dashboard?run={record.id}")
            shown = await page.wait_for(NODES, states_of(record))
            error = await page.evaluate("document.getElementById('error').textContent")
        assert shown == states_of(record)
        assert error == ""

    @pytest.mark.parametrize("framework", FRAMEWORKS)
    async def test_an_unknown_run_is_said_so_and_has_no_live_buttons(
        self, bus: EventBus, browser: str, framework: str
    ) -> None:
        async with page_on(framework, Runtime({}, bus=bus)) as base, tab(browser) as page:
            await page.open(f"{base}/dashboard?run=nope")
            stream = await page.wait_for(
                "document.getElementById('stream').textContent", "unknown run"
            )
            buttons = await page.evaluate(
                "[...document.querySelectorAll('#run-view button')]"
                ".filter(b => b.offsetParent !== null).map(b => b.textContent)"
            )
            error = await page.evaluate("document.getElementById('error').textContent")
        assert stream == "unknown run"
        assert buttons == []
        assert "'nope'" in error
