"""``Runtime``: the object a long-lived app holds to run flows in the background.

A web app enters one Runtime for its whole life (FastAPI ``lifespan``, aiohttp ``cleanup_ctx``).
The Runtime owns the task group in which runs execute, so a request handler can start a run and
return at once while the run goes on. It keeps a bounded registry of runs (:class:`RunRecord`:
the live ``FlowRun`` handle while the run goes on, its final state and task states after, and a
size-limited history of its events), refuses new runs once it is shutting down, and on shutdown
cancels or drains the runs still going. No event is lost on the way: a record copies every event
of its run, up to the run's final transition, even when the run is cancelled.

Nothing here imports a web framework; :mod:`asyncflow.integrations.fastapi` and
:mod:`asyncflow.integrations.aiohttp` turn a Runtime into routes.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .. import states
from .._log import ROOT, get_logger
from .._logsetup import ensure_logging
from ..clock import SYSTEM_CLOCK
from ..exceptions import AsyncflowError, ParameterError, RunStateError
from ..store.base import RunNotFound
from .activity import LogCapture, RunActivity
from .errors import InvalidQuery
from .record import RunRecord, UnknownTask, copy_events
from .recovery import RunKeeper, follow, history, stored_record
from .scheduling import Schedules

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from datetime import datetime

    from anyio.abc import TaskGroup, TaskStatus

    from ..bus import EventBus
    from ..clock import Clock
    from ..flow import Flow
    from ..runtime.flow_run import FlowRun
    from ..store import RunRecord as StoredRun
    from ..store import Store
    from ..task import Task

__all__ = (
    "Runtime",
    "RunRecord",
    "UnknownFlow",
    "UnknownRun",
    "InvalidParameters",
    "RuntimeUnavailable",
    "UnknownTask",
)

_log = get_logger("asyncflow.integrations")


class UnknownFlow(AsyncflowError, LookupError):
    """No flow is registered under that name (HTTP 404)."""


class UnknownRun(AsyncflowError, LookupError):
    """No run with that id is known (never started, or forgotten) (HTTP 404)."""


class RuntimeUnavailable(AsyncflowError, RuntimeError):
    """The runtime takes no new run: not entered, shutting down, or full (HTTP 503)."""


class InvalidParameters(ParameterError):
    """Parameters unknown to the flow, required ones missing, or a malformed body (HTTP 422)."""


def _state_class(state: type[states.State] | str | None) -> type[states.State] | None:
    if state is None or isinstance(state, type):
        return state
    found = getattr(states, state, None)
    if isinstance(found, type) and issubclass(found, states.State):
        return found
    names = sorted(n for n in states.__all__ if n[0].isupper())
    raise InvalidQuery("state", f"no state named {state!r}; states: {names}")


class Runtime:
    """Runs flows in the background for a long-lived async app; an async context manager.

    Args:
        flows: the flows clients may run: ``{name: flow}``, or flows (named by ``flow.name``).
        bus: the bus the runs publish on (default: :func:`asyncflow.default_bus`).
        max_runs: how many runs the registry keeps; the oldest ended ones are forgotten first,
            and when every kept run is still going, new runs are refused.
        max_events: how many events are kept per run (the last ones), by the runtime and by
            the run itself while it goes on; ``None`` for all.
        max_logs: how many log records are kept per run (the last ones); ``None`` for all.
            The runtime keeps the records its runs make through the ``asyncflow`` logger,
            at the level that logger lets through.
        on_shutdown: ``"cancel"`` the runs still going when the runtime exits, or ``"drain"``
            (let them finish).
        drain_timeout: in drain mode, cancel the runs still going after that many seconds.
        clock: the clock the runs and the flows' schedules read (default: the system clock);
            a flow with a ``schedule`` is started at each of its times while the runtime runs.
        run_options: more keywords for every ``flow.start()`` (``executor``, ``timeout``,
            ``max_concurrency``, ``clock``, ...).
        store: a run store (:mod:`asyncflow.store`): runs, their events and approvals then
            survive a restart. Entering the runtime resumes the unfinished runs of its flows
            whose owner is gone; leaving it leaves its unfinished runs in the store (not
            cancelled) for the next runtime.
        lease: with ``store``, seconds this runtime's ownership of its runs lasts without
            renewal (it renews every third of it); another runtime adopts a run whose lease
            expired. A run whose owner is a dead process on this host is adopted at once.

    ``async with Runtime(...) as runtime:`` opens the task group; enter and leave it in one
    task (a FastAPI ``lifespan``: :meth:`lifespan`; an aiohttp ``cleanup_ctx``:
    :meth:`cleanup_ctx`).
    """

    def __init__(
        self,
        flows: Mapping[str, Flow] | Iterable[Flow],
        *,
        bus: EventBus | None = None,
        max_runs: int = 1000,
        max_events: int | None = 10_000,
        max_logs: int | None = 1000,
        on_shutdown: Literal["cancel", "drain"] = "cancel",
        drain_timeout: float | None = None,
        clock: Clock | None = None,
        run_options: Mapping[str, Any] | None = None,
        store: Store | None = None,
        lease: float = 10.0,
    ) -> None:
        if on_shutdown not in ("cancel", "drain"):
            raise ValueError(f'on_shutdown must be "cancel" or "drain", got {on_shutdown!r}')
        if max_runs < 1 or any(n is not None and n < 1 for n in (max_events, max_logs)):
            raise ValueError("max_runs, max_events and max_logs must be at least 1")
        if isinstance(flows, Mapping):
            self.flows: dict[str, Flow] = dict(flows)
        else:
            self.flows = {f.name: f for f in flows}
        self.bus = bus
        self.max_runs = max_runs
        self.max_events = max_events
        self.max_logs = max_logs
        self.on_shutdown = on_shutdown
        self.drain_timeout = drain_timeout
        self.run_options = dict(run_options or {})
        if clock is not None:
            self.run_options["clock"] = clock
        self.schedules = Schedules(self, self.run_options.get("clock") or SYSTEM_CLOCK)
        self._records: dict[str, RunRecord] = {}
        self._tg: TaskGroup | None = None
        self._closing = False
        self._cancelling = False
        self._stopped: anyio.Event | None = None
        self._capture: LogCapture | None = None
        self.store = store
        self._keeper = RunKeeper(store, lease, list(self.flows)) if store is not None else None
        self._resuming: set[str] = set()

    def __repr__(self) -> str:
        return f"<Runtime flows={sorted(self.flows)} runs={len(self._records)}>"

    # -- lifespan ---------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        if self._tg is not None or self._closing:
            raise RuntimeError(f"{self!r} can be entered once")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        ensure_logging()  # reads ASYNCFLOW_LOG_* (and may install the fallback output) first
        self._capture = LogCapture(self._activity_of, self._notify)
        logging.getLogger(ROOT).addHandler(self._capture)
        if self._keeper is not None:
            try:
                await self._keeper.start(tg, self._adopt)
            except BaseException as exc:
                self._closing = True
                logging.getLogger(ROOT).removeHandler(self._capture)
                tg.cancel_scope.cancel()
                await tg.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        if self.schedules.scheduled:
            await tg.start(self.schedules.run)
        return self

    def _activity_of(self, run_id: str) -> RunActivity | None:
        record = self._records.get(run_id)
        return record.activity if record is not None else None

    def _notify(self, run_id: str) -> None:
        record = self._records.get(run_id)
        if record is not None:
            record._notify()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        tg = self._tg
        assert tg is not None, "the runtime was not entered"
        try:
            if exc_info[0] is None:
                await self.shutdown()
            else:  # leaving with an error (or cancelled): no waiting, cancel what goes on
                self._closing = True
                self.schedules.stop()
                self._cancel_all()
            try:
                return await tg.__aexit__(*exc_info)
            except BaseExceptionGroup as group:
                # The task group wraps the error the app left with; let it through as it was.
                if exc_info[1] is not None and list(group.exceptions) == [exc_info[1]]:
                    return None
                raise
        finally:  # the runs' last records (while cancelled or drained) are kept too
            logging.getLogger(ROOT).removeHandler(self._capture)  # type: ignore[arg-type]
            if self._keeper is not None and not self._keeper.stopped:
                with anyio.CancelScope(shield=True):  # left with an error: still release
                    await self._keeper.stop(list(self._records))

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """``FastAPI(lifespan=runtime.lifespan)``: the runtime lives as long as the app."""
        async with self:
            yield

    async def cleanup_ctx(self, app: object = None) -> AsyncIterator[None]:
        """``app.cleanup_ctx.append(runtime.cleanup_ctx)``: the same for aiohttp."""
        async with self:
            yield

    @property
    def closing(self) -> bool:
        """Whether the runtime has begun shutting down (it refuses new runs)."""
        return self._closing

    async def shutdown(self) -> None:
        """Refuse new runs, then cancel or drain the runs still going; return when all ended.

        Safe to call more than once and from several tasks; all return together.
        """
        self._closing = True
        self.schedules.stop()
        if self._stopped is not None:
            await self._stopped.wait()
            return
        self._stopped = anyio.Event()
        try:
            if self.on_shutdown == "drain":
                with anyio.move_on_after(self.drain_timeout):
                    await self._wait_all()
            self._cancel_all()
            await self._wait_all()
            if self._keeper is not None:
                await self._keeper.stop(list(self._records))
        finally:
            self._stopped.set()

    def begin_shutdown(self) -> None:
        """:meth:`shutdown` in the runtime's own task group; return at once.

        What a server that begins to stop calls, so that open event streams end (their runs
        are cancelled or drained) instead of holding the server. Does nothing when the runtime
        is not running or is already shutting down.
        """
        if self._tg is not None and self._stopped is None:
            self._tg.start_soon(self.shutdown)

    def _cancel_all(self) -> None:
        self._cancelling = True  # and a run still starting is cancelled once it has started
        for record in self._records.values():
            if record.run is not None:
                self._stop(record.run)

    def _stop(self, run: FlowRun) -> None:
        """Cancel ``run``; with a store, leave it unfinished there for the next runtime."""
        if self._keeper is not None:
            run.detach()
        else:
            run.cancel()

    async def _wait_all(self) -> None:
        for record in list(self._records.values()):
            await record.wait()

    # -- the registry -----------------------------------------------------------------------

    def runs(self) -> list[RunRecord]:
        """Every run kept, oldest first."""
        return list(self._records.values())

    async def list_runs(
        self,
        *,
        flow: str | None = None,
        state: type[states.State] | str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[RunRecord]:
        """A page of the runs kept, newest first (by creation).

        Args:
            flow: only the runs of the flow registered under that name.
            state: only the runs whose state is of that class (or class name), subclasses
                included (``"Failed"`` includes ``TriggerFailed``).
            limit: at most that many runs.
            before: the id of the last run of the previous page: only runs created before it.

        With a store, the runs come from the store: those of earlier runtimes and of other
        replicas too.

        Raises:
            InvalidQuery: ``state`` names no state class, ``before`` no run kept, or
                ``limit`` is below 1 (``field`` names the argument).
        """
        if limit < 1:
            raise InvalidQuery("limit", f"must be at least 1, got {limit}")
        cls = _state_class(state)
        if self.store is not None:
            return await self._list_stored(flow, cls, limit, before)
        records = list(self._records.values())
        if before is not None:
            if before not in self._records:
                raise InvalidQuery("before", f"no run with id {before!r} is kept")
            records = records[: records.index(self._records[before])]
        page: list[RunRecord] = []
        for record in reversed(records):
            if flow is not None and record.flow_name != flow:
                continue
            if cls is not None and not isinstance(record.state, cls):
                continue
            page.append(record)
            if len(page) == limit:
                break
        return page

    async def _list_stored(
        self, flow: str | None, cls: type[states.State] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        """:meth:`list_runs` from the store: every run of the served flows, whichever runtime
        ran it (this one's own records for the runs it keeps)."""
        assert self.store is not None
        try:
            page = await self.store.list_runs(flow=flow, state=cls, limit=limit, before=before)
        except RunNotFound:
            raise InvalidQuery("before", f"no run with id {before!r} is stored") from None
        out = []
        for stored in page:
            served = self.flows.get(stored.flow_name)
            if served is None:
                continue  # a flow of another service sharing the database
            kept = self._records.get(stored.id)
            out.append(
                kept
                if kept is not None
                else await stored_record(self.store, served, stored, self.max_events, self.max_logs)
            )
        return out

    def active(self) -> list[RunRecord]:
        """The runs still going."""
        return [r for r in self._records.values() if r.run is not None and not r.done]

    def get(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``.

        Raises:
            UnknownRun: no such run is kept.
        """
        try:
            return self._records[run_id]
        except KeyError:
            raise UnknownRun(f"no run with id {run_id!r}") from None

    def next_run(self, name: str) -> datetime | None:
        """When flow ``name`` next starts on its schedule (``None``: unscheduled or ended)."""
        self.flow(name)
        return self.schedules.next_run(name)

    def flow(self, name: str) -> Flow:
        """The flow registered as ``name``.

        Raises:
            UnknownFlow: no flow has that name.
        """
        try:
            return self.flows[name]
        except KeyError:
            raise UnknownFlow(f"no flow named {name!r}; flows: {sorted(self.flows)}") from None

    def check(self, flow: str, parameters: Any = None) -> Flow:
        """Validate a run request without starting anything; return the flow.

        Raises:
            UnknownFlow: no flow has that name.
            InvalidParameters: ``parameters`` is not a mapping, names unknown parameters or
                misses required ones (the message names all of them).
            RuntimeUnavailable: the runtime is not running or is shutting down.
        """
        if self._tg is None or self._closing:
            state = "is shutting down" if self._closing else "is not running"
            raise RuntimeUnavailable(f"the runtime {state}; it takes no new run")
        found = self.flow(flow)
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, Mapping) or not all(isinstance(k, str) for k in parameters):
            raise InvalidParameters(f"parameters must be an object, got {parameters!r}")
        params = {p.name: p for p in found.parameters()}
        unknown = sorted(parameters.keys() - params.keys())
        missing = sorted(n for n, p in params.items() if p.required and n not in parameters)
        if unknown or missing:
            problems = [f"unknown parameter(s) {unknown}"] if unknown else []
            problems += [f"missing required parameter(s) {missing}"] if missing else []
            raise InvalidParameters(
                f"flow {flow!r}: {'; '.join(problems)} (its parameters: {sorted(params)})",
                unknown,
                missing,
            )
        return found

    def _reserve(self, flow: str, parameters: Any, run_id: str | None) -> RunRecord:
        self.check(flow, parameters)
        run_id = run_id if run_id is not None else uuid.uuid4().hex
        if run_id in self._records:
            raise RunStateError(f"a run with id {run_id!r} already exists")
        if len(self._records) >= self.max_runs:
            for old in [r for r in self._records.values() if r.done]:
                del self._records[old.id]
                if len(self._records) < self.max_runs:
                    break
            else:
                raise RuntimeUnavailable(f"{self.max_runs} runs are in progress; try again later")
        record = RunRecord(run_id, flow, parameters or {}, self.max_events, self.max_logs)
        self._records[run_id] = record
        return record

    # -- running ----------------------------------------------------------------------------

    async def start(
        self, flow: str, parameters: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> RunRecord:
        """Start a run of ``flow`` in the runtime's task group; return once it is running.

        Raises:
            UnknownFlow, InvalidParameters, RuntimeUnavailable: see :meth:`check`.
            RunStateError: ``run_id`` is taken.
        """
        record = self._reserve(flow, parameters, run_id)
        assert self._tg is not None
        try:
            await self._tg.start(self._drive, record, True)
        except BaseException:
            self._forget_unstarted(record)
            raise
        return record

    async def run(
        self, flow: str, parameters: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> RunRecord:
        """Run ``flow`` to its end in the calling task (cancelling the caller cancels the run).

        The run is registered like any other (listed, streamed, cancelled on shutdown).

        Raises:
            UnknownFlow, InvalidParameters, RuntimeUnavailable: see :meth:`check`.
            RunStateError: ``run_id`` is taken.
        """
        record = self._reserve(flow, parameters, run_id)
        await self._drive(record)
        return record

    async def run_attached(
        self,
        flow: str,
        parameters: Mapping[str, Any] | None,
        client_gone: Callable[[], Awaitable[None]],
    ) -> RunRecord:
        """:meth:`run`, cancelled as soon as ``client_gone()`` returns (the client left).

        What ``?wait=true`` does: the run lives in the request that asked for it.

        Raises:
            UnknownFlow, InvalidParameters, RuntimeUnavailable: see :meth:`check`.
        """
        self.check(flow, parameters)
        run_id = uuid.uuid4().hex
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await client_gone()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                await self.run(flow, parameters, run_id=run_id)
            except Exception as exc:  # raised after the watcher is gone, not as a group
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return self.get(run_id)

    def _forget_unstarted(self, record: RunRecord) -> None:
        """A run that failed to start is not kept (and nobody waits for it)."""
        if self._records.get(record.id) is record:
            del self._records[record.id]
        if not record.done:
            record._close()

    async def _drive(
        self,
        record: RunRecord,
        background: bool = False,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        flow = self.flows[record.flow_name]
        started = False
        options = {**self.run_options, "run_id": record.id, "max_events": self.max_events}
        parameters: Mapping[str, Any] | None = record.parameters
        if self.bus is not None:
            options["bus"] = self.bus
        if self._keeper is not None:
            options.update(self._keeper.options())
            if record.id in self._resuming:
                options["resume"], parameters = record.id, None
        try:
            async with flow.start(parameters, **options) as run:
                record.run = run
                started = True
                if self._cancelling:
                    self._stop(run)
                task_status.started()
                await copy_events(run, record)
        except Exception:
            if not (started and background):
                raise
            # An error of the engine itself: it must not take the runtime and its other
            # runs down with it (the record ends with the run's last state).
            _log.exception("run crashed", flow_run_id=record.id, flow=record.flow_name)
        finally:
            if not started:
                self._forget_unstarted(record)
            else:
                # Cancelled while copying: the run has ended by now (leaving `flow.start`
                # waits for it, its last transitions shielded), so copy what is left.
                with anyio.CancelScope(shield=True):
                    if record.run is not None:
                        await copy_events(record.run, record)
                    record._close()

    async def _adopt(self, stored: StoredRun) -> None:
        """Resume a stored run whose owner is gone, in the background (a paused task comes
        back paused). A run another runtime takes first is left to it."""
        if stored.id in self._records or stored.flow_name not in self.flows or self._closing:
            return
        flow = self.flows[stored.flow_name]
        record = RunRecord(
            stored.id, stored.flow_name, stored.parameters, self.max_events, self.max_logs
        )
        record.created = stored.created
        assert self.store is not None
        assert self._tg is not None
        for event in await history(self.store, flow, stored.id):
            record._add(event)
        self._records[stored.id] = record
        self._resuming.add(stored.id)
        try:
            await self._tg.start(self._drive, record, True)
        except (AsyncflowError, LookupError) as exc:
            _log.warning("could not adopt run", flow_run_id=stored.id, error=str(exc))
            self._forget_unstarted(record)
        else:
            _log.info("adopted run", flow_run_id=stored.id, flow=stored.flow_name)
        finally:
            self._resuming.discard(stored.id)

    async def lookup(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``: kept by this runtime, or read from its store (a run
        another runtime is running is followed live: its record gets the events committed).

        Raises:
            UnknownRun: no such run is kept or stored (for a flow this runtime serves).
        """
        if run_id in self._records or self.store is None:
            return self.get(run_id)
        try:
            stored = await self.store.get_run(run_id)
        except RunNotFound:
            raise UnknownRun(f"no run with id {run_id!r}") from None
        if stored.flow_name not in self.flows:
            raise UnknownRun(f"no run with id {run_id!r} of a flow this runtime serves")
        flow = self.flows[stored.flow_name]
        record = await stored_record(self.store, flow, stored, self.max_events, self.max_logs)
        if not record.done and self._tg is not None:
            # Another runtime (a replica) runs it: follow what it commits.
            self._tg.start_soon(follow, self.store, flow, record)
        return record

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel run ``run_id``; return its record.

        Raises:
            UnknownRun: no such run.
            RunStateError: the run has ended.
        """
        record = self.get(run_id)
        record.cancel()
        return record

    def resume(self, run_id: str, task: Task | str, map_index: int | None = None) -> RunRecord:
        """Approve the paused ``task`` (or its child ``map_index``) of run ``run_id``.

        Raises:
            UnknownRun: no such run.
            UnknownTask: no such task (or child).
            RunStateError: the task is not paused, or the run has ended.
        """
        record = self.get(run_id)
        record.resume(task, map_index)
        return record
