"""DBOS Transact measured beside asyncflow's durable figures: the anchor of ``durable``.

DBOS Transact is a durable-execution library that checkpoints every step of a workflow in its
system database. With ``pip install 'asyncflow[bench]'`` (``dbos``) the durable scenario
measures it in the same run, on a SQLite system database in a temporary directory:

- **per step**: a workflow of N ``async`` no-op steps in sequence (DBOS commits each step's
  output before the next one starts), timed as a whole, divided by N; median over repeats,
  after one untimed warm-up workflow. Async steps, since asyncflow's figures are async tasks
  (DBOS runs them on the caller's event loop).
- **recovery**: a child process runs a workflow of the shape of ``durable.recovery_flow`` (5
  async steps, the last one hangs and prints ``hanging``) and is killed with SIGKILL; a fresh
  child process then launches DBOS on the same database and reports the time from just before
  ``DBOS.launch()`` to the resumed step starting (the first 4 steps are replayed from the
  database, not run); median over repeats. DBOS hands a recovered workflow to its internal
  queue, which its queue thread polls every second by default: most of the figure is the wait
  for that poll. The child also reports how long ``DBOS.launch()`` itself took and how long
  importing ``dbos`` took (not part of the figure, as importing asyncflow is not part of
  asyncflow's).

Every measurement runs in a child process (``python -m benchmarks.dbos_anchor MODE ...``): DBOS
is a process-wide singleton that starts background threads, which must not share a process
with asyncflow's figures. DBOS's logs are kept to warnings; everything else is DBOS's default
configuration.

Without ``dbos`` the anchor falls back to figures quoted for this machine class
(:data:`QUOTED_STEP_S`, :data:`QUOTED_RECOVERY_S`), labelled ``quoted``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = (
    "MAX_STEPS",
    "QUICK_MAX_STEPS",
    "QUOTED_RECOVERY_S",
    "QUOTED_STEP_S",
    "Anchor",
    "installed",
    "measure",
    "quoted",
)

#: DBOS Transact on this machine class (quoted): seconds per step, seconds to recover.
QUOTED_STEP_S = 3.0e-3
QUOTED_RECOVERY_S = 1.1
#: The most steps in the per-step workflow (DBOS takes milliseconds a step): full run, --quick.
MAX_STEPS = 500
QUICK_MAX_STEPS = 100
#: Steps of the recovery workflow (the last one hangs in the crashed process).
RECOVERY_STEPS = 5
#: The id of the workflow the crashed process leaves behind.
CRASHED_ID = "crashed"
#: Seconds a child process may take before it counts as stuck.
CHILD_TIMEOUT_S = 120.0

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Anchor:
    """DBOS's figures, measured in this run or quoted.

    Attributes:
        source: ``measured`` or ``quoted``.
        step_s: median seconds per step of a sequential workflow.
        recovery_s: median seconds from ``DBOS.launch()`` to the resumed step starting.
        version: the installed ``dbos`` version (measured only).
        steps: N, the steps of the per-step workflow (measured only).
        step_times_s: seconds per step, one per repeat.
        recovery_times_s: recovery seconds, one per repeat.
        launch_times_s: how long ``DBOS.launch()`` took in each recovering process.
        import_times_s: how long ``import dbos`` took in each recovering process.
        reason: why the figures are quoted.
    """

    source: str
    step_s: float
    recovery_s: float
    version: str | None = None
    steps: int | None = None
    step_times_s: list[float] = field(default_factory=list)
    recovery_times_s: list[float] = field(default_factory=list)
    launch_times_s: list[float] = field(default_factory=list)
    import_times_s: list[float] = field(default_factory=list)
    reason: str | None = None

    @property
    def label(self) -> str:
        """The column header: ``DBOS (measured)`` or ``DBOS (quoted)``."""
        return f"DBOS ({self.source})"

    def describe(self) -> str:
        """One line saying what the DBOS figures are."""
        if self.source == "quoted":
            return f"DBOS Transact: quoted figures, not measured in this run ({self.reason})."
        launch = statistics.median(self.launch_times_s)
        return (
            f"DBOS Transact {self.version} measured in this run (SQLite system database, async "
            f"steps): per step, a workflow of {self.steps:,} steps in sequence; recovery, from "
            f"just before DBOS.launch() ({fmt_s(launch)} of it) to the resumed step; medians of "
            f"{len(self.step_times_s)} repeats."
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fmt_s(seconds: float) -> str:
    """``seconds`` in s or ms."""
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.1f} ms"


def installed() -> str | None:
    """The installed ``dbos`` version, or ``None`` when it cannot be imported."""
    if importlib.util.find_spec("dbos") is None:
        return None
    try:
        return importlib.metadata.version("dbos")
    except importlib.metadata.PackageNotFoundError:
        return None


def quoted(reason: str) -> Anchor:
    """The quoted figures, with why they are not measured."""
    return Anchor("quoted", QUOTED_STEP_S, QUOTED_RECOVERY_S, reason=reason)


def measure(tmp: str, steps: int, repeats: int, version: str) -> Anchor:
    """Measure DBOS in child processes, with system databases under ``tmp``."""
    path = os.path.join(tmp, "dbos-steps.sqlite")
    # Allow 50 ms a step (DBOS takes a few), beyond the time to start.
    timeout = CHILD_TIMEOUT_S + 0.05 * steps * (repeats + 1)
    out = _child("steps", path, str(steps), str(repeats), timeout=timeout)
    anchor = Anchor(
        "measured",
        step_s=0.0,
        recovery_s=0.0,
        version=version,
        steps=steps,
        step_times_s=[t / steps for t in out["times_s"]],
    )
    paths = [os.path.join(tmp, f"dbos-recovery-{r}.sqlite") for r in range(repeats)]
    _crash_all(paths)
    for path in paths:
        out = _child("recover", path)
        anchor.recovery_times_s.append(out["first_step_s"])
        anchor.launch_times_s.append(out["launch_s"])
        anchor.import_times_s.append(out["import_s"])
    anchor.step_s = statistics.median(anchor.step_times_s)
    anchor.recovery_s = statistics.median(anchor.recovery_times_s)
    return anchor


def _command(*args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": _ROOT}
    return [sys.executable, "-m", "benchmarks.dbos_anchor", *args], env


def _child(*args: str, timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run one measuring child process; its last line on stdout is its JSON report."""
    argv, env = _command(*args)
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise _failure(
            f"the DBOS child process `{args[0]}` exited with {done.returncode}", done.stderr
        )
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def _failure(what: str, stderr: str) -> RuntimeError:
    """An error saying ``what``, ending with the last line of the child's ``stderr``; the whole
    of it is attached as a note (printed with the traceback)."""
    lines = stderr.strip().splitlines()
    error = RuntimeError(f"{what}: {lines[-1]}" if lines else what)
    if lines:
        error.add_note(stderr.strip())
    return error


def _crash_all(paths: list[str]) -> None:
    """Run the recovery workflow on each of ``paths`` in child processes started together
    (nothing is timed here), and kill each with SIGKILL as its last step hangs."""
    children: list[subprocess.Popen[str]] = []

    def stuck() -> None:  # a child that never prints ends its readline() below
        for child in children:
            child.kill()

    watchdog = threading.Timer(CHILD_TIMEOUT_S, stuck)
    watchdog.start()
    try:
        for path in paths:
            argv, env = _command("crash", path)
            children.append(
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
                )
            )
        for child in children:
            assert child.stdout is not None
            assert child.stderr is not None
            line = child.stdout.readline()
            child.send_signal(signal.SIGKILL)
            child.wait()
            if line != "hanging\n":
                raise _failure(
                    f"the DBOS child process `crash` did not reach its last step ({line!r})",
                    child.stderr.read(),
                )
    finally:
        watchdog.cancel()
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()


# --- the child processes (they import dbos) -------------------------------------------------


class _Child:
    """DBOS configured on one SQLite file, with the benchmark's workflows registered."""

    def __init__(self, path: str) -> None:
        start = time.perf_counter()
        from dbos import DBOS

        self.import_s = time.perf_counter() - start
        self.DBOS = DBOS
        self.hang = False
        self.started: list[tuple[int, float]] = []
        self.resumed = threading.Event()
        self._register()
        DBOS(
            config={
                "name": "asyncflow-bench",
                "system_database_url": f"sqlite:///{path}",
                "log_level": "WARNING",
            }
        )

    def _register(self) -> None:
        DBOS = self.DBOS
        child = self

        @DBOS.step()
        async def noop(i: int) -> int:
            return i

        @DBOS.workflow()
        async def chain(n: int) -> int:
            for i in range(n):
                await noop(i)
            return n

        @DBOS.step()
        async def recovery_step(i: int) -> int:
            child.started.append((i, time.perf_counter()))
            child.resumed.set()
            if child.hang and i == RECOVERY_STEPS:
                print("hanging", flush=True)
                await asyncio.sleep(120)
            return i

        @DBOS.workflow()
        async def recovery() -> int:
            for i in range(1, RECOVERY_STEPS + 1):
                await recovery_step(i)
            return RECOVERY_STEPS

        self.chain, self.recovery = chain, recovery


def _steps(path: str, n: int, repeats: int) -> dict[str, Any]:
    """Time ``repeats`` workflows of ``n`` steps (after one untimed warm-up workflow)."""
    child = _Child(path)
    child.DBOS.launch()
    times: list[float] = []

    async def main() -> None:
        await child.chain(min(n, 20))
        for _ in range(repeats):
            gc.collect()
            start = time.perf_counter()
            done = await child.chain(n)
            times.append(time.perf_counter() - start)
            if done != n:
                raise RuntimeError(f"the DBOS workflow returned {done!r}, not {n}")

    asyncio.run(main())
    return {"times_s": times}


def _crash_child(path: str) -> None:
    """Run the recovery workflow until its last step hangs (the parent kills this process)."""
    from dbos import SetWorkflowID

    child = _Child(path)
    child.hang = True
    child.DBOS.launch()

    async def main() -> None:
        with SetWorkflowID(CRASHED_ID):
            await child.recovery()

    asyncio.run(main())
    raise RuntimeError("the hanging step returned")


def _recover(path: str) -> dict[str, Any]:
    """Launch DBOS on a crashed database; report when the resumed step started."""
    child = _Child(path)
    gc.collect()
    begin = time.perf_counter()
    child.DBOS.launch()
    launched = time.perf_counter()
    if not child.resumed.wait(CHILD_TIMEOUT_S / 2):
        raise RuntimeError("DBOS did not resume the crashed workflow")
    result: object = child.DBOS.retrieve_workflow(CRASHED_ID).get_result(polling_interval_sec=0.005)
    first, at = child.started[0]
    if first != RECOVERY_STEPS or result != RECOVERY_STEPS:
        raise RuntimeError(
            f"DBOS resumed at step {first} (expected {RECOVERY_STEPS}) and returned {result!r}"
        )
    return {"first_step_s": at - begin, "launch_s": launched - begin, "import_s": child.import_s}


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.dbos_anchor steps|crash|recover DB [N REPEATS]``: one child.

    Prints its report as one JSON line on stdout, then leaves without shutting DBOS down:
    ``DBOS.destroy()`` joins DBOS's polling threads (about a second), which no figure includes,
    and the system database is a temporary file. An error is a traceback and exit status 1.
    """
    p = argparse.ArgumentParser(prog="python -m benchmarks.dbos_anchor")
    p.add_argument("mode", choices=("steps", "crash", "recover"))
    p.add_argument("db", help="the SQLite system database file")
    p.add_argument("n", type=int, nargs="?", default=1, help="steps per workflow (steps)")
    p.add_argument("repeats", type=int, nargs="?", default=1, help="timed workflows (steps)")
    args = p.parse_args(argv)
    try:
        if args.mode == "crash":
            _crash_child(args.db)
        elif args.mode == "steps":
            print(json.dumps(_steps(args.db, args.n, args.repeats)), flush=True)
        else:
            print(json.dumps(_recover(args.db)), flush=True)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
