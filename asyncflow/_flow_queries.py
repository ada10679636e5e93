"""Questions about a flow's graph: a mixin of :class:`~asyncflow.flow.Flow`, kept apart from
building it (as ``_running.py`` keeps the run front doors apart).

Roots, terminals, reference tasks, edges into and out of a task, the topological order (whole
or below some roots), lookups by name, slug, tags or type, iteration, equality, and the
validation a run needs. Nothing here changes the graph.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from . import _graph
from .exceptions import FlowValidationError, TaskBindError
from .parameter import Parameter
from .task import run_signature

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .edges import Edge
    from .task import Task

__all__ = ("GraphQueries",)


class GraphQueries:
    """The read side of a flow's graph."""

    if TYPE_CHECKING:
        name: str
        edges: set[Edge]
        constants: dict[Task, dict[str, Any]]
        _tasks: dict[Task, None]
        _upstream: dict[Task, list[Edge]]
        _downstream: dict[Task, list[Edge]]
        _reference_tasks: set[Task]

    def __iter__(self) -> Iterator[Task]:
        """The tasks, upstream before downstream (as :meth:`sorted_tasks`)."""
        return iter(self.sorted_tasks())

    def __eq__(self, other: object) -> bool:
        """As in 1.x: the same type, name, tasks, edges and reference tasks."""
        if type(self) is not type(other):
            return False
        assert isinstance(other, GraphQueries)
        mine = (self.name, self._tasks.keys(), self.edges, self.reference_tasks())
        theirs = (other.name, other._tasks.keys(), other.edges, other.reference_tasks())
        return mine == theirs

    def __hash__(self) -> int:
        # Equal flows have equal names, so this agrees with __eq__.
        return hash((type(self), self.name))

    @property
    def tasks(self) -> set[Task]:
        """The flow's tasks."""
        return set(self._tasks)

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

    def sorted_tasks(self, root_tasks: Iterable[Task] | None = None) -> tuple[Task, ...]:
        """Tasks upstream before downstream (stable in insertion order).

        Args:
            root_tasks: sort only these and the tasks downstream of them.

        Raises:
            ValueError: a root task is not in the flow.
            FlowValidationError: the graph has a cycle.
        """
        nodes: dict[Task, None] = self._tasks
        if root_tasks:
            nodes = self._below(root_tasks)
        upstream = {
            t: [e.upstream_task for e in self._upstream[t] if e.upstream_task in nodes]
            for t in nodes
        }
        order = _graph.topological_sort(nodes, upstream)
        if order is None:
            cycle = _graph.find_cycle(nodes, upstream) or []
            raise FlowValidationError(
                f"{self!r} has a cycle: {' -> '.join(repr(t) for t in cycle)}"
            )
        return tuple(order)

    def _below(self, roots: Iterable[Task]) -> dict[Task, None]:
        """``roots`` and everything downstream of them, in the flow's order."""
        seen: set[Task] = set()
        frontier = list(roots)
        for t in frontier:
            self._require(t)
        while frontier:
            node = frontier.pop()
            if node not in seen:
                seen.add(node)
                frontier.extend(e.downstream_task for e in self._downstream[node])
        return {t: None for t in self._tasks if t in seen}

    def get_tasks(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        task_type: type | None = None,
    ) -> list[Task]:
        """Tasks matching every criterion given (``tags``: all of them; ``task_type``: an
        ``isinstance`` check)."""
        wanted = set(tags or ())
        return [
            t
            for t in self._tasks
            if (name is None or t.name == name)
            and (slug is None or t.slug == slug)
            and wanted <= t.tags
            and (task_type is None or isinstance(t, task_type))
        ]

    def parameters(self) -> set[Parameter]:
        """The flow's parameters."""
        return {t for t in self._tasks if isinstance(t, Parameter)}

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
