"""The front doors of a flow: ``run``, ``run_async`` and ``start``.

A mixin of :class:`~asyncflow.flow.Flow`, kept apart from the graph builder: each door checks
the run options and parameters, takes the flow's compiled FlowSpec and hands it to a
:class:`~asyncflow.runtime.flow_run.FlowRun`.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio

from ._scheduled import run_scheduled
from .exceptions import ParameterError
from .runtime.flow_run import FlowRun, RunOptions
from .states import State
from .task import Task

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .parameter import Parameter
    from .runtime.spec import FlowSpec

__all__ = ("RunsFlows",)


class RunsFlows:
    """``run``, ``run_async`` and ``start`` for anything that compiles to a FlowSpec."""

    if TYPE_CHECKING:

        def compile(self) -> FlowSpec: ...

        def parameters(self) -> set[Parameter]: ...

    def _resolve_parameters(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        given = dict(given or {})
        params = {p.name: p for p in self.parameters()}
        unknown = sorted(given.keys() - params.keys())
        missing = sorted(n for n, p in params.items() if p.required and n not in given)
        problems = []
        if unknown:
            problems.append(
                f"received unexpected parameter(s) {unknown}; its parameters are {sorted(params)}"
            )
        if missing:
            problems.append(f"did not receive required parameter(s) {missing}")
        if problems:
            raise ParameterError(f"{self!r} " + "; and it ".join(problems), unknown, missing)
        # A default is copied for each run, so that a mutable one is never shared between runs.
        return {n: given[n] if n in given else _fresh(p.default) for n, p in params.items()}

    def _split_keywords(
        self, parameters: Mapping[str, Any] | None, keywords: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Parameters (``parameters=`` and keywords naming one) and run options, as in 1.x.

        A keyword naming a parameter is that parameter, even when a run option has the same
        name, and it wins over the same name in ``parameters``.
        """
        names = {p.name for p in self.parameters()}
        given = dict(parameters or {})
        options: dict[str, Any] = {}
        for key, value in keywords.items():
            if key in names:
                given[key] = value
            else:
                options[key] = value
        unknown = sorted(options.keys() - RunOptions.__annotations__.keys())
        if unknown:
            raise TypeError(
                f"{self!r}: unknown run option(s) {unknown}; it takes the run options "
                f"{sorted(RunOptions.__annotations__)} and its parameters are {sorted(names)}"
            )
        return given, options

    def _new_run(
        self,
        parameters: Mapping[str, Any] | None,
        keywords: Mapping[str, Any],
        *,
        keep_history: bool,
        wait_for_resume: bool,
        end_paused: bool = False,
        scheduled_start_time: datetime | None = None,
        max_events: int | None = None,
    ) -> FlowRun:
        given, options = self._split_keywords(parameters, keywords)
        spec = self.compile()
        store, resume = options.get("store"), options.get("resume")
        state = options.get("state")
        if state is not None and not isinstance(state, State):
            raise TypeError(f"{self!r}: state must be a State, got {state!r}")
        run_context = options.get("context")
        if run_context is not None and not isinstance(run_context, Mapping):
            raise TypeError(f"{self!r}: context must be a mapping, got {run_context!r}")
        run_id = options.get("run_id")
        given_id = (run_context or {}).get("flow_run_id")
        if run_id is not None and given_id is not None and run_id != given_id:
            raise ValueError(
                f"{self!r}: run_id={run_id!r} contradicts the context's flow_run_id={given_id!r}"
            )
        if run_id is None:
            run_id = given_id
        if resume is not None:
            if store is None:
                raise ValueError(f"{self!r}: resume={resume!r} needs the store= it was run with")
            if parameters is not None or given:
                raise ValueError(
                    f"{self!r}: parameters= cannot be combined with resume={resume!r}; a "
                    "resumed run takes its parameters from the store"
                )
            if state is not None:
                raise ValueError(
                    f"{self!r}: state= cannot be combined with resume={resume!r}; a resumed "
                    "run takes its state from the store"
                )
            if run_id is not None and run_id != resume:
                raise ValueError(f"{self!r}: run_id={run_id!r} differs from resume={resume!r}")
            run_id = resume
        elif options.get("owner") is not None and store is None:
            raise ValueError(f"{self!r}: owner= means something only with store=")
        lease = options.get("lease")
        if lease is not None and (store is None or lease <= 0):
            raise ValueError(f"{self!r}: lease= takes positive seconds, with store=")
        values = {} if resume is not None else self._resolve_parameters(given)
        initial: dict[Any, State] = {}
        if state is not None and isinstance(state.result, Mapping):
            # As in 1.x, a flow state's {task: state} result gives initial task states.
            initial.update((t, s) for t, s in state.result.items() if isinstance(t, Task))
        initial.update(options.get("task_states") or {})
        injected: dict[int, State] = {}
        for t, task_state in initial.items():
            if t not in spec.by_task:
                raise ValueError(f"task_states names {t!r}, which is not a task of {self!r}")
            injected[spec.by_task[t]] = task_state
        timeout = options.get("timeout")
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        max_concurrency = options.get("max_concurrency")
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        return FlowRun(
            spec,
            parameters=values,
            task_states=injected,
            executor=options.get("executor"),
            executors=options.get("executors"),
            bus=options.get("bus"),
            run_id=run_id,
            clock=options.get("clock"),
            timeout=timeout,
            max_concurrency=max_concurrency,
            tag_limits=options.get("tag_limits"),
            cache=options.get("cache"),
            checkpoints=options.get("checkpoints"),
            keep_history=keep_history,
            wait_for_resume=wait_for_resume,
            store=store,
            resume=resume is not None,
            owner=options.get("owner"),
            lease=lease,
            state=state,
            context=dict(run_context or {}),
            end_paused=end_paused,
            scheduled_start_time=scheduled_start_time,
            max_events=max_events,
        )

    async def run_async(
        self, parameters: Mapping[str, Any] | None = None, **keywords: Any
    ) -> State:
        """Run the flow on the current event loop and return its final state.

        Args:
            parameters: values for the flow's parameters, by name.
            **keywords: a keyword naming one of the flow's parameters gives its value (as in
                Prefect 1.x, it wins over ``parameters`` and over a run option of the same
                name); the others are run options (all optional):

                - ``state``: the flow run's initial state: a finished one is returned as it is
                  (nothing runs), a ``Running`` one goes on without a new ``Running``
                  transition, a ``Scheduled`` one waits for its ``start_time`` on the clock;
                  a ``{task: state}`` result gives initial task states;
                - ``context``: keys every task and handler of the run sees (the run's own keys
                  win); ``flow_run_id`` names the run, ``date`` sets ``today`` and friends;
                - ``task_states``: known states of some tasks (finished ones are not run again);
                - ``executor``: where task code runs (default: the flow's, else a
                  :class:`~asyncflow.executors.LocalExecutor`);
                - ``executors``: named executors: a task runs on the one its ``executor=``
                  names, or on the one named like one of its tags;
                - ``bus``: where events are published (default: :func:`asyncflow.default_bus`);
                - ``run_id``: the run's id (default: a new uuid);
                - ``clock``: the clock timers read (default: the system clock);
                - ``timeout``: a deadline for the whole run, in seconds; the flow ends
                  ``TimedOut`` and its running tasks ``Cancelled``;
                - ``max_concurrency``: how many tasks may run at once;
                - ``tag_limits``: ``{tag: n}``: at most ``n`` tasks with that tag run at once;
                - ``cache``: where cached results live (default:
                  :func:`asyncflow.caching.default_cache`);
                - ``checkpoints``: the hook that persists task values and finds them again
                  (default: each task's ``result`` and ``target``; see
                  :mod:`asyncflow.runtime.checkpoints`);
                - ``store``: a run store (:mod:`asyncflow.store`): the run, its journal of
                  events and its tasks' results are kept there, committed as it goes;
                - ``resume``: with ``store``, the id of a stored run to take up again: tasks
                  whose final state is journaled keep it, the others run;
                - ``owner`` and ``lease``: with ``store``, who owns the run there (default:
                  this process) and for how many seconds without renewal (default: as long as
                  the owner's process lives).

        Returns:
            The flow run's final state; its ``result`` maps every task to its final state.

        Raises:
            ParameterError: unknown or missing parameters.
            FlowValidationError: the graph is invalid.
            TypeError: an unknown run option, or one of the wrong type.
            ValueError: an impossible run option (e.g. ``run_id`` contradicting the
                context's ``flow_run_id``).
            RunNotFound: ``resume`` names no stored run.
            StoreError: the store cannot be written (the run is never presented as complete).
        """
        run = self._new_run(parameters, keywords, keep_history=False, wait_for_resume=False)
        return await run.execute()

    @contextlib.asynccontextmanager
    async def start(
        self,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_events: int | None = None,
        **keywords: Any,
    ) -> AsyncIterator[FlowRun]:
        """Start a run in the background and yield its handle; leaving the block waits for it.

        Takes the same arguments as :meth:`run_async`, and ``max_events``: how many of the
        run's latest events ``run.events()`` keeps (default: all; bound it for long-lived
        runs, such as a task looping a million times). Paused tasks wait for
        ``run.resume(task)``; an exception in the block cancels the run.
        """
        run = self._new_run(
            parameters, keywords, keep_history=True, wait_for_resume=True, max_events=max_events
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run.execute)
                yield run
                await run.wait()
        except BaseExceptionGroup as group:
            # The task group wraps what the block raised; hand the caller the exception itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        run_on_schedule: bool = True,
        **keywords: Any,
    ) -> State:
        """Run the flow from synchronous code (it starts its own event loop).

        Takes the same arguments as :meth:`run_async`. Nothing can resume a task paused here
        (Prefect 1.x would prompt on stdin): a run that leaves tasks paused ends ``Cancelled``,
        its message naming them; the paused tasks keep their ``Paused`` state in the result.

        A flow with a ``schedule`` runs at each of its scheduled times, one run after the
        other, until the schedule ends (times that pass while a run is still going are
        skipped); each run gets the parameter defaults of its clock event over the ones
        given. Waiting is a timer on the run's clock (a ``FakeClock`` jumps to each time at
        once). ``run_on_schedule=False`` runs once, now.

        Returns:
            The final state of the run (on a schedule: of the last run).

        Raises:
            RuntimeError: called while an event loop is running; use ``await run_async()``.
            ScheduleError: the schedule has no time left to run at.
        """
        if _loop_running():
            raise RuntimeError(
                f"{self!r}.run() was called inside a running event loop; "
                "use `await flow.run_async(...)` there instead"
            )
        schedule = getattr(self, "schedule", None)
        if run_on_schedule and schedule is not None:
            return anyio.run(run_scheduled, self, schedule, parameters, keywords)
        run = self._new_run(
            parameters, keywords, keep_history=False, wait_for_resume=False, end_paused=True
        )
        return anyio.run(run.execute)


def _fresh(default: Any) -> Any:
    """A deep copy of a parameter's default (the default itself when it cannot be copied)."""
    if default is None or isinstance(default, str | int | float | bool):
        return default
    try:
        return copy.deepcopy(default)
    except Exception:  # e.g. a lock or a client: such a default is shared, as in Prefect 1.x
        return default


def _loop_running() -> bool:
    try:
        anyio.get_current_task()
    except RuntimeError:
        pass
    else:
        return True
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
