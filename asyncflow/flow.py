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
import itertools
from typing import TYPE_CHECKING, Any

from ._compile import build_spec
from ._flow_queries import GraphQueries
from ._running import RunsFlows
from ._visualize import visualize as _visualize
from .context import context
from .edges import Edge, flatten, unmapped
from .exceptions import EdgeError, FlowValidationError
from .parameter import Parameter
from .task import Task, check_handlers, check_result
from .tasks.core import Constant, collection_task, constant_task, contains_task

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ._typing import StateHandler
    from .runtime.executors import Executor
    from .runtime.spec import FlowSpec
    from .states import State

__all__ = ("Flow",)


class Flow(GraphQueries, RunsFlows):
    """A graph of tasks, and how to run it.

    Args:
        name: the flow's name.
        tasks: tasks to add at once.
        edges: edges to add at once.
        reference_tasks: the tasks whose states decide the flow's (default: terminal tasks).
        state_handlers: ``(flow, old_state, new_state)`` callables run on every flow transition.
        on_failure: ``(flow, state)`` callable run when the flow fails.
        executor: where task code runs (default: a :class:`~asyncflow.executors.LocalExecutor`).
        schedule: an :class:`asyncflow.schedules.Schedule`: ``flow.run()`` runs at each of its
            times, and an ``asyncflow.integrations.Runtime`` starts runs on it.
        result: the :class:`~asyncflow.engine.result.Result` of every task that has none of its
            own: their return values are written through it after success (unless the task
            says ``checkpoint=False``).
        terminal_state_handler: ``(flow, state, reference_task_states)`` called before the final
            transition; a non-``None`` return replaces the final state.
        validate: check ``edges`` for cycles as they are added (default: yes).

    Raises:
        ValueError: ``name`` is empty or missing (a ``FlowValidationError``).
        TypeError: ``name`` is not a string.

    Flows with the same name, tasks, edges and reference tasks are equal, as in 1.x; iterating
    a flow gives its tasks in topological order.
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
        validate: bool | None = None,
    ) -> None:
        if not name:
            raise FlowValidationError(f"a flow needs a name (a non-empty string), got {name!r}")
        if not isinstance(name, str):
            raise TypeError(f"Flow name must be a non-empty string, got {name!r}")
        self.name = name
        self._tasks: dict[Task, None] = {}  # an ordered set
        self._slugs: dict[str, Task] = {}
        self._slug_counters: dict[str, int] = {}
        self._generated: set[Task] = set()  # tasks whose slug this flow made up
        self._upstream: dict[Task, list[Edge]] = {}
        self._downstream: dict[Task, list[Edge]] = {}
        self.edges: set[Edge] = set()
        self.constants: dict[Task, dict[str, Any]] = {}
        self._reference_tasks: set[Task] = set()
        self.state_handlers = check_handlers(self, state_handlers, on_failure)
        self.on_failure = on_failure
        self.executor = executor
        if schedule is not None and not callable(getattr(schedule, "next", None)):
            raise TypeError(
                f"{self!r}: schedule must be a Schedule (asyncflow.schedules), got {schedule!r}"
            )
        self.schedule = schedule
        check_result(self, result)
        self.result = result
        self.terminal_state_handler = terminal_state_handler
        self._version = 0
        self._compiled: tuple[int, FlowSpec] | None = None
        self._blocks: list[Any] = []
        for t in tasks or ():
            self.add_task(t)
        self._add_edges(edges or (), validate)
        if reference_tasks is not None:
            self.set_reference_tasks(reference_tasks)

    def __repr__(self) -> str:
        return f"<Flow: name={self.name}>"

    def __enter__(self) -> Flow:
        # As in 1.x, the block sets the context's ``flow`` key: tasks called in it join this
        # flow, and task code building flows reads ``context.flow``.
        block = context(flow=self)
        block.__enter__()
        self._blocks.append(block)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._blocks.pop().__exit__(*exc_info)

    # -- building ---------------------------------------------------------------------------

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
        block = context.get("case")  # as in 1.x, a new task joins the open ``case`` block
        if block is not None and not isinstance(task, Parameter | Constant):
            block.add_task(task, self)
        return task

    def _new_slug(self, task: Task) -> str:
        # Count on from the last number given to this name: adding N tasks stays linear.
        n = self._slug_counters.get(task.name, 0) + 1
        while f"{task.name}-{n}" in self._slugs:
            n += 1
        self._slug_counters[task.name] = n
        self._generated.add(task)
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
            EdgeError: the edge joins a task to itself, ``key`` is not an identifier, or the
                downstream task is a parameter (parameters are always root tasks).
        """
        if isinstance(upstream_task, unmapped | flatten):
            flattened = flattened or isinstance(upstream_task, flatten)
            mapped = mapped and isinstance(upstream_task, flatten)
            upstream_task = upstream_task.value
        upstream_task = self._as_task(upstream_task)
        downstream_task = self._as_task(downstream_task)
        if isinstance(downstream_task, Parameter):
            raise EdgeError(
                f"{downstream_task!r} cannot depend on {upstream_task!r}: parameters are root "
                "tasks and have no upstream dependencies"
            )
        edge = Edge(upstream_task, downstream_task, key=key, mapped=mapped, flattened=flattened)
        self.add_task(upstream_task)
        self.add_task(downstream_task)
        if key is not None:
            self._check_key(downstream_task, key)
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

    def _as_task(self, value: Any) -> Task:
        """``value`` as a task (a collection holding tasks rebuilt, any other value a constant)."""
        if isinstance(value, Task):
            return value
        if contains_task(value):
            return collection_task(value, self)
        return constant_task(value)

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
                # add_edge reads the marker: unmapped() is never mapped, flatten() flattens.
                self.add_edge(value, task, key=key, mapped=mapped, validate=validate)
            else:
                self._check_key(task, key)
                if mapped and not isinstance(value, unmapped):
                    # A mapped constant is a list to map over: it needs an edge of its own.
                    const = constant_task(inner)
                    self.add_edge(
                        const, task, key=key, mapped=True, flattened=isinstance(value, flatten)
                    )
                else:
                    self.constants.setdefault(task, {})[key] = inner
                    self._changed()

    def chain(self, *tasks: Task, validate: bool | None = None) -> list[Edge]:
        """Link ``tasks`` in sequence: each depends on the one before."""
        return [self.add_edge(a, b, validate=validate) for a, b in itertools.pairwise(tasks)]

    def update(
        self,
        flow: Flow,
        merge_parameters: bool = False,
        validate: bool | None = None,
        merge_reference_tasks: bool = False,
    ) -> None:
        """Add every task, edge and constant of ``flow`` to this flow (as 1.x's ``update``).

        Args:
            flow: the flow to take from (left unchanged).
            merge_parameters: this flow's parameters named like ``flow``'s are replaced by them.
            validate: check for cycles as edges are added (default: yes).
            merge_reference_tasks: add ``flow``'s reference tasks to this flow's.
        """
        if merge_parameters:
            theirs = {p.name: p for p in flow.parameters()}
            for p in self.parameters():
                if p.name in theirs and theirs[p.name] is not p:
                    self.replace(p, theirs[p.name], validate=False)
        for t in flow._tasks:
            if t not in self._tasks:
                if t in flow._generated and t.slug in self._slugs:
                    t.slug = None  # a slug the other flow made up: make one up here
                self.add_task(t)
        self._add_edges((e for e in flow.edges if e not in self.edges), validate)
        for t, values in flow.constants.items():
            self.constants.setdefault(t, {}).update(values)
        if merge_reference_tasks:
            self.set_reference_tasks(self.reference_tasks() | flow.reference_tasks())
        self._changed()

    def _add_edges(
        self, edges: Iterable[Edge], validate: bool | None, swap: tuple[Task, Task] | None = None
    ) -> None:
        """Add a copy of each edge (``swap=(old, new)`` puts ``new`` in ``old``'s place)."""
        old, new = swap or (None, None)
        for e in edges:
            self.add_edge(
                new if e.upstream_task is old else e.upstream_task,
                new if e.downstream_task is old else e.downstream_task,
                key=e.key,
                mapped=e.mapped,
                flattened=e.flattened,
                validate=validate,
            )

    def replace(self, old: Task, new: Any, validate: bool = True) -> None:
        """Put ``new`` in place of ``old``: its edges (and reference role) move to ``new``.

        Args:
            old: a task of this flow.
            new: the replacement (a value other than a task becomes a constant task).
            validate: check the flow afterwards.

        Raises:
            ValueError: ``old`` is not a task of this flow.
        """
        self._require(old)
        new = self._as_task(new)
        affected = [*self._upstream.pop(old), *self._downstream.pop(old)]
        for e in affected:  # unlink them from the other end too
            self.edges.discard(e)
            if e.upstream_task is old:
                self._upstream[e.downstream_task].remove(e)
            else:
                self._downstream[e.upstream_task].remove(e)
        del self._tasks[old]
        self._slugs.pop(old.slug or "", None)
        self.constants.pop(old, None)
        self.add_task(new)
        self._add_edges(affected, False, swap=(old, new))
        if old in self._reference_tasks:
            self._reference_tasks = (self._reference_tasks - {old}) | {new}
        self._changed()
        if validate:
            self.validate()

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Make ``tasks`` decide the flow's final state."""
        tasks = set(tasks)
        unknown = [t for t in tasks if t not in self._tasks]
        if unknown:
            raise FlowValidationError(f"reference tasks {unknown} are not in {self!r}")
        self._reference_tasks = tasks
        self._changed()

    def copy(self) -> Flow:
        """A new flow with the same tasks, edges and settings (tasks are shared, not copied)."""
        new = _copy.copy(self)
        new._tasks = dict(self._tasks)
        new._slugs = dict(self._slugs)
        new._slug_counters = dict(self._slug_counters)
        new._generated = set(self._generated)
        new._upstream = {t: list(es) for t, es in self._upstream.items()}
        new._downstream = {t: list(es) for t, es in self._downstream.items()}
        new.edges = set(self.edges)
        new.constants = {t: dict(c) for t, c in self.constants.items()}
        new._reference_tasks = set(self._reference_tasks)
        new.state_handlers = list(self.state_handlers)
        new._compiled = None
        new._blocks = []
        return new

    def visualize(
        self,
        flow_state: State | None = None,
        filename: str | None = None,
        format: str | None = None,
        horizontal: bool = False,
    ) -> Any:
        """Draw the flow with Graphviz, as Prefect 1.x does (extra ``viz``, and ``dot``).

        Args:
            flow_state: a final state of a run of this flow: nodes are filled with their
                state's colour, and each mapped child gets a node.
            filename: where to write the drawing; the format follows its extension (``.svg``,
                ``.png``, ``.pdf``, ...). Without a known extension, ``format`` (default
                ``"pdf"``) is added to the name. Without a filename the drawing opens in a
                viewer (or shows inline in a notebook).
            format: the output format, when it should not follow the extension.
            horizontal: lay the graph out left to right.

        Returns:
            The ``graphviz.Digraph``.

        Raises:
            GraphvizError: the ``graphviz`` package or the ``dot`` program is missing.
        """
        return _visualize(self, flow_state, filename, format, horizontal)

    # -- running ----------------------------------------------------------------------------

    def compile(self) -> FlowSpec:
        """Validate and freeze the graph for a run (cached until the flow changes)."""
        if self._compiled is not None and self._compiled[0] == self._version:
            return self._compiled[1]
        spec = build_spec(self, self._validate())
        self._compiled = (self._version, spec)
        return spec
