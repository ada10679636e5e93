"""Compiling a :class:`~asyncflow.flow.Flow` into the frozen FlowSpec the runtime runs.

Kept apart from the builder: ``flow.compile()`` validates, then :func:`build_spec` resolves every
edge to indexes, classifies mapped edges (index-by-index or whole) and normalises each task's
handlers, trigger and retry policy once, so the per-task path of a run does no such work.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING

from . import triggers
from .parameter import Parameter
from .results.base import at_location
from .runtime.handlers import failure_callback
from .runtime.retries import delay_function
from .runtime.spec import FlowSpec, TaskSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .edges import Edge
    from .flow import Flow
    from .results.base import Result
    from .task import Task

__all__ = ("build_spec", "is_per_index", "task_spec")


def build_spec(flow: Flow, order: tuple[Task, ...]) -> FlowSpec:
    """The FlowSpec of ``flow``, whose tasks are ``order`` (topologically sorted, validated)."""
    index = {t: i for i, t in enumerate(order)}
    specs = tuple(task_spec(flow, t, i, index) for i, t in enumerate(order))
    handlers = tuple(flow.state_handlers)
    if flow.on_failure is not None:
        handlers = (*handlers, failure_callback(flow.on_failure))
    return FlowSpec(
        persists=any(s.result is not None for s in specs),
        name=flow.name,
        subject=flow,
        tasks=specs,
        reference=tuple(sorted(index[t] for t in flow.reference_tasks())),
        handlers=handlers,
        terminal_state_handler=flow.terminal_state_handler,
        executor=flow.executor,
        by_task=index,
    )


def task_spec(flow: Flow, t: Task, i: int, index: Mapping[Task, int]) -> TaskSpec:
    """The frozen description of task ``t``, the ``i``-th in topological order."""
    edges = tuple(flow._upstream[t])
    per_index = tuple(is_per_index(e, flow._upstream) for e in edges)
    ups = {index[e.upstream_task] for e in edges}
    normal_down: set[int] = set()
    index_down: set[int] = set()
    for e in flow._downstream[t]:
        (index_down if is_per_index(e, flow._upstream) else normal_down).add(
            index[e.downstream_task]
        )
    index_down -= normal_down  # any ordinary edge means: wait for the whole task
    handlers = tuple(t.state_handlers)
    if t.on_failure is not None:
        handlers = (*handlers, failure_callback(t.on_failure))
    return TaskSpec(
        index=i,
        task=t,
        name=t.name,
        slug=t.slug or t.name,
        fn=t.run,
        is_async=inspect.iscoroutinefunction(t.run),
        parameter=t.name if isinstance(t, Parameter) else None,
        upstream_edges=edges,
        upstream_index=tuple(index[e.upstream_task] for e in edges),
        per_index=per_index,
        n_upstream=len(ups),
        downstream=tuple(sorted(normal_down)),
        index_downstream=tuple(sorted(index_down)),
        mapped=any(e.mapped for e in edges),  # as in 1.x, a keyless mapped edge maps too
        keyed=tuple((e.key, index[e.upstream_task]) for e in edges if e.key is not None),
        constants=dict(flow.constants.get(t, {})),
        handlers=handlers,
        trigger=None if t.trigger is triggers.all_successful else t.trigger,
        skip_on_upstream_skip=t.skip_on_upstream_skip,
        max_retries=t.max_retries,
        retry_delay=delay_function(t.retry_delay),
        retry_on=t.retry_on,
        timeout=t.timeout,
        cache_for=t.cache_for.total_seconds() if t.cache_for is not None else None,
        cache_validator=t.cache_validator,
        cache_key=t.cache_key,
        executor=t.executor,
        task_run_name=t.task_run_name,
        tags=frozenset(t.tags),
        log_stdout=t.log_stdout,
        result=task_result(flow, t),
        checkpoint=t.checkpoint is not False,
        target=t.target,
    )


def task_result(flow: Flow, t: Task) -> Result | None:
    """The Result task ``t`` persists through: its own, else the flow's, placed at its target.

    Asking for persistence (``target=`` or ``checkpoint=True``) without any Result gives the
    default :class:`~asyncflow.engine.results.LocalResult`.
    """
    result: Result | None = t.result if t.result is not None else flow.result
    if result is None and (t.target is not None or t.checkpoint):
        from .results.local import LocalResult, home_dir

        # Not created here (compiling runs on the event loop): the first write creates it.
        result = LocalResult(os.path.join(home_dir(), "results"), validate_dir=False)
    if result is not None and t.target is not None:
        result = at_location(result, t.target)
    return result


def is_per_index(edge: Edge, upstream: Mapping[Task, list[Edge]]) -> bool:
    """Whether ``edge`` maps over a mapped task's children one index at a time."""
    return (
        edge.mapped
        and not edge.flattened
        and any(e.mapped for e in upstream.get(edge.upstream_task, ()))
    )
