"""Logging: structlog records bound with the run they belong to, routed through stdlib logging.

Importing asyncflow installs nothing; :func:`asyncflow.configure_logging` sends the ``asyncflow``
logger's records to a stream, as console lines or JSON lines.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio.lowlevel
import pytest

from asyncflow import Flow, _log, configure_logging, context, get_logger, task

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from asyncflow import EventBus


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A stream to configure logging with; the ``asyncflow`` logger is restored afterwards."""
    root = logging.getLogger("asyncflow")
    saved = (list(root.handlers), root.level, root.propagate, _log._handler)
    yield io.StringIO()
    if _log._handler is not None:
        root.removeHandler(_log._handler)
    handlers, level, propagate, handler = saved
    _log._handler = handler
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = propagate


def json_records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def sync_logs() -> str:
    get_logger().info("hello from a task", answer=42)
    return "done"


async def async_logs() -> str:
    await anyio.lowlevel.checkpoint()
    get_logger().info("hello from a task", answer=42)
    return "done"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class TestRunContextInRecords:
    @pytest.mark.parametrize("fn", [sync_logs, async_logs], ids=["sync", "async"])
    async def test_a_record_logged_in_a_task_carries_the_run_ids(
        self, bus: EventBus, stream: io.StringIO, fn: Callable[[], Any]
    ) -> None:
        configure_logging(stream=stream, fmt="json")
        talker = task(fn, name="talker")
        with Flow("logging-flow") as flow:
            talker()

        await flow.run_async(bus=bus, run_id="run-42")

        [record] = [r for r in json_records(stream) if r["event"] == "hello from a task"]
        assert {k: record[k] for k in ("flow_run_id", "flow", "task", "answer", "level")} == {
            "flow_run_id": "run-42",
            "flow": "logging-flow",
            "task": "talker",
            "answer": 42,
            "level": "info",
        }
        assert record["logger"] == "asyncflow.user"

    async def test_context_logger_records_carry_the_run_ids_too(
        self, bus: EventBus, stream: io.StringIO
    ) -> None:
        configure_logging(stream=stream, fmt="json")

        @task
        def talker() -> None:
            context.logger.info("via context")

        with Flow("ctx-logger") as flow:
            talker()

        await flow.run_async(bus=bus, run_id="run-7")

        [record] = [r for r in json_records(stream) if r["event"] == "via context"]
        assert (record["flow_run_id"], record["flow"], record["task"]) == (
            "run-7",
            "ctx-logger",
            "talker",
        )

    def test_a_record_outside_a_run_has_no_run_ids(self, stream: io.StringIO) -> None:
        configure_logging(stream=stream, fmt="json")

        get_logger().info("no run here")

        [record] = json_records(stream)
        assert record["event"] == "no run here"
        assert not {"flow_run_id", "flow", "task"} & record.keys()

    def test_get_logger_places_names_under_asyncflow(self, stream: io.StringIO) -> None:
        configure_logging(stream=stream, fmt="json")

        get_logger("mine").info("a")
        get_logger("asyncflow.engine").info("b")

        assert [r["logger"] for r in json_records(stream)] == ["asyncflow.mine", "asyncflow.engine"]


class TestFormats:
    async def test_console_format_writes_one_line_per_record(
        self, bus: EventBus, stream: io.StringIO
    ) -> None:
        configure_logging(stream=stream, fmt="console")
        collect = _Collect()
        logging.getLogger("asyncflow").addHandler(collect)
        try:
            talker = task(sync_logs, name="talker")
            with Flow("console-flow") as flow:
                talker()
            await flow.run_async(bus=bus, run_id="run-c")
        finally:
            logging.getLogger("asyncflow").removeHandler(collect)

        lines = stream.getvalue().splitlines()
        assert len(collect.records) >= 3  # flow started, the task's record, flow finished
        assert len(lines) == len(collect.records)
        [hello] = [line for line in lines if "hello from a task" in line]
        for part in ("answer=42", "flow=console-flow", "flow_run_id=run-c", "task=talker"):
            assert part in hello

    async def test_a_failing_task_logs_an_error_with_its_traceback(
        self, bus: EventBus, stream: io.StringIO
    ) -> None:
        configure_logging(stream=stream, fmt="json")

        @task
        def broken() -> None:
            raise ValueError("nope")

        with Flow("failing") as flow:
            broken()

        await flow.run_async(bus=bus, run_id="run-f")

        errors = [r for r in json_records(stream) if r["level"] == "error"]
        assert len(errors) == 1
        [error] = errors
        assert (error["flow_run_id"], error["flow"], error["task"]) == (
            "run-f",
            "failing",
            "broken",
        )
        assert error["exception"].startswith("Traceback (most recent call last):")
        assert error["exception"].rstrip().endswith("ValueError: nope")

    def test_an_unknown_format_is_refused(self, stream: io.StringIO) -> None:
        with pytest.raises(ValueError, match="xml"):
            configure_logging(stream=stream, fmt="xml")  # type: ignore[arg-type]


class TestImportHasNoSideEffects:
    def test_importing_asyncflow_installs_no_handler(self) -> None:
        code = "import asyncflow, logging; print(logging.getLogger('asyncflow').handlers)"

        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
        )

        assert out.stdout == "[]\n"


class TestLogStdout:
    """``log_stdout=True``: what the task prints becomes INFO records of its run."""

    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    async def test_prints_become_records_bound_with_the_run(
        self,
        bus: EventBus,
        stream: io.StringIO,
        capsys: pytest.CaptureFixture[str],
        is_async: bool,
    ) -> None:
        configure_logging(stream=stream, fmt="json")

        def talk() -> None:
            print("first line")
            print("second", "line")

        async def atalk() -> None:
            talk()

        chatty = task(atalk if is_async else talk, name="chatty", log_stdout=True)
        quiet = task(lambda: print("plain output"), name="quiet")
        with Flow("prints") as flow:
            chatty()
            quiet()
        await flow.run_async(bus=bus, run_id="run-7")

        printed = [r for r in json_records(stream) if r.get("stream") == "stdout"]
        assert [(r["event"], r["task"], r["flow_run_id"]) for r in printed] == [
            ("first line", "chatty", "run-7"),
            ("second line", "chatty", "run-7"),
        ]
        out = capsys.readouterr().out
        assert "plain output" in out  # a task without log_stdout prints as usual
        assert "first line" not in out

    def test_a_last_line_without_newline_is_flushed_at_the_end(self, stream: io.StringIO) -> None:
        configure_logging(stream=stream, fmt="json")
        with _log.stdout_to_log():
            sys.stdout.write("no newline")
        assert [r["event"] for r in json_records(stream)] == ["no newline"]
