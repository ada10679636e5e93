"""The error tree for misuse of asyncflow.

Every error asyncflow raises for bad input derives from :class:`AsyncflowError` *and* from the
matching builtin, so ``except ValueError`` keeps working for callers who do not know asyncflow.
Exceptions raised by user task code are never wrapped: they become ``Failed.result`` as raised.
Signals (``FAIL``, ``RETRY``, ...) are a separate root, see :mod:`asyncflow.signals`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = (
    "AsyncflowError",
    "FlowValidationError",
    "EdgeError",
    "ParameterError",
    "TaskBindError",
    "TaskDefinitionError",
    "TaskArgsError",
    "NoActiveFlowError",
    "RunStateError",
    "BusOverflowError",
    "ExecutorError",
    "ResultNotImplementedError",
    "MissingDependencyError",
    "ScheduleError",
    "missing_dependency",
    "ConfigurationError",
)


class AsyncflowError(Exception):
    """Base class of every error asyncflow raises for misuse."""


class FlowValidationError(AsyncflowError, ValueError):
    """The flow's graph is invalid: a cycle, a missing argument, an unknown task."""


class EdgeError(FlowValidationError):
    """An edge that cannot exist: a task joined to itself, a key that is not an identifier, a
    parameter downstream of another task."""


class ParameterError(AsyncflowError, ValueError):
    """Parameters given to a run are unknown, or required ones are missing.

    Attributes:
        unknown: the names given that the flow does not have.
        missing: the required names that were not given.
    """

    def __init__(
        self, message: str, unknown: Iterable[str] = (), missing: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.unknown = tuple(unknown)
        self.missing = tuple(missing)


class TaskBindError(AsyncflowError, TypeError):
    """A task was called with arguments its ``run`` signature does not accept."""


class TaskDefinitionError(AsyncflowError, ValueError):
    """A task is defined in a way that cannot work: its ``run`` takes ``*args`` or a reserved
    name, its function cannot be inspected, or its retry settings contradict each other.

    Raised when the class is defined (or at ``@task``), as Prefect 1.x raises its ``ValueError``.
    """


class TaskArgsError(AsyncflowError, AttributeError):
    """``task_args`` (or ``task.copy(...)``) names an attribute tasks do not have."""


class NoActiveFlowError(AsyncflowError, ValueError, RuntimeError):
    """A task was called outside of a ``with Flow(...)`` block.

    A ``ValueError`` as in Prefect 1.x (and a ``RuntimeError``, as earlier asyncflow raised).
    """


class RunStateError(AsyncflowError, RuntimeError):
    """An operation does not fit the current state of a run (e.g. resuming a running task)."""


class BusOverflowError(AsyncflowError, RuntimeError):
    """A subscription with ``overflow="error"`` fell behind by more than its buffer."""


class ExecutorError(AsyncflowError, RuntimeError):
    """A task's call could not be sent to (or its result back from) where it runs."""


class ResultNotImplementedError(AsyncflowError, NotImplementedError):
    """A :class:`~asyncflow.engine.result.Result` feature the Result class does not provide."""


class MissingDependencyError(AsyncflowError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def missing_dependency(module: str, extra: str, feature: str) -> MissingDependencyError:
    """The error to raise when ``module`` (from the ``extra`` extra) is needed for ``feature``."""
    return MissingDependencyError(
        f"{feature} needs {module!r}, which is not installed: pip install 'asyncflow[{extra}]'"
    )


class ConfigurationError(AsyncflowError, ValueError):
    """A setting read from the environment (e.g. ``ASYNCFLOW_LOG_LEVEL``) has a bad value."""


class ScheduleError(AsyncflowError, ValueError):
    """A schedule cannot be run: it has no time left, or it is not a schedule."""
