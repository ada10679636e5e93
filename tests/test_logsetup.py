"""asyncflow's own log output: opt-in, or a fallback that steps aside for the application's.

The scenarios that depend on what a program configured before and after its runs (nothing, a
``basicConfig``, handlers added later, environment variables) run as real programs.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from asyncflow import Flow, configure_logging, get_logger, task
from asyncflow._logsetup import ensure_logging
from asyncflow.exceptions import ConfigurationError

if TYPE_CHECKING:
    from asyncflow import EventBus

REPO = Path(__file__).resolve().parents[1]
PRELUDE = """\
import logging
from asyncflow import Flow, get_logger, task

@task
def talker():
    get_logger().info("hello from a task", answer=42)

with Flow("f") as flow:
    talker()

def state():
    root = logging.getLogger("asyncflow")
    print(root.handlers, root.level, root.propagate)
"""


def run_program(body: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run PRELUDE + ``body`` as a program with ``env`` added to the environment."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    for name in ("ASYNCFLOW_LOG_LEVEL", "ASYNCFLOW_LOG_FORMAT"):
        if name not in env:
            environ.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=True,
    )


class TestAProgramThatConfiguresNothing:
    def test_its_runs_show_on_stderr_without_the_per_task_lines(self) -> None:
        done = run_program("""
            flow.run(run_id="r1")
            state()
        """)

        err = done.stderr.splitlines()
        assert len(err) == 3  # begin, the task's record, end
        assert "Beginning Flow run for 'f'" in err[0]
        assert "hello from a task" in err[1]
        assert "answer=42" in err[1]
        assert "Flow run SUCCESS: all reference tasks succeeded" in err[2]
        assert "Task 'talker'" not in done.stderr
        # asyncflow's fallback handler: it leaves propagation on.
        assert done.stdout.endswith("20 True\n")

    def test_the_environment_chooses_level_and_format(self) -> None:
        done = run_program(
            """
            flow.run(run_id="r1")
            """,
            ASYNCFLOW_LOG_LEVEL="debug",
            ASYNCFLOW_LOG_FORMAT="json",
        )

        records = [json.loads(line) for line in done.stderr.splitlines()]
        assert {r["level"] for r in records} == {"debug", "info"}
        assert {r["flow_run_id"] for r in records} == {"r1"}


class TestAProgramThatConfiguresLogging:
    def test_a_basic_config_renders_readable_lines_and_asyncflow_adds_nothing(self) -> None:
        done = run_program("""
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
            flow.run(run_id="r1")
            state()
        """)

        assert done.stderr.splitlines() == [
            "INFO asyncflow.FlowRunner: Beginning Flow run for 'f' tasks=1 flow_run_id=r1 flow=f",
            "INFO asyncflow.TaskRunner: Task 'talker': Starting task run... flow_run_id=r1 flow=f"
            " task=talker",
            "INFO asyncflow.user: hello from a task answer=42 flow_run_id=r1 flow=f task=talker",
            "INFO asyncflow.TaskRunner: Task 'talker': Finished task run for task with final"
            " state: 'Success' flow_run_id=r1 flow=f task=talker",
            "INFO asyncflow.FlowRunner: Flow run SUCCESS: all reference tasks succeeded"
            " state='Success(\"All reference tasks succeeded.\")' flow_run_id=r1 flow=f",
        ]
        assert done.stdout == "[] 0 True\n"

    def test_root_handlers_added_after_a_run_take_over_from_the_fallback(self) -> None:
        done = run_program("""
            flow.run(run_id="r1")
            logging.basicConfig(format="LATER %(name)s: %(message)s", level=logging.INFO)
            get_logger().warning("between runs")
            flow.run(run_id="r2")
            state()
        """)

        err = done.stderr.splitlines()
        assert sum("r1" in line for line in err) == 3  # the first run, by the fallback
        assert "LATER asyncflow.user: between runs" in err
        assert [line for line in err if "r2" in line] == [
            line for line in err if line.startswith("LATER") and "r2" in line
        ]
        assert sum("hello from a task" in line and "r2" in line for line in err) == 1
        assert sum("between runs" in line for line in err) == 1
        # The fallback is gone and its level given back: the application's config rules.
        assert done.stdout == "[] 0 True\n"

    def test_asyncflows_own_handlers_do_not_count_as_the_applications(self) -> None:
        done = run_program("""
            class Internal(logging.Handler):
                asyncflow_internal = True
                def emit(self, record):
                    print("internal got:", record.msg["event"])

            flow.run(run_id="r1")
            logging.getLogger("asyncflow").addHandler(Internal())
            flow.run(run_id="r2")
        """)

        # The fallback output stays (and so does its INFO level) with an internal handler.
        assert sum("hello from a task" in line for line in done.stderr.splitlines()) == 2
        assert "internal got: hello from a task" in done.stdout

    def test_asyncflow_log_level_sets_the_level_under_the_applications_handlers(self) -> None:
        done = run_program(
            """
            logging.basicConfig(format="%(levelname)s %(message)s")
            flow.run(run_id="r1")
            state()
            """,
            ASYNCFLOW_LOG_LEVEL="WARNING",
        )

        assert done.stderr == ""  # the INFO records are below the asked level
        assert done.stdout == "[] 30 True\n"


@pytest.mark.usefixtures("pristine_logging")
class TestEnvironmentVariables:
    @pytest.mark.parametrize(
        ("name", "value", "allowed"),
        [
            ("ASYNCFLOW_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
            ("ASYNCFLOW_LOG_FORMAT", "xml", "console, json"),
        ],
    )
    async def test_a_bad_value_is_refused_before_the_run_starts(
        self,
        bus: EventBus,
        monkeypatch: pytest.MonkeyPatch,
        name: str,
        value: str,
        allowed: str,
    ) -> None:
        monkeypatch.setenv(name, value)
        started = []

        @task
        def t() -> None:
            started.append(1)

        with Flow("env") as flow:
            t()

        with pytest.raises(ConfigurationError) as info:
            await flow.run_async(bus=bus)
        assert str(info.value) == (
            f"{name}={value!r} is not a log {name.rsplit('_')[-1].lower()}; use one of {allowed}"
        )
        assert isinstance(info.value, ValueError)
        assert started == []
        with pytest.raises(ConfigurationError, match=name):
            configure_logging(stream=io.StringIO())

    def test_level_names_are_accepted_in_any_case(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ASYNCFLOW_LOG_LEVEL", "error")
        out = io.StringIO()

        configure_logging(stream=out)
        get_logger().warning("dropped")
        get_logger().error("kept")

        assert "kept" in out.getvalue()
        assert "dropped" not in out.getvalue()


@pytest.mark.usefixtures("pristine_logging")
class TestConfigureLogging:
    async def test_task_runs_adds_the_per_task_lines(self, bus: EventBus) -> None:
        quiet, loud = io.StringIO(), io.StringIO()

        @task
        def t() -> None:
            pass

        with Flow("lines") as flow:
            t()
        configure_logging(stream=quiet)
        await flow.run_async(bus=bus)
        configure_logging(stream=loud, task_runs=True)
        await flow.run_async(bus=bus)

        assert "Task 't'" not in quiet.getvalue()
        assert "Task 't': Starting task run..." in loud.getvalue()
        assert "Task 't': Finished task run for task with final state: 'Success'" in (
            loud.getvalue()
        )

    def test_calling_it_again_replaces_its_handler(self) -> None:
        first, second = io.StringIO(), io.StringIO()

        configure_logging(stream=first)
        configure_logging(stream=second)
        get_logger().info("once")

        assert first.getvalue() == ""
        assert second.getvalue().count("once") == 1

    def test_records_stop_at_its_handler_unless_asked_to_propagate(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO)
        configure_logging(stream=io.StringIO())
        get_logger().info("kept apart")
        configure_logging(stream=io.StringIO(), propagate=True)
        get_logger().info("passed on")

        assert caplog.messages == ["passed on"]

    @pytest.mark.parametrize(
        ("kwargs", "culprit"), [({"fmt": "xml"}, "'xml'"), ({"level": "LOUD"}, "'LOUD'")]
    )
    def test_an_unknown_format_or_level_is_refused(
        self, kwargs: dict[str, str], culprit: str
    ) -> None:
        with pytest.raises(ValueError, match=culprit):
            configure_logging(stream=io.StringIO(), **kwargs)  # type: ignore[arg-type]

    def test_a_run_under_an_application_config_installs_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        before = list(logging.getLogger("asyncflow").handlers)

        ensure_logging()  # pytest's handlers are on the root logger: an application config

        assert logging.getLogger("asyncflow").handlers == before
