"""Durable runs on the engine's side: creating a run in a store, or taking one up again.

:func:`open_run` is called by a :class:`~asyncflow.runtime.flow_run.FlowRun` given a store.
For a new run it inserts the run's record; for ``resume=`` it checks that the stored run was
made by the same graph (:func:`flow_version`), claims it, and reads its journal back: the last
journaled state of each task run, and the checkpointed results of those that are kept.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import attrs

from ..exceptions import RunStateError
from ..states import Mapped, Paused, Scheduled, State, Success
from ..store.base import FlowMismatch, RunRecord, owner_alive
from ..store.result import StoreResult
from .checkpoints import wanted

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

    from ..store.base import Journal, Store
    from .checkpoints import Checkpoints, TaskKey
    from .spec import FlowSpec, TaskSpec

__all__ = ("Opened", "StoreCheckpoints", "flow_version", "open_run")


_versions: weakref.WeakKeyDictionary[FlowSpec, str] = weakref.WeakKeyDictionary()


def flow_version(spec: FlowSpec) -> str:
    """A hash of the flow's graph: task slugs and classes, edges with their keys and mapped
    flags (not the tasks' code). Computed once per compiled flow."""
    version = _versions.get(spec)
    if version is None:
        version = _versions[spec] = _hash_graph(spec)
    return version


def _hash_graph(spec: FlowSpec) -> str:
    lines = []
    for ts in spec.tasks:
        cls = type(ts.task)
        lines.append(f"task {ts.slug} {cls.__module__}.{cls.__qualname__}")
        for e, j in zip(ts.upstream_edges, ts.upstream_index, strict=True):
            up = spec.tasks[j].slug
            lines.append(f"edge {up} -> {ts.slug} key={e.key} mapped={e.mapped} flat={e.flattened}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]


class StoreCheckpoints:
    """The checkpoint hook of a run with a store.

    A task with a Result of its own (or the flow's) goes through ``results`` as without a
    store; any other task's value is checkpointed into the store, unless ``checkpoint=False``.
    Nothing is written here: the value goes into the store with the task's final state, in
    the same transaction.
    """

    def __init__(self, store: Store, results: Checkpoints) -> None:
        self.store = store
        self.results = results
        inner = getattr(results, "plan_key", None)
        #: Its answers depend on the task alone when those of ``results`` do.
        self.plan_key: Hashable | None = ("store", inner) if inner is not None else None

    def wants(self, spec: TaskSpec) -> tuple[bool, bool]:
        """Lookups as ``results`` says; saves for every task that checkpoints."""
        lookup, save = self.results.wants(spec)
        return wanted(lookup, save or (spec.result is None and spec.checkpoint))

    async def lookup(self, key: TaskKey) -> State | None:
        """A task's ``target``, looked up through its Result."""
        return await self.results.lookup(key)

    async def save(self, key: TaskKey, state: State) -> State:
        """``state`` carrying a :class:`StoreResult` (its own Result's write, if it has one)."""
        if key.spec.result is not None:
            return await self.results.save(key, state)
        if state.result is None:
            return state  # nothing to keep: it reads back as None anyway
        index = "" if key.map_index is None else f"[{key.map_index}]"
        location = f"{key.run_id}/{key.spec.slug}{index}"
        return attrs.evolve(state, checkpoint=StoreResult(state.result, location, store=self.store))


@attrs.define
class Opened:
    """A run ready to go on in a store.

    Attributes:
        journal: where its events are appended.
        parameters: its parameters (from the store when resumed).
        seq: the last journaled seq (0 for a new run).
        flow_state: the flow's last journaled state.
        restored: the states task runs come back in, by task run id.
        final: the stored final state, when a resumed run had already succeeded.
    """

    journal: Journal
    parameters: dict[str, Any]
    seq: int = 0
    flow_state: State = attrs.field(factory=Scheduled)
    restored: dict[str, State] = attrs.field(factory=dict)
    final: State | None = None


async def restore(
    store: Store, spec: FlowSpec, run_id: str, states: dict[str, State]
) -> dict[str, State]:
    """``states`` (by task run id) with their checkpointed values read back: from the store,
    or through the task's own Result (in a worker thread)."""
    wanted = [s.location for s in states.values() if s.location is not None]
    values = await store.results(wanted)
    slugs = {ts.slug: ts for ts in spec.tasks}
    out = {}
    for trid, state in states.items():
        location = state.location
        if location is None:
            out[trid] = state
        elif location in values:
            out[trid] = attrs.evolve(state, result=values[location])
        else:
            ts = slugs.get(trid[len(run_id) + 1 :].partition("[")[0])
            reader = ts.result if ts is not None else None
            if reader is None:
                out[trid] = state
            else:
                read = await anyio.to_thread.run_sync(reader.read, location)
                out[trid] = attrs.evolve(state, result=read.value, checkpoint=read)
    return out


def kept(state: State) -> bool:
    """Whether a task run whose last journaled state is ``state`` is not run again."""
    return isinstance(state, Paused) or (
        isinstance(state, Success) and not isinstance(state, Mapped)
    )


async def open_run(
    store: Store,
    spec: FlowSpec,
    run_id: str,
    parameters: Mapping[str, Any],
    *,
    resume: bool,
    owner: str,
    lease: float | None,
) -> Opened:
    """Create run ``run_id`` in ``store``, or (``resume``) take it up again.

    Raises:
        RunNotFound: ``resume`` names no stored run.
        FlowMismatch: the stored run was made by another flow or graph.
        RunStateError: the stored run is owned by a live runtime or process.
        StoreError: the store cannot be read or written.
    """
    version = flow_version(spec)
    lease_until = time.time() + lease if lease is not None else None
    if not resume:
        now = time.time()
        record = RunRecord(
            run_id, spec.name, version, dict(parameters), Scheduled(), now, now, owner, lease_until
        )
        await store.create_run(record)
        return Opened(store.journal(run_id, owner), dict(parameters))

    record = await store.get_run(run_id)
    if record.flow_name != spec.name or record.flow_version != version:
        raise FlowMismatch(
            f"run {run_id!r} in {store.where} was made by flow {record.flow_name!r} with graph "
            f"version {record.flow_version}; {spec.subject!r} has version {version}: a run "
            "is never resumed with a different graph"
        )
    events = [e async for e in store.events(run_id)]
    last: dict[str, State] = {}
    for e in events:
        if e.task_run_id is not None:
            last[e.task_run_id] = e.new_state
    restored = await restore(store, spec, run_id, {t: s for t, s in last.items() if kept(s)})
    seq = events[-1].seq if events else 0
    journal = store.journal(run_id, owner, seq)
    if record.state.is_successful():
        result = {
            ts.task: restored.get(f"{run_id}/{ts.slug}", last.get(f"{run_id}/{ts.slug}"))
            for ts in spec.tasks
        }
        final = attrs.evolve(record.state, result=result)
        return Opened(journal, record.parameters, seq, record.state, restored, final)
    if record.owner != owner and owner_alive(record.owner, record.lease_until):
        raise RunStateError(
            f"run {run_id!r} in {store.where} is owned by {record.owner!r}, which is still "
            "running it"
        )
    if not await store.claim(run_id, owner, record.owner, lease_until):
        raise RunStateError(f"run {run_id!r} in {store.where} was taken over by another owner")
    return Opened(journal, record.parameters, seq, record.state, restored)
