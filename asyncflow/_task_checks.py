"""Checks of a task's definition: its ``run`` signature and its settings.

Kept apart from :mod:`asyncflow.task` so the class reads as the programming model. A ``run``
that cannot work (``*args``, a reserved name, a function that cannot be inspected) is refused
when the class is defined or the function decorated, as Prefect 1.x does, not when it is bound.
"""

from __future__ import annotations

import functools
import inspect
import typing
from datetime import timedelta
from typing import Any

from .exceptions import TaskBindError, TaskDefinitionError
from .results.base import is_result

if typing.TYPE_CHECKING:
    from collections.abc import Callable

__all__ = (
    "InstanceSignature",
    "RESERVED_ARGUMENTS",
    "check_handlers",
    "check_persistence",
    "check_result",
    "check_retries",
    "check_timeout",
    "infer_nout",
    "run_signature",
    "type_hints",
    "validate_run",
)

#: Keyword arguments of ``Task.__call__`` that a ``run`` method may not use as parameter names.
RESERVED_ARGUMENTS = frozenset({"mapped", "task_args", "upstream_tasks", "flow"})


_KIND_ORDER = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
    inspect.Parameter.KEYWORD_ONLY,
    inspect.Parameter.VAR_KEYWORD,
)
_CALL_KEYWORDS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, default, annotation in (
        ("mapped", False, "bool"),
        ("task_args", None, "Mapping[str, Any] | None"),
        ("upstream_tasks", None, "Iterable[Any] | None"),
        ("flow", None, "FlowBuilder | None"),
    )
]


class InstanceSignature:
    """``inspect.signature(task)``: ``run``'s parameters plus the call keywords (1.x's form).

    Only instances have it, so ``inspect.signature(Task)`` still shows the constructor.
    """

    def __get__(self, obj: Any, cls: type[Any]) -> inspect.Signature:
        if obj is None:
            raise AttributeError("__signature__")
        params = list(run_signature(obj).parameters.values())
        ordered = sorted([*params, *_CALL_KEYWORDS], key=lambda p: _KIND_ORDER.index(p.kind))
        return inspect.Signature(ordered, return_annotation="Task")


def validate_run(run: Callable[..., Any], owner: str, *, drop_self: bool) -> inspect.Signature:
    """The signature of ``run``, refused when a flow could not call it.

    Args:
        run: the function (a ``run`` method as defined in its class, or a decorated function).
        owner: how to name the task in errors.
        drop_self: ``run`` is an unbound method; leave out its first parameter.

    Raises:
        TaskDefinitionError: ``run`` cannot be inspected, takes ``*args``, or uses a name
            reserved by ``Task.__call__``.
        TaskBindError: ``run`` has positional-only parameters.
    """
    try:
        signature = _signature(run, drop_self)
    except (TypeError, ValueError):
        raise TaskDefinitionError(
            f"{owner}: {run!r} cannot be inspected for its arguments (common with builtins "
            "such as zip and with numpy functions); wrap it in a plain Python function, e.g. "
            "`@task\\ndef my_zip(a, b): return list(zip(a, b))`"
        ) from None
    params = signature.parameters.values()
    varargs = [p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL]
    if varargs:
        raise TaskDefinitionError(
            f"{owner}: run(*{varargs[0]}) is not supported: a flow passes every argument by "
            "keyword; take **kwargs instead"
        )
    clash = sorted(RESERVED_ARGUMENTS & signature.parameters.keys())
    if clash:
        raise TaskDefinitionError(
            f"{owner}: run() may not take arguments named {clash}; these are reserved by "
            "Task.__call__"
        )
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if positional:
        raise TaskBindError(
            f"{owner}: run() has positional-only parameters {positional}; a flow passes every "
            "argument by keyword"
        )
    return signature


@functools.lru_cache(maxsize=4096)
def _cached_signature(fn: Callable[..., Any], drop_self: bool) -> inspect.Signature:
    return _uncached_signature(fn, drop_self)


def _uncached_signature(fn: Callable[..., Any], drop_self: bool) -> inspect.Signature:
    signature = inspect.signature(fn)
    if drop_self:
        params = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=params)
    return signature


def _signature(fn: Callable[..., Any], drop_self: bool) -> inspect.Signature:
    try:
        return _cached_signature(fn, drop_self)
    except TypeError:  # an unhashable callable: inspect it every time (or raise inspect's error)
        return _uncached_signature(fn, drop_self)


def run_signature(task: Any) -> inspect.Signature:
    """The signature of ``task.run`` without ``self``.

    Cached per function: the copies a flow makes of one task share it, so validating a flow
    of 100,000 tasks does not inspect 100,000 signatures.
    """
    run = task.run
    func = getattr(run, "__func__", None)
    if func is not None and inspect.ismethod(run):
        return _signature(func, True)
    return _signature(run, False)


def check_handlers(owner: object, state_handlers: Any, on_failure: object) -> list[Any]:
    """Validate the handlers given to a task or flow; return them as a list.

    Raises:
        TypeError: naming ``owner`` and the culprit.
    """
    if callable(state_handlers):
        raise TypeError(f"{owner!r}: state_handlers must be a list of callables, not one callable")
    handlers = list(state_handlers or [])
    for handler in handlers:
        if not callable(handler):
            raise TypeError(f"{owner!r}: state handler {handler!r} is not callable")
    if on_failure is not None and not callable(on_failure):
        raise TypeError(f"{owner!r}: on_failure must be callable, got {on_failure!r}")
    return handlers


def check_retries(
    owner: object, max_retries: Any, retry_delay: Any, retry_on: Any
) -> tuple[int, Any, tuple[type[BaseException], ...] | None]:
    """``(max_retries, retry_delay, retry_on)`` checked together, as Prefect 1.x checks them.

    Raises:
        TypeError: a value of the wrong type.
        TaskDefinitionError: the settings contradict each other (a delay without retries,
            retries without a delay, ``retry_on`` without retries) or ``max_retries < 0``.
    """
    if max_retries is None or max_retries is False:
        max_retries = 0
    if not isinstance(max_retries, int) or isinstance(max_retries, bool):
        raise TypeError(f"{owner!r}: max_retries must be an int >= 0, got {max_retries!r}")
    if max_retries < 0:
        raise TaskDefinitionError(
            f"{owner!r}: max_retries must be an int >= 0, got {max_retries!r}"
        )
    delay = _check_retry_delay(owner, retry_delay)
    on = _check_retry_on(owner, retry_on)
    if max_retries > 0 and delay is None:
        raise TaskDefinitionError(
            f"{owner!r}: max_retries={max_retries} needs a retry_delay (a timedelta, seconds, "
            "a list or a callable; 0 retries at once)"
        )
    if delay is not None and not max_retries:
        raise TaskDefinitionError(
            f"{owner!r}: retry_delay={retry_delay!r} needs max_retries greater than 0"
        )
    if on is not None and not max_retries:
        raise TaskDefinitionError(f"{owner!r}: retry_on needs max_retries greater than 0")
    return max_retries, delay, on


def _check_retry_delay(owner: object, value: Any) -> Any:
    def ok(v: Any) -> bool:
        return isinstance(v, timedelta) or (
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
        )

    if value is None or ok(value) or (callable(value) and not isinstance(value, list)):
        return value
    if isinstance(value, list | tuple) and value and all(ok(v) for v in value):
        return list(value)
    raise TypeError(
        f"{owner!r}: retry_delay must be a timedelta, seconds >= 0, a non-empty list of them, "
        f"or a callable attempt -> seconds; got {value!r}"
    )


def _check_retry_on(owner: object, value: Any) -> tuple[type[BaseException], ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{owner!r}: retry_on must hold exception types, got the string {value!r}")
    types = (value,) if isinstance(value, type) else tuple(value)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"{owner!r}: retry_on must hold exception types, got {t!r}")
    return types


def check_timeout(owner: object, value: Any) -> float | None:
    """``timeout`` in seconds (a number or a timedelta), or ``None``."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise TypeError(f"{owner!r}: timeout must be a number of seconds, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"{owner!r}: timeout must be a positive number of seconds, got {value!r}")
    return float(seconds)


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s annotations, evaluated (they are strings under ``from __future__ import
    annotations``); empty when they cannot be evaluated. For a callable object, those of its
    ``__call__``."""
    if not (inspect.isroutine(fn) or isinstance(fn, type)):
        fn = type(fn).__call__
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def infer_nout(run: Callable[..., Any]) -> int | None:
    """How many items ``run`` returns, from a fixed-length ``tuple[...]`` return annotation.

    Cached per function: every task made from one class or function asks the same question.
    """
    func = getattr(run, "__func__", run)
    try:
        return _cached_nout(func)
    except TypeError:  # an unhashable callable: read it every time
        return _nout(func)


@functools.lru_cache(maxsize=4096)
def _cached_nout(func: Callable[..., Any]) -> int | None:
    return _nout(func)


def _nout(func: Callable[..., Any]) -> int | None:
    ret = type_hints(func).get("return")
    if typing.get_origin(ret) is not tuple:
        return None
    args = typing.get_args(ret)
    if len(args) == 2 and args[1] is Ellipsis:
        return None
    return len(args)  # tuple[()] has no args: 0


def check_persistence(task: Any, checkpoint: Any, result: Any, target: Any) -> bool | None:
    """``checkpoint``, after checking it with ``result`` and ``target``.

    Raises:
        TypeError: one of them has the wrong type.
        ValueError: ``target`` is empty.
    """
    if checkpoint is not None and not isinstance(checkpoint, bool):
        raise TypeError(f"{task!r}: checkpoint must be True, False or None, got {checkpoint!r}")
    check_result(task, result)
    if target is not None and not (isinstance(target, str) or callable(target)):
        raise TypeError(
            f"{task!r}: target must be a location template (str) or a callable returning one, "
            f"got {target!r}"
        )
    if isinstance(target, str) and not target:
        raise ValueError(f"{task!r}: target must not be empty")
    return checkpoint


def check_result(owner: object, result: Any) -> None:
    """Refuse a ``result=`` that is not a Result.

    Raises:
        TypeError: naming ``owner`` and the value.
    """
    if result is not None and not is_result(result):
        raise TypeError(
            f"{owner!r}: result must be a Result (e.g. LocalResult(dir=...)), got {result!r}"
        )
