"""``MemoryStore``: a run store in this process's memory, for tests.

It behaves like the database stores (the same batching per event-loop tick, ownership checks,
reads and errors) and keeps nothing across processes.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import attrs

from ._codec import decode_chunk, decode_state, dump_value, encode_state, load_value
from .base import UNFINISHED, OwnershipLost, RunRecord, Store, StoreError
from .journal import refuse, writable

if TYPE_CHECKING:
    from ..events import StateChange
    from ..states import State
    from .base import Chunk

__all__ = ("MemoryStore",)


class MemoryStore(Store):
    """Runs, journals and checkpointed results in plain dicts (nothing survives the process)."""

    where = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, tuple[int, RunRecord]] = {}
        self._rows: dict[str, list[tuple[int, int, str]]] = {}
        self._values: dict[str, bytes] = {}
        self._n = 0

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    def _write(self, batch: list[Chunk]) -> None:
        todo, failures = writable(batch)
        now = time.time()
        for chunk in todo:
            journal = chunk.journal
            found = self._runs.get(journal.run_id)
            if found is None or found[1].owner != journal.owner:
                failures[journal] = OwnershipLost(
                    f"run {journal.run_id!r} is no longer owned by {journal.owner!r}"
                )
                continue
            try:
                pairs = chunk.pickled()
            except StoreError as exc:
                failures[journal] = exc
                continue
            n, record = found
            flow = chunk.flow_state
            state = record.state if flow is None else _plain(flow, self)
            if chunk.touch:
                record = attrs.evolve(record, state=state, updated=now)
            self._runs[journal.run_id] = (n, record)
            self._rows.setdefault(journal.run_id, []).append((chunk.first, chunk.last, chunk.text))
            self._values.update(pairs)
        refuse(failures)
        asyncio.get_running_loop().call_soon(self._settle, batch, failures)

    async def _get_run(self, run_id: str) -> RunRecord | None:
        found = self._runs.get(run_id)
        return found[1] if found is not None else None

    async def _list_runs(
        self, flow: str | None, states: list[str] | None, limit: int, before: str | None
    ) -> list[RunRecord]:
        rows = sorted(self._runs.values(), key=lambda p: (p[1].created, p[0]), reverse=True)
        if before is not None:
            n, ref = self._runs[before]
            rows = [p for p in rows if (p[1].created, p[0]) < (ref.created, n)]
        out = [
            r
            for _, r in rows
            if (flow is None or r.flow_name == flow)
            and (states is None or type(r.state).__name__ in states)
        ]
        return out[:limit]

    async def _events(self, record: RunRecord, after: int) -> list[StateChange]:
        rows = self._rows.get(record.id, [])
        return [
            e
            for _, last, text in rows
            if last > after
            for e in decode_chunk(record.id, record.flow_name, text, self, after)
        ]

    async def _results(self, locations: list[str]) -> dict[str, Any]:
        return self.read_values(locations)

    def read_values(self, locations: list[str]) -> dict[str, Any]:
        """The checkpointed values at ``locations`` (those that exist)."""
        return {loc: load_value(self._values[loc]) for loc in locations if loc in self._values}

    async def _create_run(self, record: RunRecord) -> None:
        if record.id in self._runs:
            raise StoreError(f"a run with id {record.id!r} already exists in the memory store")
        self._n += 1
        dump_value(record.parameters)  # parameters must survive a round trip, as in a database
        self._runs[record.id] = (self._n, attrs.evolve(record, state=_plain(record.state, self)))

    async def _claim(
        self, run_id: str, owner: str, expected: str | None, lease_until: float | None
    ) -> bool:
        found = self._runs.get(run_id)
        if found is None or found[1].owner != expected:
            return False
        n, record = found
        self._runs[run_id] = (n, attrs.evolve(record, owner=owner, lease_until=lease_until))
        return True

    async def _renew(self, owner: str, lease_until: float) -> None:
        for run_id, (n, r) in list(self._runs.items()):
            if r.owner == owner and type(r.state).__name__ in UNFINISHED:
                self._runs[run_id] = (n, attrs.evolve(r, lease_until=lease_until))

    async def _release(self, owner: str, run_ids: list[str]) -> None:
        for run_id in run_ids:
            found = self._runs.get(run_id)
            if found is not None and found[1].owner == owner:
                n, r = found
                self._runs[run_id] = (n, attrs.evolve(r, owner=None, lease_until=None))

    async def _unfinished(self, flows: list[str]) -> list[RunRecord]:
        rows = sorted(self._runs.values(), key=lambda p: (p[1].created, p[0]))
        return [r for _, r in rows if r.flow_name in flows and type(r.state).__name__ in UNFINISHED]


def _plain(state: State, store: Store) -> State:
    """The state as a database would give it back (through its JSON form)."""
    return decode_state(encode_state(state), store)
