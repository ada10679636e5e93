"""structlog, set up for the engine and for user code.

Every record made through :func:`get_logger` is bound, at log time, with the run it belongs to
(``flow_run_id``, ``flow``, ``task``, ``map_index``), read from the run context, so the engine
never pays for binding on its hot path. Records go through stdlib :mod:`logging` (logger
``asyncflow``), so applications route them like any other. Importing asyncflow installs nothing;
the first run installs a one-line stderr handler at INFO unless the application configured
logging itself. ``ASYNCFLOW_LOG_LEVEL`` and ``ASYNCFLOW_LOG_FORMAT`` (``console`` or ``json``),
or :func:`configure_logging`, change that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any, Literal

import structlog

from .context import current

if TYPE_CHECKING:
    from collections.abc import Iterator

    from structlog.typing import EventDict, WrappedLogger

__all__ = ("configure_logging", "ensure_logging", "get_logger", "stdout_to_log")

ROOT = "asyncflow"
_CONTEXT_KEYS = (
    ("flow_run_id", "flow_run_id"),
    ("flow_name", "flow"),
    ("task_name", "task"),
    ("map_index", "map_index"),
)
_handler: logging.Handler | None = None


def _add_run_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    ctx = current()
    if ctx:
        for key, field in _CONTEXT_KEYS:
            value = ctx.get(key)
            if value is not None:
                event_dict.setdefault(field, value)
    return event_dict


_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,
    _add_run_context,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
]


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger whose records carry the current run's ids.

    Args:
        name: a stdlib logger name; it is placed under ``asyncflow.`` unless it already is.
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


def configure_logging(
    level: int | str = "INFO",
    fmt: Literal["console", "json"] = "console",
    stream: IO[str] | None = None,
) -> None:
    """Send asyncflow's records to ``stream`` (stderr) as one line each.

    Args:
        level: the lowest level shown.
        fmt: ``"console"`` for readable key=value lines, ``"json"`` for one JSON object a line.
        stream: where to write; stderr by default (stdout stays the program's own).
    """
    global _handler
    if fmt not in ("console", "json"):
        raise ValueError(f"log format must be 'console' or 'json', not {fmt!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if fmt == "json" else _identity,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_log_level, _add_run_context],
        )
    )
    root = logging.getLogger(ROOT)
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = handler
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    root.propagate = False


def _identity(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return event_dict


def ensure_logging() -> None:
    """Install the default handler once, unless the application set up logging already."""
    if _handler is not None:
        return
    root = logging.getLogger(ROOT)
    if root.handlers or logging.getLogger().handlers:
        return
    fmt = os.environ.get("ASYNCFLOW_LOG_FORMAT", "console")
    configure_logging(
        level=os.environ.get("ASYNCFLOW_LOG_LEVEL", "INFO"),
        fmt="json" if fmt == "json" else "console",
    )


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
