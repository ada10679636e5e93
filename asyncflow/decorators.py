"""``@task``: turn a sync or async function into a :class:`~asyncflow.task.Task`."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ._task_checks import validate_run
from .task import Task

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("FunctionTask", "task")

P = ParamSpec("P")
R = TypeVar("R")


class FunctionTask(Task, Generic[P, R]):
    """A task whose ``run`` is a plain function (sync or ``async def``).

    Args:
        fn: the function; its signature is the task's signature.
        name: display name (default: the function's name).
        **task_kwargs: any other ``Task`` argument.
    """

    def __init__(self, fn: Callable[P, R], name: str | None = None, **task_kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")
        task_name = name if name is not None else _name_of(fn)
        # Refused here, at decoration, as in 1.x: *args, reserved names, uninspectable callables.
        validate_run(fn, f"<Task: {task_name}>", drop_self=False)
        self.fn = fn
        # An instance attribute, so that inspect.signature(task.run) is fn's own signature
        # and inspect.iscoroutinefunction(task.run) tells async functions apart. Set before
        # Task.__init__, which reads run's return annotation for nout.
        self.run = fn
        super().__init__(name=task_name, **task_kwargs)
        functools.update_wrapper(self, fn, updated=())


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


@overload
def task(fn: Callable[P, R], /, **task_kwargs: Any) -> FunctionTask[P, R]: ...


@overload
def task(
    fn: None = None, /, **task_kwargs: Any
) -> Callable[[Callable[P, R]], FunctionTask[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None, /, **task_kwargs: Any
) -> FunctionTask[P, R] | Callable[[Callable[P, R]], FunctionTask[P, R]]:
    """Make a task of a function: ``@task`` or ``@task(max_retries=3, ...)``.

    Args:
        fn: the function (when used without parentheses).
        **task_kwargs: any :class:`~asyncflow.task.Task` argument.
    """
    if fn is not None:
        return FunctionTask(fn, **task_kwargs)

    def decorator(f: Callable[P, R]) -> FunctionTask[P, R]:
        return FunctionTask(f, **task_kwargs)

    return decorator
