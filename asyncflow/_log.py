"""structlog records for the engine and for user code, delivered through stdlib logging.

Every record made through :func:`get_logger` is bound, at log time, with the run it belongs to
(``flow_run_id``, ``flow``, ``task``, ``map_index``), read from the run context, so the engine
never pays for binding on its hot path. Records go to stdlib loggers under ``asyncflow`` and
propagate like any library's: asyncflow adds no handler and changes no propagation here (its own
console/JSON output is opt-in, see :mod:`asyncflow._logsetup`).

A record's ``msg`` is the structlog event dict (an :class:`EventMessage`): any stdlib formatter
renders it as a readable line (``event key=value ...``), and structlog's ``ProcessorFormatter``
receives the event dict intact, as from any structlog logger.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

import structlog

from .context import current

if TYPE_CHECKING:
    from collections.abc import Iterator

    from structlog.typing import EventDict, WrappedLogger

__all__ = (
    "FLOW_RUNNER",
    "LOGGERS",
    "ROOT",
    "TASK_RUNNER",
    "EventMessage",
    "get_logger",
    "stdout_to_log",
)

ROOT = "asyncflow"
FLOW_RUNNER = "asyncflow.FlowRunner"
TASK_RUNNER = "asyncflow.TaskRunner"
#: Every logger asyncflow writes to, and what goes there.
LOGGERS = {
    ROOT: "the parent of all below; set its level to change them all",
    FLOW_RUNNER: "one line when a flow run begins and one when it ends (Prefect 1.x texts)",
    TASK_RUNNER: "one line when a task run starts and one when it ends (Prefect 1.x texts)",
    "asyncflow.engine": "task failures with their traceback, DEBUG state transitions",
    "asyncflow.task": "context.logger in task code, and the prints of log_stdout tasks",
    "asyncflow.user": "get_logger() without a name",
    "asyncflow.bus": "subscribers that raised or fell behind",
    "asyncflow.integrations": "the web runtime: runs that crashed",
    "asyncflow.store": "the SQLite store: slow commits sent to its writer thread, WAL checkpoints",
}
_CONTEXT_KEYS = (
    ("flow_run_id", "flow_run_id"),
    ("flow_name", "flow"),
    ("task_name", "task"),
    ("map_index", "map_index"),
)
# Keys a stdlib formatter shows by itself (%(levelname)s, %(name)s, %(asctime)s, the
# traceback), or structlog's bookkeeping: left out of the readable message.
_NOT_IN_MESSAGE = frozenset(
    {
        "event",
        "level",
        "logger",
        "timestamp",
        "exc_info",
        "stack_info",
        "_record",
        "_from_structlog",
    }
)


def _value(value: Any) -> str:
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=" for c in value)
        return value if plain else repr(value)
    if value is None or isinstance(value, int | float):
        return str(value)
    return repr(value)


class EventMessage(dict[str, Any]):
    """A record's ``msg``: the structlog event dict, whose ``str`` is a readable line.

    ``logging.LogRecord.getMessage()`` (and so ``%(message)s`` in any formatter, pytest's
    caplog, Sentry, OpenTelemetry's log handler) gets ``"event key=value ..."``; structlog's
    ``ProcessorFormatter`` copies the dict and sees every key.
    """

    __slots__ = ()

    def __str__(self) -> str:
        parts = [str(self.get("event", ""))]
        parts += [f"{k}={_value(v)}" for k, v in self.items() if k not in _NOT_IN_MESSAGE]
        return " ".join(parts)


def _add_run_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    ctx = current()
    if ctx:
        for key, field in _CONTEXT_KEYS:
            value = ctx.get(key)
            if value is not None:
                event_dict.setdefault(field, value)
    return event_dict


def _to_stdlib(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> tuple[tuple[EventMessage], dict[str, Any]]:
    """The last processor: the arguments of the stdlib logging call.

    ``_logger``/``_name`` are what ``ProcessorFormatter`` looks for to treat ``msg`` as an event
    dict; ``exc_info`` also goes to the record itself so that plain formatters print the
    traceback (``ProcessorFormatter`` drops the record's copy and renders the dict's).
    """
    kwargs: dict[str, Any] = {"extra": {"_logger": logger, "_name": method_name}}
    exc_info = event_dict.get("exc_info")
    if exc_info:
        kwargs["exc_info"] = exc_info
    return (EventMessage(event_dict),), kwargs


_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,
    _add_run_context,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _to_stdlib,
]


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger whose records carry the current run's ids.

    Args:
        name: a stdlib logger name; it is placed under ``asyncflow.`` unless it already is.
            Without one, the logger is ``asyncflow.user``.

    Returns:
        A ``structlog.stdlib.BoundLogger`` over the stdlib logger of that name: its records
        reach the application's handlers like any library's.
    """
    if name is None:
        name = f"{ROOT}.user"
    elif name != ROOT and not name.startswith(ROOT + "."):
        name = f"{ROOT}.{name}"
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=_PROCESSORS,
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger


class _Capture:
    """Where one task run's ``print`` output goes: complete lines become INFO records."""

    __slots__ = ("logger", "partial")

    def __init__(self, logger: structlog.stdlib.BoundLogger) -> None:
        self.logger = logger
        self.partial = ""

    def write(self, text: str) -> None:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            if line.strip():
                self.logger.info(line, stream="stdout")

    def flush(self) -> None:
        if self.partial.strip():
            self.logger.info(self.partial, stream="stdout")
        self.partial = ""


_capture: ContextVar[_Capture | None] = ContextVar("asyncflow.stdout", default=None)


class _StdoutRouter:
    """Stands in for ``sys.stdout``: writes from a ``log_stdout`` task run (found through a
    context variable, so concurrent tasks and worker threads stay apart) go to its logger;
    everything else goes to the real stdout, untouched."""

    def __init__(self, wrapped: IO[str]) -> None:
        self._wrapped = wrapped

    def write(self, text: str) -> int:
        capture = _capture.get()
        if capture is None:
            return self._wrapped.write(text)
        capture.write(text)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


@contextlib.contextmanager
def stdout_to_log() -> Iterator[None]:
    """While the block runs, ``print`` output of this context goes to the task logger.

    Installs the stdout router on first use (never at import).
    """
    if not isinstance(sys.stdout, _StdoutRouter):
        sys.stdout = _StdoutRouter(sys.stdout)
    capture = _Capture(get_logger("asyncflow.task"))
    token = _capture.set(capture)
    try:
        yield
    finally:
        _capture.reset(token)
        capture.flush()
