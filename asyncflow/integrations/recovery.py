"""What a :class:`~asyncflow.integrations.Runtime` given a store does with it.

A :class:`RunKeeper` owns the runtime's runs in the store under one owner token
(``host:pid:random``): it renews their lease every third of the lease, adopts the unfinished
runs of the runtime's flows whose owner is gone (this process before a crash, a dead process on
this host, or a replica whose lease expired) and, at shutdown, releases the runs it leaves
unfinished so that the next runtime resumes them. It also turns stored runs back into the
runtime's :class:`~asyncflow.integrations.record.RunRecord` for the routes that read a run the
runtime no longer (or never) ran itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._log import get_logger
from ..store.base import new_owner, owner_alive, retire_owner
from .record import RunRecord

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ..events import StateChange
    from ..flow import Flow
    from ..store import RunRecord as StoredRun
    from ..store import Store
    from ..task import Task

__all__ = ("RunKeeper", "stored_record")

_log = get_logger("asyncflow.integrations")


def _tasks_by_run_id(flow: Flow, run_id: str) -> dict[str, Task]:
    return {f"{run_id}/{ts.slug}": ts.task for ts in flow.compile().tasks}


def _subject(tasks: dict[str, Task], flow: Flow, event: StateChange) -> StateChange:
    """A stored event with its subject (the task, or the flow) put back."""
    if event.task_run_id is None:
        return attrs.evolve(event, subject=flow)
    return attrs.evolve(event, subject=tasks.get(event.task_run_id.partition("[")[0]))


async def history(store: Store, flow: Flow, run_id: str, after: int = 0) -> list[StateChange]:
    """The committed events of ``run_id`` with ``seq > after``, with their subjects."""
    tasks = _tasks_by_run_id(flow, run_id)
    return [_subject(tasks, flow, e) async for e in store.events(run_id, after)]


#: How often a follower re-reads a run whose store announces no commits (SQLite: it polls).
FOLLOW_POLL = 0.25


async def follow(store: Store, flow: Flow, record: RunRecord) -> None:
    """Feed ``record`` with the events another runtime commits to its run, until the run ends.

    With a :class:`~asyncflow.store.PostgresStore` each commit is announced (LISTEN/NOTIFY);
    other stores are polled every :data:`FOLLOW_POLL` seconds.
    """
    tasks = _tasks_by_run_id(flow, record.id)
    try:
        while True:
            await store.wait_change(record.id, FOLLOW_POLL)
            for event in await history(store, flow, record.id, record.last_seq):
                record._add(event)
                task = tasks.get((event.task_run_id or "").partition("[")[0])
                if task is not None and event.map_index is None:
                    record._tasks[task] = event.new_state
                if event.task_name is None:
                    record._state = event.new_state
                    if event.new_state.is_finished():
                        return
    finally:
        with anyio.CancelScope(shield=True):
            record._state = (await store.get_run(record.id)).state
        record._close()


async def stored_record(
    store: Store, flow: Flow, run: StoredRun, max_events: int | None, max_logs: int | None
) -> RunRecord:
    """A :class:`RunRecord` of a run read from the store, with its committed events: closed
    when the run has ended, else open for :func:`follow` to feed."""
    record = RunRecord(run.id, run.flow_name, run.parameters, max_events, max_logs)
    record.created = run.created
    tasks = _tasks_by_run_id(flow, run.id)
    last: dict[Task, Any] = {}
    for event in await history(store, flow, run.id):
        record._add(event)
        task = tasks.get(event.task_run_id or "")
        if task is not None:
            last[task] = event.new_state
    record._state = run.state
    record._tasks = last
    if not run.state.is_finished():
        return record  # the caller follows it (see follow)
    record._close()
    record.finished = run.updated
    return record


class RunKeeper:
    """A runtime's ownership of its runs in a store (see the module docstring).

    Args:
        store: the store.
        lease: seconds the ownership lasts without renewal.
        flows: the names of the flows whose orphaned runs it adopts.
    """

    def __init__(self, store: Store, lease: float, flows: list[str]) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")
        self.flows = flows
        self.store = store
        self.lease = lease
        self.owner = new_owner()
        self._scope: anyio.CancelScope | None = None
        self._opened_here = False
        self.stopped = False

    def options(self) -> dict[str, Any]:
        """The run keywords of a run this runtime owns in the store."""
        return {"store": self.store, "owner": self.owner, "lease": self.lease}

    async def start(self, tg: TaskGroup, adopt: Any) -> None:
        """Open the store, adopt the orphaned runs (``await adopt(stored_run)`` each), then
        keep renewing the lease and looking for orphans in ``tg``."""
        self._opened_here = not self.store._opened
        await self.store.open()
        await self.recover(adopt)
        self._scope = anyio.CancelScope()
        tg.start_soon(self._keep, adopt, self._scope)

    async def recover(self, adopt: Any, flows: list[str] | None = None) -> None:
        """Adopt every unfinished run of ``flows`` whose owner is gone."""
        for run in await self.store.unfinished(flows if flows is not None else self.flows):
            if run.owner != self.owner and not owner_alive(run.owner, run.lease_until):
                await adopt(run)

    async def _keep(self, adopt: Any, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                await anyio.sleep(self.lease / 3)
                try:
                    await self.store.renew(self.owner, time.time() + self.lease)
                    await self.recover(adopt)
                except Exception:  # a store hiccup: try again next period
                    _log.exception("could not renew the runs' lease", store=self.store.where)

    async def stop(self, run_ids: list[str]) -> None:
        """Stop renewing, release ``run_ids`` (left unfinished) for the next runtime, and close
        the store if :meth:`start` opened it."""
        self.stopped = True
        if self._scope is not None:
            self._scope.cancel()
        try:
            await self.store.release(self.owner, run_ids)
        finally:
            retire_owner(self.owner)
            if self._opened_here:  # the runtime opened it, the runtime closes it
                await self.store.aclose()
