"""The ``asyncflow`` command line: targets, parameters, progress, exit status, visualize, serve.

Most behaviours run ``main([...])`` in process (fast); a few run the real ``python -m
asyncflow`` in a subprocess to prove the entry point, exit codes and signal handling.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from asyncflow import Flow, task
from asyncflow.cli import UsageError, main
from asyncflow.cli._progress import PlainView, RichView, Tracker, family
from asyncflow.cli._target import load_flow, load_flows, parse_parameters
from asyncflow.events import StateChange
from asyncflow.states import (
    Cached,
    Failed,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Running,
    Skipped,
    Success,
    TimedOut,
    TriggerFailed,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]

FLOWS = """
from asyncflow import Flow, Parameter, task

@task
def add(x, y):
    return x + y

@task
async def double(x):
    return 2 * x

@task
def boom(n):
    raise ValueError(f"nope {n}")

with Flow("demo") as demo:
    s = add(Parameter("x", default=1), 2)
    double.map([s, s, 3])

with Flow("broken") as broken:
    boom(Parameter("n"))

if __name__ == "__main__":
    raise SystemExit("the file's main block must not run")
"""


@pytest.fixture
def flows_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows.py"
    path.write_text(FLOWS)
    return path


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures asyncflow's logging for its process; give the next test it back."""
    from asyncflow import _logsetup

    names = ("asyncflow", "asyncflow.TaskRunner", "asyncflow.engine", "asyncflow.FlowRunner")
    loggers = [logging.getLogger(n) for n in names]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    module = vars(_logsetup).copy()
    yield
    _logsetup._uninstall()
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    for name, value in module.items():
        if not name.startswith("__"):
            setattr(_logsetup, name, value)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "asyncflow", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        check=False,
    )


class TestTargets:
    def test_a_file_with_a_name_picks_the_flow_held_by_that_attribute(
        self, flows_file: Path
    ) -> None:
        assert load_flow(f"{flows_file}:broken").name == "broken"

    def test_a_name_falls_back_to_the_flow_name(self, tmp_path: Path) -> None:
        path = tmp_path / "f.py"
        path.write_text("from asyncflow import Flow\nflow = Flow('nightly-etl')\n")
        assert load_flow(f"{path}:nightly-etl").name == "nightly-etl"

    def test_a_file_with_one_flow_needs_no_name(self, tmp_path: Path) -> None:
        path = tmp_path / "one.py"
        path.write_text("from asyncflow import Flow\nf = Flow('only')\n")
        assert load_flow(str(path)).name == "only"

    def test_several_flows_and_no_name_is_a_usage_error_listing_them(
        self, flows_file: Path
    ) -> None:
        with pytest.raises(UsageError, match=r"several flows \(broken, demo\)"):
            load_flow(str(flows_file))

    def test_an_unknown_name_lists_the_flows_there_are(self, flows_file: Path) -> None:
        with pytest.raises(UsageError, match="has no flow 'nope'; it has: broken, demo"):
            load_flow(f"{flows_file}:nope")

    def test_the_files_main_block_does_not_run(self, flows_file: Path) -> None:
        flows, name = load_flows(str(flows_file))
        assert sorted(flows) == ["broken", "demo"]
        assert name is None

    def test_a_missing_file_or_module_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match="no such file"):
            load_flow(str(tmp_path / "missing.py"))
        with pytest.raises(UsageError, match=r"no such file or module: 'no_such_pkg\.flows'"):
            load_flow("no_such_pkg.flows:f")

    def test_a_module_target_is_imported(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pkg = tmp_path / "mypkg"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "jobs.py").write_text("from asyncflow import Flow\nnightly = Flow('n')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        assert load_flow("mypkg.jobs:nightly").name == "n"

    def test_a_file_that_defines_no_flow_says_so(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.py"
        path.write_text("x = 1\n")
        with pytest.raises(UsageError, match="defines no flow"):
            load_flow(str(path))


class TestParameters:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            (["x=3"], {"x": 3}),
            (["x=3.5"], {"x": 3.5}),
            (["name=bob"], {"name": "bob"}),
            (['name="3"'], {"name": "3"}),
            (["xs=[1, 2]"], {"xs": [1, 2]}),
            (['cfg={"a": true}'], {"cfg": {"a": True}}),
            (["flag=true", "none=null"], {"flag": True, "none": None}),
            (["eq=a=b"], {"eq": "a=b"}),
            (["empty="], {"empty": ""}),
        ],
    )
    def test_values_parse_as_json_when_they_parse_else_as_text(
        self, given: list[str], expected: dict[str, object]
    ) -> None:
        assert parse_parameters(given) == expected

    @pytest.mark.parametrize("bad", ["x", "=3"])
    def test_a_pair_without_name_or_equals_is_refused(self, bad: str) -> None:
        with pytest.raises(UsageError, match="not of the form name=value"):
            parse_parameters([bad])


def event(
    seq: int,
    task_name: str | None,
    old: object,
    new: object,
    map_index: int | None = None,
    subject: object = None,
) -> StateChange:
    return StateChange(
        "run-1",
        seq,
        float(seq),
        "f",
        task_name,
        None if task_name is None else f"run-1/{task_name}",
        map_index,
        old,  # type: ignore[arg-type]
        new,  # type: ignore[arg-type]
        subject,
    )


class TestTracker:
    @pytest.mark.parametrize(
        ("state", "name"),
        [
            (Pending(), "Pending"),
            (Retrying(), "Retrying"),
            (Paused(), "Paused"),
            (Running(), "Running"),
            (Success(), "Success"),
            (Cached(), "Cached"),
            (Skipped(), "Skipped"),
            (Mapped(), "Mapped"),
            (Failed(), "Failed"),
            (TriggerFailed(), "TriggerFailed"),
            (TimedOut(), "TimedOut"),
        ],
    )
    def test_each_state_has_its_own_family(self, state: object, name: str) -> None:
        assert family(state) == name  # type: ignore[arg-type]

    def test_it_counts_runs_and_keeps_children_apart_from_their_parent(self) -> None:
        t = Tracker("f")
        parent = object()
        t.update(event(1, "a", Pending(), Running()))
        t.update(event(2, "a", Running(), Failed("x")))
        t.update(event(3, "a", Failed("x"), Retrying()))
        t.update(event(4, "a", Retrying(), Running()))
        t.update(event(5, "a", Running(), Success()))
        for i in range(3):
            t.update(event(6 + i, "m", Pending(), Running(), map_index=i, subject=parent))
        t.update(event(9, "m", Running(), Failed("bad"), map_index=2, subject=parent))
        t.update(event(10, "m", Pending(), Mapped(), subject=parent))
        (a,) = [line for line in t.tasks.values() if line.name == "a"]
        assert a.runs == 2
        assert t.counts() == {"Success": 1, "Running": 2, "Failed": 1}
        assert [line.label for line in t.failures()] == ["m[2]"]

    def test_events_without_a_live_task_group_children_by_their_parents_run_id(self) -> None:
        t = Tracker("f")
        for i in range(2):
            e = event(i + 1, "m", Pending(), Success(), map_index=i)
            t.update(
                StateChange(
                    *[
                        getattr(e, f)
                        for f in ("run_id", "seq", "timestamp", "flow_name", "task_name")
                    ],
                    f"run-1/m[{i}]",
                    i,
                    Pending(),
                    Success(),
                    None,
                )
            )
        assert list(t.children) == ["run-1/m"]
        assert sorted(t.children["run-1/m"]) == [0, 1]


class TestViews:
    def test_plain_lines_show_finished_tasks_retries_and_mapped_summaries(self) -> None:
        t = Tracker("f")
        out = io.StringIO()
        view = PlainView(t, out)
        parent = object()
        for e in [
            event(1, None, Pending(), Running("Running flow.")),
            event(2, "a", Pending(), Running()),
            event(3, "a", Running(), Retrying("Retrying Task (after attempt 1 of 2)")),
            event(4, "m", Pending(), Running(), map_index=0, subject=parent),
            event(5, "m", Running(), Success(), map_index=0, subject=parent),
            event(6, "m", Pending(), Mapped("Mapped 1 children."), subject=parent),
        ]:
            view.show(e, t.update(e))
        text = out.getvalue()
        assert "flow 'f': Running(\"Running flow.\")" in text
        assert 'a: Retrying("Retrying Task (after attempt 1 of 2)")' in text
        assert 'm: Mapped("Mapped 1 children.") (1 Success)' in text
        assert "m[0]" not in text  # successful children do not get a line each

    def test_the_rich_table_shows_each_task_with_its_state_and_the_counts(self) -> None:
        t = Tracker("f")
        out = io.StringIO()
        view = RichView(t, out)
        view.console.width = 120
        with view:
            for e in [
                event(1, None, Pending(), Running("Running flow.")),
                event(2, "extract", Pending(), Running()),
                event(3, "extract", Running(), Success("Task run succeeded.")),
                event(4, "load", Pending(), Running()),
                event(5, "load", Running(), Failed("Error during execution of task: X")),
            ]:
                view.show(e, t.update(e))
            view.tick()
        text = out.getvalue()
        assert "extract" in text
        assert "Success" in text
        assert "Error during execution of task: X" in text
        assert "1 Failed, 1 Success" in text


class TestChoosingAView:
    def test_a_terminal_gets_the_live_table_and_a_pipe_or_plain_gets_lines(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from asyncflow.cli._commands import _view

        tty = io.StringIO()
        tty.isatty = lambda: True  # type: ignore[method-assign]
        monkeypatch.setattr(sys, "stdout", tty)
        assert isinstance(_view(Tracker("f"), plain=False), RichView)
        assert isinstance(_view(Tracker("f"), plain=True), PlainView)
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        assert isinstance(_view(Tracker("f"), plain=False), PlainView)

    def test_without_rich_a_terminal_gets_lines_and_a_hint(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from asyncflow.cli._commands import _view

        tty = io.StringIO()
        tty.isatty = lambda: True  # type: ignore[method-assign]
        monkeypatch.setattr(sys, "stdout", tty)
        monkeypatch.setitem(sys.modules, "rich.live", None)
        assert isinstance(_view(Tracker("f"), plain=False), PlainView)
        assert "asyncflow[cli]" in capsys.readouterr().err


class TestRun:
    def test_a_successful_run_exits_0_with_the_final_state(
        self, flows_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["run", f"{flows_file}:demo", "-p", "x=5"]) == 0
        out = capsys.readouterr().out
        assert "add: Success" in out
        assert re.search(r"double: Mapped\(.*\) \(3 Success\)", out)
        assert "flow 'demo' finished Success(\"All reference tasks succeeded.\")" in out

    def test_a_failed_run_exits_1_and_prints_the_failed_tasks(
        self, flows_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["run", f"{flows_file}:broken", "-p", "n=7"]) == 1
        out = capsys.readouterr().out
        assert "failed tasks:" in out
        assert "boom: Failed(\"Error during execution of task: ValueError('nope 7')\")" in out
        # The traceback of the task's own code, without the engine's frames.
        assert 'raise ValueError(f"nope {n}")' in out
        assert "ValueError: nope 7" in out
        assert "asyncflow/runtime" not in out

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["-p", "y=1"], "unexpected parameter(s) ['y']"),
            (["-p", "x"], "not of the form name=value"),
        ],
    )
    def test_bad_parameters_are_usage_errors(
        self,
        flows_file: Path,
        capsys: pytest.CaptureFixture[str],
        args: list[str],
        message: str,
    ) -> None:
        assert main(["run", f"{flows_file}:demo", *args]) == 2
        assert message in capsys.readouterr().err

    def test_a_missing_required_parameter_is_named(
        self, flows_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["run", f"{flows_file}:broken"]) == 2
        assert "required parameter(s) ['n']" in capsys.readouterr().err

    def test_a_paused_task_ends_the_run_and_says_what_waits_for_approval(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "approve.py"
        path.write_text(
            textwrap.dedent(
                """
                from asyncflow import Flow, task
                from asyncflow.triggers import manual_only

                @task
                def build():
                    return 1

                @task(trigger=manual_only)
                def deploy(x):
                    return x

                with Flow("release") as flow:
                    deploy(build())
                """
            )
        )
        assert main(["run", str(path)]) == 1
        assert "waiting for approval: deploy" in capsys.readouterr().out

    def test_the_real_command_runs_with_the_exit_status_of_the_run(self, flows_file: Path) -> None:
        ok = run_cli("run", f"{flows_file}:demo")
        assert ok.returncode == 0, ok.stderr
        assert "finished Success" in ok.stdout
        assert "flow 'demo': run " in ok.stderr
        failed = run_cli("run", f"{flows_file}:broken", "-p", "n=1")
        assert failed.returncode == 1
        usage = run_cli("run", f"{flows_file}:nope")
        assert usage.returncode == 2
        assert "has no flow 'nope'" in usage.stderr
        assert "Traceback" not in usage.stderr
        # The engine's records stay out of the way unless asked for.
        assert "task run failed" not in failed.stderr
        verbose = run_cli("run", f"{flows_file}:broken", "-p", "n=1", "--log-level", "info")
        assert "task run failed" in verbose.stderr

    def test_argparse_errors_exit_2(self) -> None:
        assert run_cli("frobnicate").returncode == 2


class TestStoredRuns:
    @pytest.fixture
    def store(self, flows_file: Path, tmp_path: Path) -> str:
        path = str(tmp_path / "runs.db")
        assert main(["run", f"{flows_file}:broken", "-p", "n=1", "--store", path]) == 1
        assert main(["run", f"{flows_file}:demo", "--store", path]) == 0
        return path

    def test_runs_list_shows_the_newest_first_with_filters_and_a_cursor(
        self, store: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        capsys.readouterr()
        assert main(["runs", "list", "--store", store]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split()[:3] == ["run", "id", "flow"]
        assert [line.split()[1:3] for line in lines[1:]] == [
            ["demo", "Success"],
            ["broken", "Failed"],
        ]
        assert main(["runs", "list", "--store", store, "--state", "Failed", "--json"]) == 0
        (only,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert only["flow"] == "broken"
        assert only["parameters"] == {"n": 1}
        assert only["state"]["type"] == "Failed"
        assert main(["runs", "list", "--store", store, "--limit", "1"]) == 0
        out = capsys.readouterr().out
        assert "(more: --before " in out
        newest = out.splitlines()[1].split()[0]
        assert main(["runs", "list", "--store", store, "--before", newest]) == 0
        assert "broken" in capsys.readouterr().out

    def _id(self, store: str, flow: str, capsys: pytest.CaptureFixture[str]) -> str:
        capsys.readouterr()
        main(["runs", "list", "--store", store, "--flow", flow, "--json"])
        run_id: str = json.loads(capsys.readouterr().out.splitlines()[0])["id"]
        return run_id

    def test_runs_show_gives_the_run_and_each_task_with_its_run_count(
        self, store: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run_id = self._id(store, "broken", capsys)
        assert main(["runs", "show", run_id, "--store", store]) == 0
        out = capsys.readouterr().out
        assert f"run      {run_id}" in out
        assert 'state    Failed("Some reference tasks failed.")' in out
        assert 'params   {"n": 1}' in out
        assert "boom" in out
        assert "ValueError('nope 1')" in out
        demo = self._id(store, "demo", capsys)
        assert main(["runs", "show", demo, "--store", store, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["tasks"]["double"]["state"] == "Mapped"

    def test_runs_events_prints_the_journal_in_order_from_a_seq(
        self, store: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run_id = self._id(store, "broken", capsys)
        assert main(["runs", "events", run_id, "--store", store, "--json"]) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["new_state"]["type"] == "Failed"
        assert main(["runs", "events", run_id, "--store", store, "--after", "2"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == len(events) - 2
        assert lines[0].split()[0] == "3"

    def test_runs_resume_runs_what_did_not_succeed_and_keeps_the_rest(
        self, store: str, flows_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run_id = self._id(store, "broken", capsys)
        assert main(["runs", "resume", run_id, f"{flows_file}:broken", "--store", store]) == 1
        out = capsys.readouterr().out
        assert "n:" not in out  # the parameter finished and is not run again
        assert "boom: Failed" in out
        assert main(["runs", "resume", run_id, f"{flows_file}:demo", "--store", store]) == 2
        assert "is a run of flow 'broken'" in capsys.readouterr().err

    def test_runs_show_summarises_mapped_children(
        self, store: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        demo = self._id(store, "demo", capsys)
        assert main(["runs", "show", demo, "--store", store]) == 0
        (line,) = [s for s in capsys.readouterr().out.splitlines() if "double" in s]
        assert line.split()[1:] == ["Mapped", "3", "Success"]

    def test_an_empty_store_lists_no_runs(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "empty.db"
        assert anyio.run(_stored_runs, path) == []  # creates the store
        assert main(["runs", "list", "--store", str(path)]) == 0
        assert capsys.readouterr().out == "no runs\n"

    @pytest.mark.parametrize(
        "args",
        [["runs", "show", "no-such-run"], ["runs", "events", "no-such-run"]],
    )
    def test_an_unknown_run_is_a_usage_error_naming_it(
        self, store: str, capsys: pytest.CaptureFixture[str], args: list[str]
    ) -> None:
        assert main([*args, "--store", store]) == 2
        assert "no-such-run" in capsys.readouterr().err

    def test_a_missing_store_is_a_usage_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["runs", "list", "--store", str(tmp_path / "none.db")]) == 2
        assert "no store at" in capsys.readouterr().err


@pytest.fixture
def dot() -> None:
    pytest.importorskip("graphviz")
    if not any((Path(p) / "dot").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("Graphviz's dot program is not installed")


@pytest.mark.usefixtures("dot")
class TestVisualize:
    @pytest.mark.parametrize(
        ("name", "magic"), [("g.svg", b"<?xml"), ("g.png", b"\x89PNG"), ("g.pdf", b"%PDF")]
    )
    def test_the_format_follows_the_extension(
        self, flows_file: Path, tmp_path: Path, name: str, magic: bytes
    ) -> None:
        out = tmp_path / name
        assert main(["visualize", f"{flows_file}:demo", "-o", str(out)]) == 0
        assert out.read_bytes().startswith(magic)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["flows.py", name])

    def test_without_a_known_extension_the_format_is_added_as_prefect_does(
        self, tmp_path: Path
    ) -> None:
        with Flow("f") as flow:
            add_one(add_one(1))
        flow.visualize(filename=str(tmp_path / "graph"), format="svg")
        assert (tmp_path / "graph.svg").read_text().startswith("<?xml")

    def test_the_drawing_has_tasks_mapped_boxes_and_keyed_dashed_edges(self) -> None:
        with Flow("f") as flow:
            xs = add_one.map([1, 2])
            add_one(total(xs))
        from asyncflow._visualize import _graph

        source = _graph(flow, None, horizontal=True).source
        assert "rankdir=LR" in source
        assert 'label="add_one <map>" shape=box' in source
        assert "style=dashed" in source
        assert "label=x" in source  # edges carry their argument

    def test_a_flow_state_colours_nodes_and_draws_each_mapped_child(self) -> None:
        from asyncflow._visualize import _graph

        with Flow("f") as flow:
            xs = add_one.map([1, 2, 3])
            total(xs)
        state = flow.run()
        source = _graph(flow, state, horizontal=False).source
        assert source.count('label="add_one <map>"') == 3
        assert "#28a74580" in source  # Success green, half transparent
        assert source.count('-> "total-1"') == 3  # a reduce edge from every child

    def test_a_state_that_is_not_a_flow_result_is_refused(self) -> None:
        with Flow("f") as flow:
            add_one(1)
        with pytest.raises(ValueError, match="flow_state must be a finished flow state"):
            flow.visualize(flow_state=Success(), filename="x.svg")


def test_a_missing_dot_program_gives_install_advice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("graphviz")
    from asyncflow._visualize import GraphvizError

    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    with Flow("f") as flow:
        add_one(1)
    with pytest.raises(GraphvizError, match="Graphviz's `dot` program was not found"):
        flow.visualize(filename=str(tmp_path / "g.svg"))


@task
def add_one(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(flows_file: Path, cwd: Path, *extra: str) -> tuple[str, subprocess.Popen[str]]:
    """``asyncflow serve`` in a subprocess, once it answers."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncflow", "serve", str(flows_file), "--port", str(port), *extra],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/api/flows", timeout=1)
            return base, proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise AssertionError("the server did not start") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> str:
    """Stop the server; return what it printed."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.stdout is None or proc.stdout.closed:
        return ""
    with proc.stdout:
        return proc.stdout.read()


@pytest.fixture
def server(flows_file: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    pytest.importorskip("fastapi")
    base, proc = start_server(flows_file, tmp_path, "--no-store")
    try:
        yield base, proc
    finally:
        stop(proc)


class TestServe:
    def test_it_serves_the_api_under_api_and_redirects_home_to_the_page_then_stops_on_sigint(
        self, server: tuple[str, subprocess.Popen[str]]
    ) -> None:
        base, proc = server
        flows = httpx.get(base + "/api/flows").json()
        assert sorted(f["name"] for f in flows) == ["broken", "demo"]
        home = httpx.get(base + "/", follow_redirects=False)
        assert home.status_code in (302, 307)
        assert home.headers["location"] == "/api/dashboard"
        page = httpx.get(base + "/", follow_redirects=True)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        started = httpx.post(base + "/api/flows/demo/runs?wait=true", json={"parameters": {}})
        assert started.status_code == 201
        assert started.json()["state"]["type"] == "Success"
        log = stop(proc, signal.SIGINT)
        assert proc.returncode == 0
        assert "Application shutdown complete" in log

    def test_by_default_runs_are_kept_in_a_store_in_the_working_directory(
        self, flows_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        pytest.importorskip("fastapi")
        base, proc = start_server(flows_file, tmp_path)
        try:
            started = httpx.post(base + "/api/flows/demo/runs?wait=true", json={})
            run_id = started.json()["id"]
        finally:
            log = stop(proc, signal.SIGTERM)
        # uvicorn shuts down gracefully, then exits by the signal it got (as a service should).
        assert "Application shutdown complete" in log
        assert proc.returncode in (0, -signal.SIGTERM)
        assert main(["runs", "list", "--store", str(tmp_path / "asyncflow.db"), "--json"]) == 0
        (stored,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert stored["id"] == run_id
        assert stored["state"]["type"] == "Success"


class TestServeApp:
    """The app `asyncflow serve` builds, driven in process (lifespan included)."""

    async def test_it_mounts_the_api_redirects_home_and_keeps_runs_in_the_store(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        pytest.importorskip("fastapi")
        from asyncflow.cli._serve import build_app

        with Flow("served") as flow:
            total(add_one.map([1, 2]))
        store = tmp_path / "runs.db"
        app = build_app([flow], store=str(store))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            home = await client.get("/", follow_redirects=False)
            assert home.status_code == 307
            assert home.headers["location"] == "/api/dashboard"
            done = await client.post("/api/flows/served/runs?wait=true", json={})
            assert done.status_code == 201
            assert done.json()["state"]["type"] == "Success"
        records = await _stored_runs(store)
        assert [r.id for r in records] == [done.json()["id"]]

    def test_two_flows_with_one_name_cannot_be_served_together(self) -> None:
        pytest.importorskip("fastapi")
        from asyncflow.cli._serve import build_app

        with pytest.raises(UsageError, match=r"several flows are named \['twin'\]"):
            build_app([Flow("twin"), Flow("twin")], store=None)

    def test_a_missing_web_extra_names_the_pip_install_line(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from asyncflow.cli._serve import build_app

        monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
        with pytest.raises(UsageError, match=r"pip install 'asyncflow\[fastapi\]'"):
            build_app([Flow("f")], store=None)


class TestVisualizeWithoutAFile:
    def test_outside_a_notebook_it_renders_a_temporary_file_and_opens_a_viewer(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        graphviz = pytest.importorskip("graphviz")
        calls: list[dict[str, object]] = []

        def render(self: object, filename: str | None = None, **kwargs: object) -> str:
            calls.append({"filename": filename, **kwargs})
            return str(filename)

        # Opening a viewer needs a desktop: record the call instead.
        monkeypatch.setattr(graphviz.Digraph, "render", render)
        with Flow("f") as flow:
            add_one(1)
        graph = flow.visualize()
        assert "add_one" in graph.source
        assert calls == [{"filename": calls[0]["filename"], "format": "pdf", "view": True}]

    def test_in_a_notebook_it_returns_the_graph_for_inline_display(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("graphviz")
        from asyncflow import _visualize

        monkeypatch.setattr(_visualize, "_in_notebook", lambda: True)
        with Flow("f") as flow:
            add_one(1)
        assert flow.visualize().source.startswith("digraph f")

    def test_without_the_graphviz_package_it_names_the_extra(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from asyncflow._visualize import GraphvizError

        monkeypatch.setitem(sys.modules, "graphviz", None)
        with pytest.raises(GraphvizError, match=r"pip install 'asyncflow\[viz\]'"):
            Flow("f").visualize(filename="x.svg")


async def _stored_runs(path: Path) -> list[Any]:
    from asyncflow.store import SQLiteStore

    async with SQLiteStore(str(path)) as store:
        return list(await store.list_runs())
