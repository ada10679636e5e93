"""Live progress of a flow run on the command line.

:class:`Tracker` folds a run's :class:`~asyncflow.events.StateChange` events into what a person
wants to see: each task's state, run count, start and duration, the children of mapped tasks,
and counts per state. Two views read it: :class:`PlainView` prints one line per notable
transition (for logs and pipes), :class:`RichView` redraws a table in place on a terminal (it
needs the ``cli`` extra: rich).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from ..states import (
    Cached,
    Cancelled,
    Failed,
    Finished,
    Looped,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)

if TYPE_CHECKING:
    from ..events import StateChange

__all__ = ("Tracker", "TaskLine", "PlainView", "RichView", "family")

# Most specific first: the first class a state is an instance of names its family.
_FAMILIES: tuple[tuple[type[State], str, str], ...] = (
    (Cached, "Cached", "green"),
    (Mapped, "Mapped", "blue"),
    (Skipped, "Skipped", "grey50"),
    (Success, "Success", "green"),
    (TriggerFailed, "TriggerFailed", "red"),
    (TimedOut, "TimedOut", "red"),
    (Failed, "Failed", "bold red"),
    (Cancelled, "Cancelled", "grey50"),
    (Looped, "Looped", "blue"),
    (Retrying, "Retrying", "yellow"),
    (Paused, "Paused", "magenta"),
    (Running, "Running", "cyan"),
    (Pending, "Pending", "default"),
)


def family(state: State) -> str:
    """The name of the state family ``state`` belongs to (``"Retrying"``, ``"Failed"``...)."""
    for cls, name, _ in _FAMILIES:
        if isinstance(state, cls):
            return name
    return type(state).__name__


def _style(state: State) -> str:
    for cls, _, style in _FAMILIES:
        if isinstance(state, cls):
            return style
    return "default"


@attrs.define(eq=False)
class TaskLine:
    """What is known of one task run (or one mapped child)."""

    name: str
    map_index: int | None
    state: State
    started: float | None = None
    ended: float | None = None
    runs: int = 0

    @property
    def label(self) -> str:
        return self.name if self.map_index is None else f"{self.name}[{self.map_index}]"

    def duration(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started


@attrs.define(eq=False)
class Tracker:
    """The state of one run, built from its events."""

    flow_name: str
    run_id: str = ""
    flow_state: State = attrs.field(factory=Pending)
    tasks: dict[Any, TaskLine] = attrs.field(factory=dict)  # by Task
    children: dict[Any, dict[int, TaskLine]] = attrs.field(factory=dict)  # by Task, map index
    began: float = attrs.field(factory=time.monotonic)
    ended: float | None = None

    def update(self, event: StateChange) -> TaskLine | None:
        """Fold one event in; returns the task line it changed (None for the flow's own)."""
        now = time.monotonic()
        self.run_id = event.run_id
        if event.task_name is None:
            self.flow_state = event.new_state
            if isinstance(event.new_state, Finished):
                self.ended = now
            return None
        key = event.subject if event.subject is not None else _parent_id(event)
        if event.map_index is None:
            line = self.tasks.get(key)
            if line is None:
                line = self.tasks[key] = TaskLine(event.task_name, None, event.new_state)
        else:
            kids = self.children.setdefault(key, {})
            line = kids.get(event.map_index)
            if line is None:
                line = kids[event.map_index] = TaskLine(
                    event.task_name, event.map_index, event.new_state
                )
        line.state = event.new_state
        if isinstance(event.new_state, Running) and not isinstance(event.old_state, Running):
            line.runs += 1
            if line.started is None:
                line.started = now
            line.ended = None
        elif isinstance(event.new_state, Finished):
            line.ended = now
        return line

    def lines(self) -> list[TaskLine]:
        """Every task run: mapped children in place of their parent."""
        every: list[TaskLine] = []
        for key, line in self.tasks.items():
            kids = self.children.get(key)
            every += kids.values() if kids else [line]
        return every

    def counts(self) -> Counter[str]:
        """How many task runs (mapped children counted one by one) are in each family."""
        return Counter(family(line.state) for line in self.lines())

    def failures(self) -> list[TaskLine]:
        """Every task run (children included) that ended failed or cancelled."""
        return [line for line in self.lines() if isinstance(line.state, Failed | Cancelled)]

    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.began


def _parent_id(event: StateChange) -> str:
    # Events read back from a store carry no live Task: key them by the parent's run id.
    run_id = event.task_run_id or event.task_name or ""
    if event.map_index is not None and run_id.endswith(f"[{event.map_index}]"):
        return run_id[: -len(f"[{event.map_index}]")]
    return run_id


def _span(lines: list[TaskLine], now: float) -> float | None:
    starts = [k.started for k in lines if k.started is not None]
    if not starts:
        return None
    ends = [k.ended if k.ended is not None else now for k in lines if k.started is not None]
    return max(ends) - min(starts)


def _summary(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no tasks"


def _fmt_seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f}s"


class PlainView:
    """One line per notable transition: started/finished tasks, retries, pauses, the flow."""

    def __init__(self, tracker: Tracker, out: TextIO) -> None:
        self.tracker = tracker
        self.out = out

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.flush()

    def show(self, event: StateChange, line: TaskLine | None) -> None:
        t = self.tracker
        stamp = f"[{t.elapsed():7.2f}s]"
        state = event.new_state
        if line is None:
            self._print(f"{stamp} flow {t.flow_name!r}: {state!r}")
            return
        if line.map_index is not None and (
            isinstance(state, Running)
            or (isinstance(state, Success) and not isinstance(state, Skipped | Cached))
        ):
            return  # a line per running or successful child drowns the rest
        if isinstance(state, Pending) and not isinstance(state, Retrying | Paused):
            return
        extra = ""
        if isinstance(state, Mapped):
            kids = t.children.get(event.subject, {})
            extra = f" ({_summary(Counter(family(k.state) for k in kids.values()))})"
        elif isinstance(state, Finished) and line.map_index is None:
            extra = f" in {_fmt_seconds(line.duration(time.monotonic()))}"
        self._print(f"{stamp} {line.label}: {state!r}{extra}")

    def tick(self) -> None:
        """Nothing to redraw: plain output only prints on events."""

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


class RichView:
    """A live table on a terminal: one row per task, counts per state, elapsed time."""

    max_rows = 30

    def __init__(self, tracker: Tracker, out: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self.tracker = tracker
        self.console = Console(file=out)
        self._live = Live(console=self.console, auto_refresh=False, transient=False)

    def __enter__(self) -> RichView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.update(self._render(), refresh=True)
        self._live.__exit__(*exc)

    def show(self, event: StateChange, line: TaskLine | None) -> None:
        if isinstance(event.new_state, Retrying) and line is not None:
            self.console.print(
                f"[yellow]{line.label}: retrying[/] after attempt {event.new_state.run_count} "
                f"({event.new_state.message})"
            )

    def tick(self) -> None:
        self._live.update(self._render(), refresh=True)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        t = self.tracker
        now = time.monotonic()
        table = Table(expand=True, show_edge=False, pad_edge=False, box=None)
        table.add_column("task", no_wrap=True, overflow="ellipsis", max_width=32)
        table.add_column("state", no_wrap=True, width=13)
        table.add_column("runs", no_wrap=True, justify="right", width=7)
        table.add_column("time", no_wrap=True, justify="right", width=8)
        table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
        rows = sorted(
            t.tasks.items(),
            key=lambda kv: (isinstance(kv[1].state, Finished), kv[1].started or float("inf")),
        )
        for key, line in rows[: self.max_rows]:
            kids = t.children.get(key)
            message, runs, seconds = line.state.message or "", str(line.runs), line.duration(now)
            if kids:  # a mapped task: its children's counts, and the time they span
                message = _summary(Counter(family(k.state) for k in kids.values()))
                runs = f"{len(kids)} ch"
                seconds = _span(list(kids.values()), now)
            table.add_row(
                line.label,
                Text(family(line.state), style=_style(line.state)),
                runs,
                _fmt_seconds(seconds),
                message,
            )
        if len(rows) > self.max_rows:
            table.add_row(f"... {len(rows) - self.max_rows} more", "", "", "", "")
        head = Text.assemble(
            (f"flow {t.flow_name!r} ", "bold"),
            (family(t.flow_state), _style(t.flow_state)),
            f"  {t.elapsed():.1f}s  ",
            _summary(t.counts()),
        )
        return Group(head, table)
