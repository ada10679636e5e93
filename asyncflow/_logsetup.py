"""asyncflow's own log output: opt-in, or a fallback when the application configured nothing.

A library does not decide where its records go; the application does. So asyncflow installs a
handler in two cases only: when the application asks (:func:`configure_logging`), and, at the
first flow run, when logging is not configured at all (no
handler on the root logger nor on ``asyncflow``), so that a script still shows its runs. That
fallback steps aside by itself as soon as the application adds a handler: it removes itself and
gives back the levels it set, and from then on records reach the application's handlers only.

``ASYNCFLOW_LOG_LEVEL`` (a level name) sets the ``asyncflow`` logger's level at the first run
and is the default level of :func:`configure_logging`; ``ASYNCFLOW_LOG_FORMAT`` (``console`` or
``json``) is the default format of asyncflow's own output. A bad value raises
:class:`~asyncflow.exceptions.ConfigurationError` naming the variable and the allowed values.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from typing import IO, TYPE_CHECKING, Any, Literal, cast

import attrs
import structlog

from ._log import ROOT, TASK_RUNNER, _add_run_context
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ("FORMATS", "LEVELS", "configure_logging", "ensure_logging", "read_env")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("console", "json")
LEVEL_VAR = "ASYNCFLOW_LOG_LEVEL"
FORMAT_VAR = "ASYNCFLOW_LOG_FORMAT"


@attrs.frozen
class EnvSettings:
    """What ``ASYNCFLOW_LOG_LEVEL`` and ``ASYNCFLOW_LOG_FORMAT`` say (None: not set)."""

    level: str | None
    fmt: Literal["console", "json"] | None


def read_env() -> EnvSettings:
    """Read and check the two variables.

    Raises:
        ConfigurationError: a variable is set to a value outside its allowed ones.
    """
    level = os.environ.get(LEVEL_VAR) or None
    if level is not None:
        if level.upper() not in LEVELS:
            raise ConfigurationError(
                f"{LEVEL_VAR}={level!r} is not a log level; use one of {', '.join(LEVELS)}"
            )
        level = level.upper()
    fmt = os.environ.get(FORMAT_VAR) or None
    if fmt is not None and fmt not in FORMATS:
        raise ConfigurationError(
            f"{FORMAT_VAR}={fmt!r} is not a log format; use one of {', '.join(FORMATS)}"
        )
    return EnvSettings(level, cast('Literal["console", "json"] | None', fmt))


@attrs.define
class _Installed:
    """The handler asyncflow put on its logger, and the levels to give back without it."""

    handler: logging.Handler
    fallback: bool
    saved_levels: dict[str, int]


_installed: _Installed | None = None
_env_applied = False


def _identity(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return event_dict


# No padding after the event; structlog 25.5 renamed the option (pad_event -> pad_event_to).
_NO_PADDING: dict[str, Any] = (
    {"pad_event_to": 0}
    if "pad_event_to" in inspect.signature(structlog.dev.ConsoleRenderer).parameters
    else {"pad_event": 0}
)


def _formatter(fmt: Literal["console", "json"]) -> logging.Formatter:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # A plain traceback: with rich installed, structlog's default prints every frame's
        # locals in boxes, a screenful per failed task.
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback, **_NO_PADDING
        )
    )
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if fmt == "json" else _identity,
            renderer,
        ],
        foreign_pre_chain=[structlog.stdlib.add_log_level, _add_run_context],
    )


class _FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """asyncflow's output while the application has configured nothing; it steps aside the
    moment a handler appears on the root logger or on ``asyncflow``."""

    def emit(self, record: logging.LogRecord) -> None:
        if _app_configured(ignore=self):
            _uninstall()  # this record goes on to the application's handlers by propagation
            return
        super().emit(record)


def _app_configured(ignore: logging.Handler | None) -> bool:
    """Whether the application put a handler on the root logger or on ``asyncflow``.

    asyncflow's own handlers (``asyncflow_internal = True``, e.g. the run page's log capture)
    do not count.
    """
    own = logging.getLogger(ROOT).handlers
    return bool(logging.getLogger().handlers) or any(
        h is not ignore and not getattr(h, "asyncflow_internal", False) for h in own
    )


def _install(
    handler: logging.Handler, *, fallback: bool, level: int | str, task_runs: bool
) -> None:
    global _installed
    _uninstall()
    root, runner = logging.getLogger(ROOT), logging.getLogger(TASK_RUNNER)
    saved = {ROOT: root.level, TASK_RUNNER: runner.level}
    root.addHandler(handler)
    root.setLevel(level)
    # The per-task lines are quiet in asyncflow's own output unless asked for.
    runner.setLevel(logging.NOTSET if task_runs else logging.WARNING)
    _installed = _Installed(handler, fallback, saved)


def _uninstall() -> None:
    """Take asyncflow's handler off and give back the levels it replaced."""
    global _installed
    installed, _installed = _installed, None
    if installed is None:
        return
    root = logging.getLogger(ROOT)
    # A new list, not list.remove(): this may run inside a handler that logging is iterating.
    root.handlers = [h for h in root.handlers if h is not installed.handler]
    for name, level in installed.saved_levels.items():
        logging.getLogger(name).setLevel(level)
    installed.handler.close()


def configure_logging(
    level: int | str | None = None,
    fmt: Literal["console", "json"] | None = None,
    stream: IO[str] | None = None,
    *,
    task_runs: bool = False,
    propagate: bool = False,
) -> None:
    """Show asyncflow's records on ``stream`` (stderr), one line each.

    Calling it again replaces the handler it installed. An application that configures logging
    itself does not need it.

    Args:
        level: the lowest level shown; ``ASYNCFLOW_LOG_LEVEL`` or ``"INFO"`` by default.
        fmt: ``"console"`` for readable key=value lines, ``"json"`` for one JSON object a line;
            ``ASYNCFLOW_LOG_FORMAT`` or ``"console"`` by default.
        stream: where to write; stderr by default (stdout stays the program's own).
        task_runs: also show the per-task lines of ``asyncflow.TaskRunner`` ("Task 'x':
            Starting task run...", "... final state: 'Success'"), one pair per task run.
        propagate: also pass the records on to the root logger's handlers (by default they
            stop at this handler, so that they are not printed twice).

    Raises:
        ConfigurationError: an ``ASYNCFLOW_LOG_*`` variable has a bad value.
        ValueError: ``fmt`` or ``level`` is not one asyncflow knows.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if isinstance(level, str) and level.upper() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    env = read_env()
    level = level if level is not None else env.level or "INFO"
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_formatter(fmt or env.fmt or "console"))
    _install(
        handler,
        fallback=False,
        level=level.upper() if isinstance(level, str) else level,
        task_runs=task_runs,
    )
    logging.getLogger(ROOT).propagate = propagate


def ensure_logging() -> None:
    """Called at the start of every flow run: read the environment (the first time), and
    install or retire the fallback output.

    Raises:
        ConfigurationError: an ``ASYNCFLOW_LOG_*`` variable has a bad value.
    """
    global _env_applied
    env = read_env()
    root = logging.getLogger(ROOT)
    if not _env_applied:
        _env_applied = True
        if env.level is not None:  # asked for explicitly: it holds whoever handles the records
            root.setLevel(env.level)
    if _installed is not None:
        if _installed.fallback and _app_configured(ignore=_installed.handler):
            _uninstall()
        return
    if not _app_configured(ignore=None):
        handler = _FallbackHandler(sys.stderr)
        handler.setFormatter(_formatter(env.fmt or "console"))
        level = root.level if root.level != logging.NOTSET else logging.INFO
        _install(handler, fallback=True, level=level, task_runs=False)
