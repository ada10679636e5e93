"""Specification of what the run page reads besides states: task activity, logs, static files.

``asyncflow.integrations.activity`` keeps, from every event of a run, each task run's times,
run count and failure traceback, and the run's log records (bounded); the run JSON and the
event stream (``?logs=true``) carry them; both integrations serve the page's static files.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from integration_scenarios import Server, served, until

from asyncflow import Flow, Parameter, context, get_logger, task
from asyncflow.integrations import Runtime, serialize
from asyncflow.integrations.activity import LogCapture, RunActivity
from asyncflow.testing import FakeClock
from asyncflow.triggers import manual_only

if TYPE_CHECKING:
    from asyncflow import EventBus

FRAMEWORKS = ["aiohttp", "fastapi"]


def flaky_flow() -> Flow:
    """``numbers -> square.map``: child 1 fails once, then succeeds; child 2 always fails."""
    attempts: dict[int, int] = {}

    @task(max_retries=1, retry_delay=10)
    def square(x: int) -> int:  # sync: runs (and logs) in a worker thread
        attempts[x] = attempts.get(x, 0) + 1
        get_logger().info("squaring", x=x, attempt=attempts[x])
        if x == 2 or (x == 1 and attempts[x] == 1):
            raise ValueError(f"bad {x}")
        return x * x

    @task
    async def numbers(n: int) -> list[int]:
        context.logger.warning("making numbers")
        return list(range(n))

    with Flow("flaky") as flow:
        square.map(numbers(Parameter("n", default=3)))
    return flow


def approval_flow() -> Flow:
    @task(trigger=manual_only)
    async def publish() -> str:
        return "published"

    with Flow("approval") as flow:
        publish()
    return flow


class TestTaskActivity:
    async def test_each_child_has_its_times_run_count_and_last_traceback(
        self, bus: EventBus
    ) -> None:
        runtime = Runtime([flaky_flow()], bus=bus, run_options={"clock": FakeClock(100.0)})
        async with runtime:
            record = await runtime.run("flaky")
        detail = serialize.run_detail(record)
        square = detail["task_runs"]["square"]
        children = {c["map_index"]: c for c in square["children"]}
        assert [(c["state"]["type"], c["runs"]) for c in children.values()] == [
            ("Success", 1),
            ("Success", 2),
            ("Failed", 2),
        ]
        # The retry waited 10 s on the fake clock: the child ran from its first start to its end.
        assert children[1]["end"] - children[1]["start"] == pytest.approx(10, abs=0.01)
        assert children[0]["traceback"] is None
        assert "ValueError: bad 2" in children[2]["traceback"]
        assert children[2]["traceback"].startswith("Traceback (most recent call last):")
        assert square["runs"] == 0  # as in Prefect 1.x, a mapped parent never runs: it maps
        assert detail["finished"] is not None

    async def test_children_come_from_every_event_even_when_history_is_dropped(
        self, bus: EventBus
    ) -> None:
        runtime = Runtime([flaky_flow()], bus=bus, max_events=5, run_options={"clock": FakeClock()})
        async with runtime:
            record = await runtime.run("flaky", {"n": 40}, run_id="big")
        detail = serialize.run_detail(record)
        assert detail["dropped_events"] > 0
        assert len(record.events) <= 5 + 5 // 8 + 1
        children = detail["task_runs"]["square"]["children"]
        assert [c["map_index"] for c in children] == list(range(40))
        assert sum(c["state"]["type"] == "Failed" for c in children) == 1

    def test_a_brief_state_names_the_next_attempt_of_a_retrying_task(self) -> None:
        from datetime import UTC, datetime

        from asyncflow.engine.state import Retrying

        when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        brief = serialize.state_brief(Retrying("again", start_time=when, run_count=2))
        assert brief == {
            "type": "Retrying",
            "message": "again",
            "start_time": "2026-01-02T03:04:05+00:00",
            "run_count": 2,
        }

    async def test_a_run_awaits_approval_while_a_task_is_paused(self, bus: EventBus) -> None:
        runtime = Runtime([approval_flow()], bus=bus)
        async with runtime:
            record = await runtime.start("approval")
            await until(lambda: record.activity.awaiting_approval)
            assert serialize.run_summary(record)["awaiting_approval"] is True
            runtime.resume(record.id, "publish")
            await record.wait()
        assert serialize.run_summary(record)["awaiting_approval"] is False


@pytest.fixture
def info(caplog: pytest.LogCaptureFixture) -> None:
    """Let INFO records through (as a program that configured no logging gets by default)."""
    caplog.set_level(logging.INFO, logger="asyncflow")


@pytest.mark.usefixtures("info")
class TestLogs:
    async def test_log_records_of_tasks_and_children_are_kept_with_their_task(
        self, bus: EventBus
    ) -> None:
        runtime = Runtime([flaky_flow()], bus=bus, run_options={"clock": FakeClock()})
        async with runtime:
            record = await runtime.run("flaky")
        logs = serialize.run_detail(record)["logs"]
        mine = [(e["task"], e["map_index"], e["level"], e["message"]) for e in logs]
        assert ("numbers", None, "WARNING", "making numbers") in mine
        assert ("square", 1, "INFO", "squaring x=1 attempt=2") in mine
        assert [e["n"] for e in logs] == list(range(1, len(logs) + 1))
        failed = next(e for e in logs if e["map_index"] == 2 and e["level"] == "ERROR")
        assert "ValueError: bad 2" in failed["message"]  # with the traceback

    async def test_only_the_last_max_logs_records_are_kept(self, bus: EventBus) -> None:
        runtime = Runtime([flaky_flow()], bus=bus, max_logs=3, run_options={"clock": FakeClock()})
        async with runtime:
            record = await runtime.run("flaky", {"n": 10})
        detail = serialize.run_detail(record)
        assert len(detail["logs"]) == 3
        assert detail["dropped_logs"] == record.activity.log_total - 3 > 0
        assert detail["logs"][-1]["n"] == record.activity.log_total

    async def test_records_outside_the_runtime_runs_are_not_kept(self, bus: EventBus) -> None:
        runtime = Runtime([approval_flow()], bus=bus)
        async with runtime:
            await flaky_flow().run_async(bus=bus, clock=FakeClock())
            assert all(not r.activity.log_total for r in runtime.runs())
        assert runtime.runs() == []

    async def test_plain_logging_records_under_asyncflow_are_kept_too(self, bus: EventBus) -> None:
        @task
        def legacy() -> None:
            logging.getLogger("asyncflow.legacy").warning("plain %s", "text")

        runtime = Runtime([Flow("legacy", tasks=[legacy])], bus=bus)
        async with runtime:
            record = await runtime.run("legacy")
        logs = serialize.run_detail(record)["logs"]
        assert ("legacy", "WARNING", "plain text") in [
            (e["task"], e["level"], e["message"]) for e in logs
        ]

    def test_off_an_asyncio_loop_records_from_other_threads_wait_for_the_next_event(
        self,
    ) -> None:
        activity = RunActivity()
        woken: list[str] = []
        capture = LogCapture(lambda run_id: activity, woken.append)
        record = logging.LogRecord("asyncflow.x", logging.INFO, __file__, 1, "hi", (), None)
        with context(flow_run_id="r1"):
            capture.emit(record)  # this thread: woken at once
            in_run = contextvars.copy_context()
            thread = threading.Thread(target=in_run.run, args=(capture.emit, record))
            thread.start()
            thread.join()
        assert woken == ["r1"]
        assert [e.message for e in activity.logs] == ["hi", "hi"]

    def test_logs_after_a_position_skip_what_was_dropped(self) -> None:
        activity = RunActivity(max_logs=2)
        for i in range(5):
            activity.log(float(i), "INFO", None, f"m{i}")
        assert [e.message for e in activity.logs_after(0)] == ["m3", "m4"]
        assert [e.message for e in activity.logs_after(4)] == ["m4"]
        assert activity.logs_after(5) == []
        assert activity.dropped_logs == 3

    async def test_a_log_record_alone_wakes_a_reader_of_the_stream(self, bus: EventBus) -> None:
        gate = anyio.Event()

        @task
        async def chatty() -> None:
            get_logger().info("one")
            await gate.wait()

        runtime = Runtime([Flow("chatty", tasks=[chatty])], bus=bus)
        got: list[Any] = []
        async with runtime:
            record = await runtime.start("chatty")
            with anyio.fail_after(5):
                async for batch in record.follow_with_logs():
                    got.extend(batch)
                    if any(getattr(item, "message", None) == "one" for item in got):
                        break
            gate.set()
        assert [type(i).__name__ for i in got][-1] == "LogEntry"


@pytest.fixture(params=FRAMEWORKS)
def serve(request: pytest.FixtureRequest) -> Any:
    return functools.partial(served, request.param)


@pytest.mark.usefixtures("info")
class TestOnBothServers:
    async def test_the_stream_carries_log_records_when_asked(
        self, bus: EventBus, serve: Any
    ) -> None:
        runtime = Runtime([flaky_flow()], bus=bus, run_options={"clock": FakeClock()})
        api: Server
        async with serve(runtime) as api:
            run_id = await api.start("flaky")
            await runtime.get(run_id).wait()
            plain = await api.stream(run_id)
            with_logs = await api.stream(run_id, params={"logs": "true"})
        assert all(m["event"] in ("state", "end") for m in plain)
        logs = [m["data"] for m in with_logs if m["event"] == "log"]
        assert [m for m in with_logs if m["event"] != "log"] == plain
        assert {(e["task"], e["map_index"]) for e in logs} >= {("numbers", None), ("square", 2)}
        assert "id" not in next(m for m in with_logs if m["event"] == "log")

    async def test_the_page_static_files_are_served_with_their_type(
        self, bus: EventBus, serve: Any
    ) -> None:
        async with serve(Runtime([], bus=bus)) as api:
            dagre = await api.get("/static/dagre.min.js")
            licence = await api.get("/static/dagre.LICENSE.txt")
            missing = await api.get("/static/nope.js")
            escape = await api.get("/static/..%2Fserialize.py")
        assert dagre.status_code == 200
        assert dagre.headers["content-type"].startswith("text/javascript")
        assert "var dagre=" in dagre.text
        assert "Permission is hereby granted" in licence.text
        assert missing.status_code == 404
        assert "no static file named 'nope.js'" in missing.json()["detail"]
        assert escape.status_code == 404
