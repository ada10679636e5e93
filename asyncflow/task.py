"""``Task``: one unit of work in a flow, and the functional API that binds tasks together.

Subclass :class:`Task` and override ``run`` (sync or ``async def``), or decorate a function with
:func:`asyncflow.task`. Inside ``with Flow(...)``, calling a task *copies* it and binds the copy's
arguments: other tasks become upstream edges, plain values become constants. Operators build
tasks too, as in Prefect 1.x: ``x + 1``, ``x > 5``, ``t["key"]``, ``a.is_equal(b)``. The active
flow is the context's ``flow`` key, so this module never imports ``flow.py``.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import caching as _caching
from . import triggers as _triggers
from ._task_checks import (
    RESERVED_ARGUMENTS,
    InstanceSignature,
    check_handlers,
    check_persistence,
    check_result,
    check_retries,
    check_timeout,
    infer_nout,
    run_signature,
    type_hints,
    validate_run,
)
from ._task_operators import OPERATOR_TASKS, TaskOperators
from .context import active_flow, current
from .exceptions import NoActiveFlowError, TaskArgsError, TaskBindError

if TYPE_CHECKING:
    from ._typing import FlowBuilder, StateHandler
    from .edges import Edge
    from .states import State

__all__ = (
    "OPERATOR_TASKS",
    "check_result",
    "RESERVED_ARGUMENTS",
    "Task",
    "active_flow",
    "check_handlers",
    "run_signature",
)

RetryDelay = timedelta | float | int | list[timedelta | float | int] | Callable[[int], float]


class Task(TaskOperators):
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
        ValueError: an argument has an impossible value, or the retry settings contradict each
            other (a ``TaskDefinitionError``).

    A subclass whose ``run`` takes ``*args`` or a name reserved by ``__call__`` (``mapped``,
    ``task_args``, ``upstream_tasks``, ``flow``) is refused when the class is defined.
    Operators on tasks build tasks (see :mod:`asyncflow.tasks.operators`); ``==`` and ``hash``
    keep identity semantics, so tasks stay usable as dict keys.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if isinstance(run, staticmethod):
            validate_run(run.__func__, f"<Task class {cls.__name__}>", drop_self=False)
        elif inspect.isfunction(run):
            validate_run(run, f"<Task class {cls.__name__}>", drop_self=True)

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int | None = 0,
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
        if isinstance(tags, str):
            raise TypeError(f"{self!r}: tags must be a collection of strings, not a string")
        # As in 1.x: the tags of an enclosing ``with context(tags=[...])`` are added.
        self.tags = set(tags or ()) | set(current().get("tags") or ())
        self.max_retries, self.retry_delay, self.retry_on = check_retries(
            self, max_retries, retry_delay, retry_on
        )
        self.timeout = check_timeout(self, timeout)
        if trigger is not None and not callable(trigger):
            raise TypeError(f"{self!r}: trigger must be callable, got {trigger!r}")
        self.trigger = trigger if trigger is not None else _triggers.all_successful
        self.skip_on_upstream_skip = skip_on_upstream_skip
        self.cache_for = cache_for
        if cache_for is None and cache_validator not in (None, _caching.never_use):
            warnings.warn(
                f"{self!r}: cache_validator given without cache_for; this task will not be cached",
                UserWarning,
                stacklevel=2,
            )
        # 1.x's defaults: never reuse without cache_for, else reuse while unexpired.
        self.cache_validator = cache_validator or (
            _caching.never_use if cache_for is None else _caching.duration_only
        )
        self.cache_key = cache_key
        self.checkpoint = check_persistence(self, checkpoint, result, target)
        self.result = result
        self.target = target
        self.state_handlers = check_handlers(self, state_handlers, on_failure)
        self.on_failure = on_failure
        self.log_stdout = log_stdout
        if nout is None:
            nout = infer_nout(self.run)
        elif not isinstance(nout, int) or nout < 0:
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

    __signature__ = InstanceSignature()

    # -- the functional API ---------------------------------------------------------------------

    def copy(self, **task_args: Any) -> Task:
        """A shallow copy with a fresh slug, updated with ``task_args`` (e.g. ``name=``).

        ``tags`` given here are added to the task's own (and the context's), as in 1.x.

        Raises:
            TaskArgsError: ``task_args`` names an attribute tasks do not have (an
                ``AttributeError``).
        """
        new = copy.copy(self)
        new.slug = None
        new.state_handlers = list(self.state_handlers)
        for attr, value in task_args.items():
            if not hasattr(new, attr):
                raise TaskArgsError(f"{self!r}: task_args has unknown attribute {attr!r}")
            setattr(new, attr, value)
        given: Any = new.tags
        if isinstance(given, str):
            raise TypeError(f"{self!r}: tags must be a collection of strings, not a string")
        # As in 1.x, tags only add up: the original's, task_args', the context's.
        new.tags = self.tags | set(given) | set(current().get("tags") or ())
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
        # A mapped task's result is a list of children's results: it cannot be unpacked.
        new = self.copy(**{"nout": None, **(task_args or {})})
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
        self.tags.update(current().get("tags") or ())
        return self

    def _bind_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        signature = run_signature(self)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskBindError(f"{self!r}: {exc} (run signature: {signature})") from None
        callargs: dict[str, Any] = {}
        for pname, value in bound.arguments.items():
            if signature.parameters[pname].kind is inspect.Parameter.VAR_KEYWORD:
                callargs.update(value)
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

    # -- introspection ----------------------------------------------------------------------

    def inputs(self) -> dict[str, dict[str, Any]]:
        """Each argument of ``run``: ``{"type": ..., "required": ..., "default": ...}``.

        As in 1.x: ``type`` is the annotation (``Any`` when there is none), a required
        argument has ``default=None``.
        """
        hints = type_hints(self.run)
        inputs: dict[str, dict[str, Any]] = {}
        for name, p in run_signature(self).parameters.items():
            required = p.default is inspect.Parameter.empty
            if p.annotation is inspect.Parameter.empty:
                kind: Any = Any
            else:
                kind = hints.get(name, p.annotation)
            inputs[name] = {
                "type": kind,
                "required": required,
                "default": None if required else p.default,
            }
        return inputs

    def outputs(self) -> Any:
        """The return annotation of ``run`` (``Any`` when there is none)."""
        annotation = run_signature(self).return_annotation
        if annotation is inspect.Signature.empty:
            return Any
        return type_hints(self.run).get("return", annotation)

    def pipe(_asyncflow_self, _asyncflow_task: Any, **kwargs: Any) -> Any:
        """``a.pipe(b, k=v)`` is ``b(a, k=v)``; ``a.pipe(unmapped)`` is ``unmapped(a)``.

        (The odd parameter names leave every name free for ``kwargs``, as in 1.x.)

        Raises:
            ValueError: ``kwargs`` has ``self``.
        """
        if "self" in kwargs:
            raise ValueError(f'{_asyncflow_self!r}: .pipe() takes no keyword argument "self"')
        target: Any = _asyncflow_task
        if isinstance(_asyncflow_task, type) and not issubclass(_asyncflow_task, Task):
            return target(_asyncflow_self)  # an edge marker: unmapped, flatten
        return target(_asyncflow_self, **kwargs)


def _resolve_flow(task: Task, flow: FlowBuilder | None) -> FlowBuilder:
    flow = flow if flow is not None else active_flow.get()
    if flow is None:
        raise NoActiveFlowError(
            f"{task!r} was called outside a flow: use it inside `with Flow(...):` or pass "
            "flow=; to run the function itself, call task.run(...)"
        )
    return flow
