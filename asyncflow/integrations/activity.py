"""What the run page shows of each task run, kept from the run's events and its log records.

A :class:`RunActivity` watches every event of one run (``observe``, called by the run's
record as each event arrives, so it never depends on how much history the record keeps) and
keeps, per task run and per mapped child: its state now, when it first started running, when
it finished, how many times it ran and, for a failure, the traceback of the exception. It also
keeps the run's last log records (``max_logs`` of them; older ones are counted as dropped).

:class:`LogCapture` is the ``logging`` handler that brings the records in: installed on the
``asyncflow`` logger by a :class:`~asyncflow.integrations.Runtime`, it sends each record made
inside one of the runtime's runs (read from the run context) to that run's activity. What
reaches it is what the ``asyncflow`` logger lets through (INFO by default).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs

from ..context import current
from ..states import Cancelling, Failed, Finished, Paused, Running, State

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import StateChange
    from ..task import Task

__all__ = ("LogEntry", "TaskActivity", "RunActivity", "LogCapture")

#: The longest traceback or log message kept, in characters (the end is cut off).
MAX_TEXT = 8_000
# Keys every asyncflow log record carries; the others are shown as ``key=value``.
_STANDARD = frozenset(
    [
        "event",
        "flow_run_id",
        "flow",
        "task",
        "map_index",
        "level",
        "logger",
        "timestamp",
        "exc_info",
    ]
)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n[...]"


@attrs.frozen
class LogEntry:
    """One log record of a task run (or of the flow run when ``task_run_id`` is ``None``).

    Attributes:
        n: its position among the run's records, from 1 (a reader's cursor).
        time: when it was made (``time.time()``).
        level: ``"INFO"``, ``"WARNING"``, ...
        task_run_id: the task run (or mapped child) that made it.
        message: the text, with the record's extra fields as ``key=value`` and any traceback.
    """

    n: int
    time: float
    level: str
    task_run_id: str | None
    message: str


@attrs.define(eq=False)
class TaskActivity:
    """One task run (or mapped child) as far as the events tell.

    Attributes:
        task: the task.
        map_index: the child's index, ``None`` for a task run that is no child.
        state: its state now.
        start: when it first began running (the event's timestamp), else ``None``.
        end: when it reached a final state, else ``None``.
        runs: how many times it began running.
        traceback: the formatted exception of a failed state, else ``None``.
    """

    task: Task
    map_index: int | None
    state: State
    start: float | None = None
    end: float | None = None
    runs: int = 0
    traceback: str | None = None


# What a state means for the activity, decided once per state class (observe is on the path
# of every event).
_RUNNING, _FINISHED, _FAILED, _PAUSED, _OTHER = "running", "finished", "failed", "paused", "other"
_KINDS: dict[type[State], str] = {}


def _kind(cls: type[State]) -> str:
    if issubclass(cls, Running) and not issubclass(cls, Cancelling):
        kind = _RUNNING
    elif issubclass(cls, Failed):
        kind = _FAILED
    elif issubclass(cls, Finished):
        kind = _FINISHED
    elif issubclass(cls, Paused):
        kind = _PAUSED
    else:
        kind = _OTHER
    _KINDS[cls] = kind
    return kind


class RunActivity:
    """The activity of one run: task runs by ``task_run_id``, and the last log records."""

    def __init__(self, max_logs: int | None = 1000) -> None:
        self.tasks: dict[str, TaskActivity] = {}
        self.children: dict[str, list[TaskActivity]] = {}  # parent task_run_id -> children
        self.logs: deque[LogEntry] = deque(maxlen=max_logs)
        self.log_total = 0
        self._paused: set[str] = set()

    @property
    def dropped_logs(self) -> int:
        """How many of the run's first log records the size limit has dropped."""
        return self.log_total - len(self.logs)

    @property
    def awaiting_approval(self) -> bool:
        """Whether a task (or mapped child) of the run is ``Paused`` now."""
        return bool(self._paused)

    def observe(self, event: StateChange) -> None:
        """Account for one event of the run (flow events are ignored)."""
        key = event.task_run_id
        if key is None or event.task_name is None:
            return
        new = event.new_state
        kind = _KINDS.get(type(new)) or _kind(type(new))
        activity = self.tasks.get(key)
        if activity is None:
            activity = self.tasks[key] = TaskActivity(event.subject, event.map_index, new)
            if event.map_index is not None:
                parent = key[: key.rindex("[")]
                self.children.setdefault(parent, []).append(activity)
        activity.state = new
        if kind is _RUNNING:
            activity.runs += 1
            if activity.start is None:
                activity.start = event.timestamp
        if kind is _FAILED or kind is _FINISHED:
            activity.end = event.timestamp
            if kind is _FAILED and isinstance(new.result, BaseException):
                activity.traceback = _clip("".join(traceback.format_exception(new.result)))
        else:
            activity.end = None
        if kind is _PAUSED:
            self._paused.add(key)
        elif self._paused:
            self._paused.discard(key)

    def log(self, time: float, level: str, task_run_id: str | None, message: str) -> LogEntry:
        """Keep one log record; return it."""
        self.log_total += 1
        entry = LogEntry(self.log_total, time, level, task_run_id, _clip(message))
        self.logs.append(entry)
        return entry

    def logs_after(self, n: int) -> list[LogEntry]:
        """The kept log records after position ``n``."""
        first = self.log_total - len(self.logs) + 1  # position of self.logs[0]
        return list(self.logs)[max(0, n + 1 - first) :]


def _message(record: logging.LogRecord) -> str:
    data = record.msg
    exc: object = record.exc_info[1] if record.exc_info else None
    if isinstance(data, dict):  # a structlog record: the event, then its extra fields
        extra = " ".join(f"{k}={v!r}" for k, v in data.items() if k not in _STANDARD)
        text = f"{data.get('event', '')} {extra}".rstrip()
        found = data.get("exc_info")
        exc = found[1] if isinstance(found, tuple) else found
    else:
        text = record.getMessage()
    if isinstance(exc, BaseException):
        text += "\n" + "".join(traceback.format_exception(exc))
    return text


class LogCapture(logging.Handler):
    """Sends the log records made inside a run to that run's :class:`RunActivity`.

    asyncflow's own handler: it does not count as the application's logging configuration
    (``asyncflow_internal``).

    Args:
        lookup: the activity of a flow run id (``None`` for a run not followed).
        notify: called with the flow run id after a record was kept (on the event loop,
            also for a record made in a worker thread), so that streams can send it.
    """

    asyncflow_internal = True

    def __init__(
        self,
        lookup: Callable[[str], RunActivity | None],
        notify: Callable[[str], None],
    ) -> None:
        super().__init__()
        self._lookup = lookup
        self._notify = notify
        self._thread = threading.get_ident()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (trio): records from threads wait for the next event
            self._loop = None

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record`` if it was made inside a followed run."""
        ctx: Any = current()
        run_id = ctx.get("flow_run_id")
        activity = self._lookup(run_id) if run_id is not None else None
        if activity is None:
            return
        try:
            activity.log(record.created, record.levelname, ctx.get("task_run_id"), _message(record))
        except Exception:  # pragma: no cover - logging's own error path
            self.handleError(record)
            return
        if threading.get_ident() == self._thread:
            self._notify(run_id)
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._notify, run_id)
