"""The frozen snapshot of a flow that the engine runs.

``Flow`` (the builder) compiles itself into a :class:`FlowSpec`: tasks in topological order,
each with its upstream edges resolved to indexes, its handlers, trigger and retry policy
normalised. The scheduler works on indexes and lists, which keeps the per-task path cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._typing import StateHandler
    from ..caching import Validator
    from ..edges import Edge
    from ..results.base import Result
    from ..task import Task
    from ..triggers import Trigger
    from .executors import Executor
    from .retries import DelayFn

__all__ = ("FlowSpec", "TaskSpec")


@attrs.frozen(eq=False)
class TaskSpec:
    """What the engine needs to know about one task of a run."""

    index: int
    task: Task
    name: str
    slug: str
    fn: Callable[..., Any]
    is_async: bool
    parameter: str | None  # the parameter's name, for Parameter tasks
    upstream_edges: tuple[Edge, ...]
    upstream_index: tuple[int, ...]  # one per upstream edge
    per_index: tuple[bool, ...]  # one per upstream edge: maps over a mapped task, index by index
    n_upstream: int  # distinct upstream tasks
    downstream: tuple[int, ...]  # distinct downstream tasks released when this one finishes
    index_downstream: tuple[int, ...]  # mapped tasks released when this one expands
    mapped: bool  # has mapped edges: runs as a parent with children
    keyed: tuple[tuple[str, int], ...]  # (argument, upstream index)
    constants: Mapping[str, Any]
    handlers: tuple[StateHandler, ...]
    trigger: Trigger | None  # None: the default all_successful, checked inline
    skip_on_upstream_skip: bool
    max_retries: int
    retry_delay: DelayFn
    retry_on: tuple[type[BaseException], ...] | None
    timeout: float | None
    cache_for: float | None  # seconds
    cache_validator: Validator | None
    cache_key: str | None
    executor: Executor | str | None
    task_run_name: str | Callable[..., str] | None
    tags: frozenset[str]
    log_stdout: bool
    # Persistence: the Result values go through (the task's, else the flow's; its location is
    # the target when there is one), whether to write after success, and the target template.
    result: Result | None = None
    checkpoint: bool = False
    target: str | Callable[..., str] | None = None


@attrs.frozen(eq=False)
class FlowSpec:
    """A flow, frozen for one or more runs."""

    name: str
    subject: Any  # the Flow object, handed to flow state handlers
    tasks: tuple[TaskSpec, ...]
    reference: tuple[int, ...]
    handlers: tuple[StateHandler, ...]
    terminal_state_handler: Callable[..., Any] | None
    executor: Executor | None
    by_task: Mapping[Task, int]
    persists: bool = False  # some task has a result or a target
