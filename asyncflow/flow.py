"""``Flow``: the graph builder, and the front doors that run it.

Build a flow with the functional API (``with Flow("x") as flow: b(a())``) or the imperative one
(``add_task``, ``add_edge``, ``set_dependencies``, ``chain``); both build the same graph.
``await flow.run_async()`` runs it on the caller's event loop; ``flow.run()`` is the sync front
door; ``async with flow.start() as run`` runs it in the background with a live handle. Each run
gets a frozen :class:`~asyncflow.runtime.spec.FlowSpec`, so editing the flow later never
changes a run in progress.
"""

from __future__ import annotations

import copy as _copy
import inspect
import itertools
from typing import TYPE_CHECKING, Any

from . import _graph
from ._compile import build_spec
from ._running import RunsFlows
from .edges import Edge, flatten, unmapped
from .exceptions import FlowValidationError, TaskBindError
from .parameter import Parameter
from .task import Task, active_flow, check_handlers, check_result, run_signature
from .tasks.core import collection_task, contains_task

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ._typing import StateHandler
    from .runtime.executors import Executor
    from .runtime.spec import FlowSpec
    from .states import State

__all__ = ("Flow",)


class Flow(RunsFlows):
    """A graph of tasks, and how to run it.

    Args:
        name: the flow's name.
        tasks: tasks to add at once.
        edges: edges to add at once.
        reference_tasks: the tasks whose states decide the flow's (default: terminal tasks).
        state_handlers: ``(flow, old_state, new_state)`` callables run on every flow transition.
        on_failure: ``(flow, state)`` callable run when the flow fails.
        executor: where task code runs (default: a :class:`~asyncflow.executors.LocalExecutor`).
        schedule: stored for the scheduling layer.
        result: the :class:`~asyncflow.engine.result.Result` of every task that has none of its
            own: their return values are written through it after success (unless the task
            says ``checkpoint=False``).
        terminal_state_handler: ``(flow, state, reference_task_states)`` called before the final
            transition; a non-``None`` return replaces the final state.
    """

    def __init__(
        self,
        name: str,
        tasks: Iterable[Task] | None = None,
        edges: Iterable[Edge] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        state_handlers: Iterable[StateHandler] | None = None,
        on_failure: Callable[[Flow, State], Any] | None = None,
        executor: Executor | None = None,
        schedule: Any = None,
        result: Any = None,
        terminal_state_handler: Callable[..., Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Flow name must be a non-empty string, got {name!r}")
        self.name = name
        self._tasks: dict[Task, None] = {}  # an ordered set
        self._slugs: dict[str, Task] = {}
        self._slug_counters: dict[str, int] = {}
        self._upstream: dict[Task, list[Edge]] = {}
        self._downstream: dict[Task, list[Edge]] = {}
        self.edges: set[Edge] = set()
        self.constants: dict[Task, dict[str, Any]] = {}
        self._reference_tasks: set[Task] = set()
        self.state_handlers = check_handlers(self, state_handlers, on_failure)
        self.on_failure = on_failure
        self.executor = executor
        self.schedule = schedule
        check_result(self, result)
        self.result = result
        self.terminal_state_handler = terminal_state_handler
        self._version = 0
        self._compiled: tuple[int, FlowSpec] | None = None
        self._tokens: list[Any] = []
        for t in tasks or ():
            self.add_task(t)
        for e in edges or ():
            self.add_edge(e.upstream_task, e.downstream_task, key=e.key, mapped=e.mapped)
        if reference_tasks is not None:
            self.set_reference_tasks(reference_tasks)

    def __repr__(self) -> str:
        return f"<Flow: name={self.name}>"

    def __enter__(self) -> Flow:
        self._tokens.append(active_flow.set(self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        active_flow.reset(self._tokens.pop())

    # -- building ---------------------------------------------------------------------------

    @property
    def tasks(self) -> set[Task]:
        """The flow's tasks."""
        return set(self._tasks)

    def add_task(self, task: Task) -> Task:
        """Add ``task`` (once; adding it again is a no-op). Returns the task.

        Raises:
            TypeError: ``task`` is not a Task.
            FlowValidationError: another task of the flow has the same slug (for parameters:
                the same name).
        """
        if not isinstance(task, Task):
            raise TypeError(f"{self!r}: expected a Task, got {task!r}")
        if task in self._tasks:
            return task
        if task.slug is None:
            task.slug = self._new_slug(task)
        elif task.slug in self._slugs:
            what = "parameter" if isinstance(task, Parameter) else "task"
            raise FlowValidationError(
                f"{self!r} already has a {what} with slug {task.slug!r} "
                f"({self._slugs[task.slug]!r}); slugs (and parameter names) must be unique"
            )
        self._slugs[task.slug] = task
        self._tasks[task] = None
        self._upstream[task] = []
        self._downstream[task] = []
        self._changed()
        return task

    def _new_slug(self, task: Task) -> str:
        # Count on from the last number given to this name: adding N tasks stays linear.
        n = self._slug_counters.get(task.name, 0) + 1
        while f"{task.name}-{n}" in self._slugs:
            n += 1
        self._slug_counters[task.name] = n
        return f"{task.name}-{n}"

    def _changed(self) -> None:
        self._version += 1

    def add_edge(
        self,
        upstream_task: Any,
        downstream_task: Any,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
        validate: bool | None = None,
    ) -> Edge:
        """Make ``downstream_task`` depend on ``upstream_task`` (adding both if needed).

        Args:
            upstream_task: a task (or a value, which becomes a constant when ``key`` is given).
            downstream_task: the task that waits.
            key: the argument of ``downstream_task.run`` that receives the upstream result.
            mapped: map ``downstream_task`` over the upstream result.
            flattened: flatten the upstream result before mapping.
            validate: check for cycles now (default: yes).

        Raises:
            TaskBindError: ``key`` is not an argument of the downstream task.
            FlowValidationError: ``key`` is already bound, or the edge would close a cycle.
        """
        if isinstance(upstream_task, unmapped | flatten):
            flattened = flattened or isinstance(upstream_task, flatten)
            mapped = mapped and isinstance(upstream_task, flatten)
            upstream_task = upstream_task.value
        if not isinstance(upstream_task, Task):
            upstream_task = self._as_task(upstream_task)
        if not isinstance(downstream_task, Task):
            raise TypeError(f"{self!r}: downstream_task must be a Task, got {downstream_task!r}")
        self.add_task(upstream_task)
        self.add_task(downstream_task)
        if key is not None:
            self._check_key(downstream_task, key)
        edge = Edge(upstream_task, downstream_task, key=key, mapped=mapped, flattened=flattened)
        if edge in self.edges:
            return edge
        if validate is not False:
            cycle = self._path(downstream_task, upstream_task)
            if cycle is not None:
                names = " -> ".join(repr(t) for t in [upstream_task, *cycle])
                raise FlowValidationError(f"{self!r}: the edge would create a cycle: {names}")
        self.edges.add(edge)
        self._upstream[downstream_task].append(edge)
        self._downstream[upstream_task].append(edge)
        self._changed()
        return edge

    def _check_key(self, task: Task, key: str) -> None:
        signature = run_signature(task)
        params = signature.parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if key not in params and not accepts_any:
            raise TaskBindError(f"{task!r} has no argument {key!r} (run signature: {signature})")
        for e in self._upstream.get(task, ()):
            if e.key == key:
                raise FlowValidationError(
                    f"argument {key!r} of {task!r} is already bound to {e.upstream_task!r}"
                )
        if key in self.constants.get(task, {}):
            raise FlowValidationError(
                f"argument {key!r} of {task!r} is already bound to a constant"
            )

    def _path(self, start: Task, goal: Task) -> list[Task] | None:
        """A downstream path from ``start`` to ``goal``, if any (the cycle an edge would close)."""
        if start is goal:
            return [goal]
        parents: dict[Task, Task | None] = {start: None}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            for e in self._downstream.get(node, ()):
                nxt = e.downstream_task
                if nxt in parents:
                    continue
                parents[nxt] = node
                if nxt is goal:
                    path: list[Task] = []
                    cur: Task | None = nxt
                    while cur is not None:
                        path.append(cur)
                        cur = parents[cur]
                    return path[::-1]
                frontier.append(nxt)
        return None

    def _as_task(self, value: Any) -> Task:
        if contains_task(value):
            return collection_task(value, self)
        raise TypeError(f"{self!r}: expected a Task, got {value!r}")

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: Mapping[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Add ``task`` with its dependencies in one call.

        Args:
            task: the task.
            upstream_tasks: tasks that must finish first (no value passed).
            downstream_tasks: tasks that wait for this one (no value passed).
            keyword_tasks: ``{argument: task or value}``; tasks become keyed edges, other
                values become constants.
            mapped: map over the keyword tasks (except ``unmapped`` ones).
            validate: check for cycles now (default: yes).
        """
        self.add_task(task)
        for up in upstream_tasks or ():
            # As in Prefect 1.x, a mapped call maps over its upstream_tasks too (per child)
            # unless they are wrapped in unmapped().
            self.add_edge(up, task, mapped=mapped, validate=validate)
        for down in downstream_tasks or ():
            self.add_edge(task, down, validate=validate)
        for key, value in (keyword_tasks or {}).items():
            inner = value.value if isinstance(value, unmapped | flatten) else value
            if isinstance(inner, Task) or contains_task(inner):
                if isinstance(value, unmapped):
                    self.add_edge(inner, task, key=key, mapped=False, validate=validate)
                elif isinstance(value, flatten):
                    self.add_edge(
                        inner, task, key=key, mapped=mapped, flattened=True, validate=validate
                    )
                else:
                    self.add_edge(value, task, key=key, mapped=mapped, validate=validate)
            else:
                self._check_key(task, key)
                if mapped and not isinstance(value, unmapped):
                    # A mapped constant is a list to map over: it needs an edge of its own.
                    const = _Constant(name=repr(inner)[:40], value=inner)
                    self.add_edge(
                        const, task, key=key, mapped=True, flattened=isinstance(value, flatten)
                    )
                else:
                    self.constants.setdefault(task, {})[key] = inner
                    self._changed()

    def chain(self, *tasks: Task, validate: bool | None = None) -> list[Edge]:
        """Link ``tasks`` in sequence: each depends on the one before."""
        return [self.add_edge(a, b, validate=validate) for a, b in itertools.pairwise(tasks)]

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Make ``tasks`` decide the flow's final state."""
        tasks = set(tasks)
        unknown = [t for t in tasks if t not in self._tasks]
        if unknown:
            raise FlowValidationError(f"reference tasks {unknown} are not in {self!r}")
        self._reference_tasks = tasks
        self._changed()

    # -- queries ----------------------------------------------------------------------------

    def reference_tasks(self) -> set[Task]:
        """The tasks that decide the flow's state (the terminal tasks unless set)."""
        return set(self._reference_tasks) or self.terminal_tasks()

    def root_tasks(self) -> set[Task]:
        """Tasks with no upstream dependency."""
        return {t for t in self._tasks if not self._upstream[t]}

    def terminal_tasks(self) -> set[Task]:
        """Tasks nothing depends on."""
        return {t for t in self._tasks if not self._downstream[t]}

    def upstream_tasks(self, task: Task) -> set[Task]:
        """The tasks ``task`` depends on."""
        return {e.upstream_task for e in self.edges_to(task)}

    def downstream_tasks(self, task: Task) -> set[Task]:
        """The tasks that depend on ``task``."""
        return {e.downstream_task for e in self.edges_from(task)}

    def edges_to(self, task: Task) -> set[Edge]:
        """Edges into ``task``."""
        self._require(task)
        return set(self._upstream[task])

    def edges_from(self, task: Task) -> set[Edge]:
        """Edges out of ``task``."""
        self._require(task)
        return set(self._downstream[task])

    def _require(self, task: Task) -> None:
        if task not in self._tasks:
            raise ValueError(f"{task!r} is not a task of {self!r}")

    def sorted_tasks(self) -> tuple[Task, ...]:
        """Every task, upstream before downstream (stable in insertion order)."""
        upstream = {t: [e.upstream_task for e in self._upstream[t]] for t in self._tasks}
        order = _graph.topological_sort(self._tasks, upstream)
        if order is None:
            cycle = _graph.find_cycle(self._tasks, upstream) or []
            raise FlowValidationError(
                f"{self!r} has a cycle: {' -> '.join(repr(t) for t in cycle)}"
            )
        return tuple(order)

    def get_tasks(
        self, name: str | None = None, slug: str | None = None, tags: Iterable[str] | None = None
    ) -> list[Task]:
        """Tasks matching every criterion given (``tags``: all of them)."""
        wanted = set(tags or ())
        return [
            t
            for t in self._tasks
            if (name is None or t.name == name)
            and (slug is None or t.slug == slug)
            and wanted <= t.tags
        ]

    def parameters(self) -> set[Parameter]:
        """The flow's parameters."""
        return {t for t in self._tasks if isinstance(t, Parameter)}

    def validate(self) -> None:
        """Check the graph: cycles, foreign edges, duplicate keys, missing arguments.

        Raises:
            FlowValidationError: naming the task and the problem.
        """
        self._validate()

    def _validate(self) -> tuple[Task, ...]:
        """:meth:`validate`, returning the tasks in topological order."""
        for e in self.edges:
            for t in (e.upstream_task, e.downstream_task):
                if t not in self._tasks:
                    raise FlowValidationError(f"{e!r} refers to {t!r}, which is not in {self!r}")
        order = self.sorted_tasks()
        for t in self._reference_tasks:
            if t not in self._tasks:
                raise FlowValidationError(f"reference task {t!r} is not in {self!r}")
        for t in self._tasks:
            keys = [e.key for e in self._upstream[t] if e.key is not None]
            dup = {k for k in keys if keys.count(k) > 1}
            if dup:
                raise FlowValidationError(f"{t!r} has several edges for argument(s) {sorted(dup)}")
            if isinstance(t, Parameter):
                continue
            given = set(keys) | set(self.constants.get(t, {}))
            signature = run_signature(t)
            missing = [
                name
                for name, p in signature.parameters.items()
                if p.default is inspect.Parameter.empty
                and p.kind
                in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
                and name not in given
            ]
            if missing:
                raise FlowValidationError(
                    f"{t!r} is missing required argument(s) {missing} (run signature: {signature})"
                )
        return order

    def copy(self) -> Flow:
        """A new flow with the same tasks, edges and settings (tasks are shared, not copied)."""
        new = _copy.copy(self)
        new._tasks = dict(self._tasks)
        new._slugs = dict(self._slugs)
        new._slug_counters = dict(self._slug_counters)
        new._upstream = {t: list(es) for t, es in self._upstream.items()}
        new._downstream = {t: list(es) for t, es in self._downstream.items()}
        new.edges = set(self.edges)
        new.constants = {t: dict(c) for t, c in self.constants.items()}
        new._reference_tasks = set(self._reference_tasks)
        new.state_handlers = list(self.state_handlers)
        new._compiled = None
        new._tokens = []
        return new

    # -- running ----------------------------------------------------------------------------

    def compile(self) -> FlowSpec:
        """Validate and freeze the graph for a run (cached until the flow changes)."""
        if self._compiled is not None and self._compiled[0] == self._version:
            return self._compiled[1]
        spec = build_spec(self, self._validate())
        self._compiled = (self._version, spec)
        return spec


class _Constant(Task):
    """A constant value as a task, for mapping over a literal list."""

    def __init__(self, value: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def run(self) -> Any:
        return self.value
