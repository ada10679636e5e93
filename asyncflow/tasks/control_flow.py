"""Control flow for flows: ``case``, ``switch``, ``ifelse``, ``merge`` and ``FilterTask``.

They are built from tasks and signals, as in Prefect 1.x: a branch that is not taken is
``Skipped`` (a :class:`CompareValue` raises ``SKIP``), the skip cascades downstream, and
``merge`` (trigger ``not_all_skipped``) picks the result of the branch that ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import signals, triggers
from ..context import context
from ..task import Task, active_flow

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._typing import FlowBuilder

__all__ = ("CompareValue", "FilterTask", "Merge", "case", "ifelse", "merge", "switch")


class CompareValue(Task):
    """Succeeds when its input equals ``value``; raises ``SKIP`` otherwise."""

    def __init__(self, value: Any, **kwargs: Any) -> None:
        self.value = value
        kwargs.setdefault("name", f'CompareValue: "{value}"')
        super().__init__(**kwargs)

    def run(self, value: Any) -> None:
        if value != self.value:
            raise signals.SKIP(f'Provided value "{value}" did not match "{self.value}"')


class _AsBool(Task):
    def run(self, value: Any) -> bool:
        return bool(value)


class Merge(Task):
    """Returns the first non-``None`` result among its inputs (the branch that ran).

    Raises:
        ValueError: ``skip_on_upstream_skip=True`` (a merge runs after skipped branches).
    """

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.setdefault("skip_on_upstream_skip", False):
            raise ValueError("Merge tasks must have `skip_on_upstream_skip=False`.")
        kwargs.setdefault("name", "merge")
        kwargs.setdefault("trigger", triggers.not_all_skipped)
        super().__init__(**kwargs)

    def run(self, **task_results: Any) -> Any:
        # Prefect 1.x's order: by argument name (``task_1``, ``task_10``, ``task_2``, ...).
        return next((v for _, v in sorted(task_results.items()) if v is not None), None)


def _keep(result: Any) -> bool:
    return result is not None and not isinstance(result, BaseException)


class FilterTask(Task):
    """Keeps the items of a (mapped) result that pass ``filter_func``.

    By default it drops ``None`` and exceptions, i.e. the results of failed or skipped mapped
    children; it runs whatever the upstream states (trigger ``all_finished``, no skip cascade).

    Args:
        filter_func: ``item -> bool``; keep the item when true.
        log_func: called with the filtered list, e.g. to log what was kept.
        **kwargs: any other ``Task`` argument.
    """

    def __init__(
        self,
        filter_func: Callable[[Any], bool] | None = None,
        log_func: Callable[[list[Any]], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.filter_func = filter_func or _keep
        self.log_func = log_func
        kwargs.setdefault("skip_on_upstream_skip", False)
        kwargs.setdefault("trigger", triggers.all_finished)
        super().__init__(**kwargs)

    def run(self, task_results: list[Any]) -> list[Any]:
        kept = [r for r in task_results if self.filter_func(r)]
        if self.log_func is not None:
            self.log_func(kept)
        return kept


def _flow(flow: FlowBuilder | None) -> FlowBuilder:
    flow = flow if flow is not None else active_flow.get()
    if flow is None:
        raise RuntimeError("control flow needs a flow: use it inside `with Flow(...):`")
    return flow


def switch(
    condition: Task, cases: dict[Any, Task], mapped: bool = False, flow: FlowBuilder | None = None
) -> None:
    """Run only the task of ``cases`` whose key equals ``condition``'s result; skip the others.

    Args:
        condition: the task whose result selects a branch.
        cases: ``{value: task}``; each task gets an upstream check against its value.
        mapped: compare per mapped child.
        flow: the flow (default: the active one).
    """
    fl = _flow(flow)
    for value, branch in cases.items():
        check: Task = CompareValue(value)
        if mapped:
            check = check.map(value=condition, flow=fl)
        else:
            check.bind(value=condition, flow=fl)
        fl.add_edge(check, branch, mapped=mapped)  # mapped: each child checks its own value


def ifelse(
    condition: Task,
    true_task: Task | None,
    false_task: Task | None,
    mapped: bool = False,
    flow: FlowBuilder | None = None,
) -> None:
    """Run ``true_task`` if ``condition``'s result is truthy, else ``false_task``.

    Either task may be ``None``: that branch adds nothing (as in Prefect 1.x).
    """
    cases = {v: t for v, t in ((True, true_task), (False, false_task)) if t is not None}
    if not cases:
        return
    fl = _flow(flow)
    check: Task = _AsBool(name="as_bool")
    check = check.map(value=condition, flow=fl) if mapped else check.bind(value=condition, flow=fl)
    switch(check, cases, mapped=mapped, flow=fl)


def merge(
    *tasks: Task, flow: FlowBuilder | None = None, mapped: bool = False, **task_kwargs: Any
) -> Task:
    """A task returning the result of whichever of ``tasks`` ran (the first non-``None``).

    With ``mapped=True`` it merges child by child. ``task_kwargs`` go to the :class:`Merge`
    task (``name=``, ``checkpoint=False``, ...), as in Prefect 1.x.
    """
    fl = _flow(flow)
    results: dict[str, Any] = {f"task_{i + 1}": t for i, t in enumerate(tasks)}
    if mapped:
        return Merge(**task_kwargs).map(flow=fl, **results)
    return Merge(**task_kwargs).bind(flow=fl, **results)


class case:
    """``with case(task, value):`` — tasks made in the block run only if ``task`` returns ``value``.

    As in Prefect 1.x, the block collects the tasks added to a flow while it is open (functional
    or imperative API; parameters and constants excepted), and when it closes, every collected
    task with no upstream task among them gets an upstream ``CompareValue``: when the value
    does not match it is skipped, and the skip cascades to the rest of the block.
    ``context.case`` is the innermost open block.

    Raises:
        TypeError: ``value`` is a task (compare with a constant).
    """

    def __init__(self, task: Task, value: Any) -> None:
        if isinstance(value, Task):
            raise TypeError(f"case({task!r}, {value!r}): `value` cannot be a task")
        self.task = task
        self.value = value
        self._tasks: dict[Task, None] = {}  # an ordered set
        self._flow: FlowBuilder | None = None

    def add_task(self, task: Task, flow: FlowBuilder) -> None:
        """Put ``task``, just added to ``flow``, under this block.

        Raises:
            ValueError: the block already holds tasks of another flow.
        """
        if self._flow is None:
            self._flow = flow
        elif self._flow is not flow:
            raise ValueError("Multiple flows cannot be used with the same case statement")
        self._tasks[task] = None

    def __enter__(self) -> case:
        self._block = context(case=self)  # ``context.case`` inside the block, as in 1.x
        self._block.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._block.__exit__(*exc_info)
        fl = self._flow
        if fl is None or not self._tasks:
            return
        created = set(self._tasks)
        check = CompareValue(self.value, name=f"case({self.value})").bind(value=self.task, flow=fl)
        for t in self._tasks:
            if not fl.upstream_tasks(t) & created:
                fl.add_edge(check, t)
