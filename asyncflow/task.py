"""``Task``: one unit of work in a flow, and the functional API that binds tasks together.

Subclass :class:`Task` and override ``run`` (sync or ``async def``), or decorate a function with
:func:`asyncflow.task`. Inside ``with Flow(...)``, calling a task *copies* it and binds the copy's
arguments: other tasks become upstream edges, plain values become constants. The active flow is
found through a :class:`~contextvars.ContextVar`, so this module never imports ``flow.py``.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import triggers as _triggers
from .exceptions import NoActiveFlowError, TaskBindError
from .results.base import is_result

if TYPE_CHECKING:
    from ._typing import FlowBuilder, StateHandler
    from .edges import Edge
    from .states import State

__all__ = ("Task", "GetItem", "active_flow", "RESERVED_ARGUMENTS")

#: The flow that ``with Flow(...)`` opened in this context, if any.
active_flow: ContextVar[FlowBuilder | None] = ContextVar("asyncflow.active_flow", default=None)

#: Keyword arguments of ``Task.__call__`` that a ``run`` method may not use as parameter names.
RESERVED_ARGUMENTS = frozenset({"mapped", "task_args", "upstream_tasks", "flow"})

RetryDelay = timedelta | float | int | list[timedelta | float | int] | Callable[[int], float]


class Task:
    """A unit of work. Subclass it and override :meth:`run`, or use ``@task``.

    Args:
        name: display name (default: the class name).
        slug: unique key within a flow (default: generated from the name).
        tags: labels, used for filtering and per-tag concurrency limits.
        max_retries: how many times to retry after a failure.
        retry_delay: wait before each retry: a timedelta, seconds, a list (one per attempt,
            the last repeats) or a callable ``attempt -> seconds`` such as
            :func:`asyncflow.exponential_backoff`. ``None`` retries at once.
        retry_on: exception types that are retried (default: any failure).
        timeout: seconds (or a timedelta) after which a run is stopped and ends ``TimedOut``.
        trigger: decides from the upstream states whether to run (default: ``all_successful``).
        skip_on_upstream_skip: end ``Skipped`` if any upstream task was skipped.
        cache_for: how long a result may be reused.
        cache_validator: decides whether a cached result is still valid.
        cache_key: share a cache between tasks.
        checkpoint: ``False`` never writes the return value; ``True`` writes it even without a
            ``result`` (to the default :class:`~asyncflow.engine.results.LocalResult`);
            ``None`` (the default) writes it when the task or its flow has a ``result``.
        result: the :class:`~asyncflow.engine.result.Result` the return value is written
            through after success (default: the flow's ``result``).
        target: a location (a ``str.format`` template over the run context, the parameters
            and the inputs, e.g. ``"{task_name}/{today}-{map_index}"``, or a callable taking
            them) where the return value is written; when it already exists, the task is not
            run and ends ``Cached`` with the value read back.
        state_handlers: ``(task, old_state, new_state)`` callables run on every transition.
        on_failure: ``(task, state)`` callable run when the task fails.
        log_stdout: send what the task's code prints (on the loop or in its worker thread)
            to the task logger as INFO records; code in other processes is not captured.
        nout: how many items ``run`` returns, so the bound task can be unpacked.
        task_run_name: a ``str.format`` template over the inputs (or a callable taking them)
            naming each run.
        executor: where ``run`` executes (default: the flow's executor).

    Raises:
        TypeError: an argument has the wrong type (the message names the argument).
        ValueError: an argument has an impossible value.
    """

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: RetryDelay | None = None,
        retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
        timeout: float | timedelta | None = None,
        trigger: Callable[[Mapping[Edge, State]], bool] | None = None,
        skip_on_upstream_skip: bool = True,
        cache_for: timedelta | None = None,
        cache_validator: Callable[..., bool] | None = None,
        cache_key: str | None = None,
        checkpoint: bool | None = None,
        result: Any = None,
        target: str | Callable[..., str] | None = None,
        state_handlers: Iterable[StateHandler] | None = None,
        on_failure: Callable[[Task, State], Any] | None = None,
        log_stdout: bool = False,
        nout: int | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        executor: Any = None,
    ) -> None:
        self.name = name if name is not None else type(self).__name__
        self.slug = slug
        self.tags = set(tags) if tags is not None else set()
        if isinstance(tags, str):
            raise TypeError(f"{self!r}: tags must be a collection of strings, not a string")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool):
            raise TypeError(f"{self!r}: max_retries must be an int >= 0, got {max_retries!r}")
        if max_retries < 0:
            raise ValueError(f"{self!r}: max_retries must be an int >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.retry_delay = _check_retry_delay(self, retry_delay)
        self.retry_on = _check_retry_on(self, retry_on)
        self.timeout = _check_timeout(self, timeout)
        if trigger is not None and not callable(trigger):
            raise TypeError(f"{self!r}: trigger must be callable, got {trigger!r}")
        self.trigger = trigger if trigger is not None else _triggers.all_successful
        self.skip_on_upstream_skip = skip_on_upstream_skip
        self.cache_for = cache_for
        self.cache_validator = cache_validator
        self.cache_key = cache_key
        self.checkpoint = _check_persistence(self, checkpoint, result, target)
        self.result = result
        self.target = target
        self.state_handlers = check_handlers(self, state_handlers, on_failure)
        self.on_failure = on_failure
        self.log_stdout = log_stdout
        if nout is not None and (not isinstance(nout, int) or nout < 0):
            raise ValueError(f"{self!r}: nout must be an int >= 0, got {nout!r}")
        self.nout = nout
        self.task_run_name = task_run_name
        self.executor = executor

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    if TYPE_CHECKING:
        # To the type checker ``run`` is any callable, so subclasses may give it any signature.
        run: Callable[..., Any]
    else:

        def run(self) -> Any:
            """The work itself; override it (sync or ``async def``). The base does nothing."""
            return None

    # -- the functional API ---------------------------------------------------------------------

    def copy(self, **task_args: Any) -> Task:
        """A shallow copy with a fresh slug, updated with ``task_args`` (e.g. ``name=``)."""
        new = copy.copy(self)
        new.slug = None
        new.tags = set(self.tags)
        new.state_handlers = list(self.state_handlers)
        for attr, value in task_args.items():
            if not hasattr(new, attr):
                raise TypeError(f"{self!r}: task_args has unknown attribute {attr!r}")
            setattr(new, attr, value)
        return new

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: Mapping[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: FlowBuilder | None = None,
        **kwargs: Any,
    ) -> Task:
        """Copy this task into the active flow and bind its arguments.

        Args:
            *args: positional arguments of ``run``.
            mapped: map over the arguments (see :meth:`map`).
            task_args: attributes to change on the copy (``name``, ``tags``, ...).
            upstream_tasks: tasks that must finish first without passing a value.
            flow: the flow to add to (default: the one ``with Flow(...)`` opened).
            **kwargs: keyword arguments of ``run``.

        Returns:
            The bound copy, to pass on to other tasks.

        Raises:
            NoActiveFlowError: called outside ``with Flow(...)`` and without ``flow=``.
            TaskBindError: the arguments do not fit ``run``'s signature.
        """
        new = self.copy(**(task_args or {}))
        return new.bind(*args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def map(
        self,
        *args: Any,
        task_args: Mapping[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: FlowBuilder | None = None,
        **kwargs: Any,
    ) -> Task:
        """Like calling the task, but run one child per item of the mapped arguments.

        Wrap an argument in :class:`~asyncflow.unmapped` to pass it whole to every child, or in
        :class:`~asyncflow.flatten` to map over a list of lists as one list.
        """
        new = self.copy(**(task_args or {}))
        return new.bind(*args, mapped=True, upstream_tasks=upstream_tasks, flow=flow, **kwargs)

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: FlowBuilder | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind arguments to *this* task (no copy) in the active flow; returns ``self``."""
        flow = _resolve_flow(self, flow)
        callargs = self._bind_arguments(args, kwargs)
        flow.set_dependencies(
            task=self, upstream_tasks=upstream_tasks, keyword_tasks=callargs, mapped=mapped
        )
        return self

    def _bind_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        signature = run_signature(self)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskBindError(f"{self!r}: {exc} (run signature: {signature})") from None
        callargs: dict[str, Any] = {}
        for pname, value in bound.arguments.items():
            kind = signature.parameters[pname].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                callargs.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                raise TaskBindError(
                    f"{self!r}: run(*{pname}) cannot receive positional arguments from a flow; "
                    "give them by keyword"
                )
            else:
                callargs[pname] = value
        return callargs

    def set_upstream(
        self,
        task: Any,
        flow: FlowBuilder | None = None,
        key: str | None = None,
        mapped: bool = False,
    ) -> Task:
        """Make ``task`` an upstream dependency (passing its result as ``key`` if given)."""
        _resolve_flow(self, flow).add_edge(task, self, key=key, mapped=mapped)
        return self

    def set_downstream(
        self,
        task: Any,
        flow: FlowBuilder | None = None,
        key: str | None = None,
        mapped: bool = False,
    ) -> Task:
        """Make ``task`` depend on this one (receiving this result as ``key`` if given)."""
        _resolve_flow(self, flow).add_edge(self, task, key=key, mapped=mapped)
        return self

    def set_dependencies(
        self,
        flow: FlowBuilder | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: Mapping[str, Any] | None = None,
        mapped: bool = False,
    ) -> Task:
        """The imperative form of binding: see ``Flow.set_dependencies``."""
        _resolve_flow(self, flow).set_dependencies(
            task=self,
            upstream_tasks=upstream_tasks,
            downstream_tasks=downstream_tasks,
            keyword_tasks=keyword_tasks,
            mapped=mapped,
        )
        return self

    def __getitem__(self, key: Any) -> Task:
        """A task that returns ``self``'s result ``[key]``."""
        name = f"{self.name}[{key!r}]"
        return GetItem(name=name).bind(task_result=self, key=key)

    def __iter__(self) -> Iterator[Task]:
        if self.nout is None:
            raise TypeError(
                f"{self!r} is not iterable: give the task nout=N to unpack its result into N tasks"
            )
        return (self[i] for i in range(self.nout))


class GetItem(Task):
    """Returns ``task_result[key]``: what ``t[key]`` builds."""

    def run(self, task_result: Any, key: Any) -> Any:
        return task_result[key]


def check_handlers(
    owner: object, state_handlers: Iterable[StateHandler] | None, on_failure: object
) -> list[StateHandler]:
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


@functools.lru_cache(maxsize=4096)
def _signature(fn: Callable[..., Any], drop_self: bool) -> inspect.Signature:
    signature = inspect.signature(fn)
    if drop_self:
        params = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=params)
    return signature


def run_signature(task: Task) -> inspect.Signature:
    """The signature of ``task.run`` without ``self``, checked for reserved names.

    Cached per function: the copies a flow makes of one task share it, so validating a flow
    of 100,000 tasks does not inspect 100,000 signatures.
    """
    run = task.run
    func = getattr(run, "__func__", None)
    try:
        signature = (
            _signature(func, True)
            if func is not None and inspect.ismethod(run)
            else _signature(run, False)
        )
    except TypeError:  # an unhashable callable: inspect it every time
        signature = inspect.signature(run)
    clash = RESERVED_ARGUMENTS & signature.parameters.keys()
    if clash:
        raise TaskBindError(
            f"{task!r}: run() may not take arguments named {sorted(clash)}; these are reserved "
            "by Task.__call__"
        )
    return signature


def _resolve_flow(task: Task, flow: FlowBuilder | None) -> FlowBuilder:
    flow = flow if flow is not None else active_flow.get()
    if flow is None:
        raise NoActiveFlowError(
            f"{task!r} was called outside a flow: use it inside `with Flow(...):` or pass "
            "flow=; to run the function itself, call task.run(...)"
        )
    return flow


def _check_retry_delay(task: Task, value: Any) -> Any:
    def ok(v: Any) -> bool:
        return isinstance(v, timedelta) or (
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
        )

    if value is None or ok(value) or (callable(value) and not isinstance(value, list)):
        return value
    if isinstance(value, list | tuple) and value and all(ok(v) for v in value):
        return list(value)
    raise TypeError(
        f"{task!r}: retry_delay must be a timedelta, seconds >= 0, a non-empty list of them, "
        f"or a callable attempt -> seconds; got {value!r}"
    )


def _check_retry_on(task: Task, value: Any) -> tuple[type[BaseException], ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{task!r}: retry_on must hold exception types, got the string {value!r}")
    types = (value,) if isinstance(value, type) else tuple(value)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"{task!r}: retry_on must hold exception types, got {t!r}")
    return types


def _check_timeout(task: Task, value: Any) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise TypeError(f"{task!r}: timeout must be a number of seconds, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"{task!r}: timeout must be a positive number of seconds, got {value!r}")
    return float(seconds)


def _check_persistence(task: Task, checkpoint: Any, result: Any, target: Any) -> bool | None:
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
