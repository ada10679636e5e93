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

import anyio
import anyio.lowlevel
import pytest
import structlog

from asyncflow import Flow, _log, configure_logging, context, get_logger, task

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from asyncflow import EventBus


@pytest.fixture
def stream(pristine_logging: None) -> io.StringIO:
    """A stream to configure logging with (the ``asyncflow`` loggers are restored after)."""
    return io.StringIO()


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


def _flow_that_logs(name: str = "f") -> Flow:
    talker = task(sync_logs, name="talker")
    with Flow(name) as flow:
        talker()
    return flow


@pytest.fixture
def plain(pristine_logging: None) -> io.StringIO:
    """The ``asyncflow`` records at INFO, through a plain stdlib formatter, into a stream."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("asyncflow")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return out


class TestUnderStdlibFormatters:
    """A record's message is ``event key=value ...`` for any stdlib formatter."""

    async def test_a_plain_formatter_shows_the_event_and_its_context(
        self, bus: EventBus, plain: io.StringIO
    ) -> None:
        await _flow_that_logs().run_async(bus=bus, run_id="r1")

        lines = plain.getvalue().splitlines()
        assert (
            "INFO asyncflow.user: hello from a task answer=42 flow_run_id=r1 flow=f task=talker"
            in lines
        )
        assert (
            "INFO asyncflow.FlowRunner: Beginning Flow run for 'f' tasks=1 flow_run_id=r1 flow=f"
            in lines
        )
        assert not [line for line in lines if "{" in line]  # no dict dumps

    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("plain", "k=plain"),
            ("two words", "k='two words'"),
            ("", "k=''"),
            (3, "k=3"),
            (None, "k=None"),
            ([1, 2], "k=[1, 2]"),
        ],
    )
    def test_values_are_bare_when_unambiguous_else_quoted(
        self, plain: io.StringIO, value: object, shown: str
    ) -> None:
        get_logger().info("e", k=value)

        assert plain.getvalue() == f"INFO asyncflow.user: e {shown}\n"

    def test_a_plain_formatter_prints_the_traceback_of_exception(self, plain: io.StringIO) -> None:
        try:
            raise ValueError("nope")
        except ValueError:
            get_logger().exception("it broke", step=2)

        first, *rest = plain.getvalue().splitlines()
        assert first == "ERROR asyncflow.user: it broke step=2"
        assert rest[0] == "Traceback (most recent call last):"
        assert rest[-1] == "ValueError: nope"

    async def test_caplog_sees_the_records_of_a_run(
        self, bus: EventBus, caplog: pytest.LogCaptureFixture, pristine_logging: None
    ) -> None:
        caplog.set_level(logging.INFO, logger="asyncflow")

        await _flow_that_logs().run_async(bus=bus, run_id="r2")

        assert "hello from a task answer=42 flow_run_id=r2 flow=f task=talker" in caplog.messages
        assert "hello from a task" in caplog.text

    async def test_structlog_formatters_get_the_event_dict_intact(
        self, bus: EventBus, pristine_logging: None
    ) -> None:
        seen: list[dict[str, Any]] = []

        def keep(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
            seen.append(dict(event_dict))
            return event_dict

        handler = logging.StreamHandler(io.StringIO())
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    keep,
                    structlog.processors.JSONRenderer(),
                ]
            )
        )
        root = logging.getLogger("asyncflow")
        root.addHandler(handler)
        root.setLevel(logging.INFO)

        await _flow_that_logs().run_async(bus=bus, run_id="r3")

        [hello] = [e for e in seen if e["event"] == "hello from a task"]
        assert type(hello) is dict
        assert hello.keys() == {
            "event",
            "answer",
            "flow_run_id",
            "flow",
            "task",
            "level",
            "logger",
            "timestamp",
        }
        assert (hello["answer"], hello["level"], hello["logger"]) == (42, "info", "asyncflow.user")


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.msg["event"] for r in caplog.records if r.name == logger]  # type: ignore[index]


class TestPrefectRunLines:
    """Prefect 1.x's INFO lines, on ``asyncflow.FlowRunner`` and ``asyncflow.TaskRunner``."""

    async def test_each_task_run_starts_and_finishes_with_its_final_state(
        self, bus: EventBus, clock: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="asyncflow")
        calls = []

        @task(max_retries=1, retry_delay=60)
        def flaky() -> int:
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("first time")
            return 1

        with Flow("lines") as flow:
            flaky()
        await flow.run_async(bus=bus, clock=clock)

        assert _lines(caplog, "asyncflow.TaskRunner") == [
            "Task 'flaky': Starting task run...",
            "Task 'flaky': Finished task run for task with final state: 'Retrying'",
            "Task 'flaky': Starting task run...",
            "Task 'flaky': Finished task run for task with final state: 'Success'",
        ]
        assert _lines(caplog, "asyncflow.FlowRunner") == [
            "Beginning Flow run for 'lines'",
            "Flow run SUCCESS: all reference tasks succeeded",
        ]

    async def test_mapped_children_are_named_with_their_index_inside_the_parent(
        self, bus: EventBus, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="asyncflow.TaskRunner")

        @task
        def double(x: int) -> int:
            return 2 * x

        with Flow("mapped") as flow:
            double.map([1, 2])
        await flow.run_async(bus=bus)

        lines = [line for line in _lines(caplog, "asyncflow.TaskRunner") if "double" in line]
        # As in Prefect 1.x: the parent's run ends Mapped, then its children run.
        assert lines[0] == "Task 'double': Starting task run..."
        assert lines[1] == "Task 'double': Finished task run for task with final state: 'Mapped'"
        assert sorted(lines[2:]) == [
            "Task 'double[0]': Finished task run for task with final state: 'Success'",
            "Task 'double[0]': Starting task run...",
            "Task 'double[1]': Finished task run for task with final state: 'Success'",
            "Task 'double[1]': Starting task run...",
        ]

    async def test_a_failed_flow_ends_with_a_warning(
        self, bus: EventBus, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="asyncflow")

        @task
        def broken() -> None:
            raise ValueError("nope")

        with Flow("failing") as flow:
            broken()
        await flow.run_async(bus=bus)

        [end] = [r for r in caplog.records if r.name == "asyncflow.FlowRunner"][1:]
        assert (end.levelname, end.msg["event"]) == (  # type: ignore[index]
            "WARNING",
            "Flow run FAILED: some reference tasks failed.",
        )
        assert "Task 'broken': Finished task run for task with final state: 'Failed'" in (
            _lines(caplog, "asyncflow.TaskRunner")
        )

    async def test_a_cancelled_task_run_still_logs_its_end(
        self, caplog: pytest.LogCaptureFixture, cancelled_run: Callable[[], Awaitable[None]]
    ) -> None:
        caplog.set_level(logging.INFO, logger="asyncflow.TaskRunner")

        await cancelled_run()

        assert _lines(caplog, "asyncflow.TaskRunner")[-1] == (
            "Task 'forever': Finished task run for task with final state: 'Cancelled'"
        )

    async def test_no_task_line_is_made_when_the_level_is_above_info(
        self, bus: EventBus, caplog: pytest.LogCaptureFixture, pristine_logging: None
    ) -> None:
        caplog.set_level(logging.INFO, logger="asyncflow")
        logging.getLogger("asyncflow.TaskRunner").setLevel(logging.WARNING)

        await _flow_that_logs().run_async(bus=bus)

        assert _lines(caplog, "asyncflow.TaskRunner") == []
        assert len(_lines(caplog, "asyncflow.FlowRunner")) == 2
