"""How states, events and results are written into a store, and read back.

A state is kept as compact JSON: ``{"type": "Success", "message": ..., ...}`` with the fields a
resume needs (``location``, ``start_time``, ``run_count``, ``loop_count``, ``map_states``). A
result that is a plain JSON scalar is kept in the state itself; any other result (an exception,
a custom object) is kept as its ``repr`` under ``result_repr`` and reads back as ``None``: values
worth keeping are checkpointed (pickled) apart, under the state's ``location``.
"""

from __future__ import annotations

import json
import pickle
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from .. import states as _states
from ..events import StateChange
from ..states import Mapped, State

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .base import Store

__all__ = (
    "EventRow",
    "decode_event",
    "decode_state",
    "dump_value",
    "encode_event",
    "encode_state",
    "load_value",
    "state_class",
    "state_names",
)

#: One journal row: run id, seq, timestamp, task name, task run id, map index, old state JSON,
#: new state JSON, result location.
EventRow = tuple[str, int, float, str | None, str | None, int | None, str, str, str | None]

_CLASSES: dict[str, type[State]] = {
    name: obj
    for name in _states.__all__
    if isinstance(obj := getattr(_states, name), type) and issubclass(obj, State)
}
_SCALARS = (type(None), bool, int, float, str)
_N_BASE_FIELDS = len(attrs.fields(State))


def state_class(name: str) -> type[State]:
    """The state class called ``name``.

    Raises:
        ValueError: no state class has that name.
    """
    try:
        return _CLASSES[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a state class; states: {sorted(_CLASSES)}") from None


def state_names(cls: type[State] | str) -> list[str]:
    """The names of ``cls`` and of every state class derived from it (``"Failed"`` includes
    ``"TriggerFailed"``)."""
    base = state_class(cls) if isinstance(cls, str) else cls
    if not (isinstance(base, type) and issubclass(base, State)):
        raise TypeError(f"state= takes a State class or its name, got {cls!r}")
    return sorted(name for name, c in _CLASSES.items() if issubclass(c, base))


def _fields(state: State) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(state).__name__, "message": state.message}
    result = state.result
    if isinstance(result, _SCALARS) and not (isinstance(result, float) and result != result):
        out["result"] = result
    elif not isinstance(state, Mapped):
        out["result_repr"] = repr(result)
    if state.location is not None:
        out["location"] = state.location
    start = getattr(state, "start_time", None)
    if start is not None:
        out["start_time"] = start.isoformat()
    for name in ("run_count", "loop_count"):
        if hasattr(state, name):
            out[name] = getattr(state, name)
    if isinstance(state, Mapped):
        out["map_states"] = [_fields(s) for s in state.map_states]
    return out


#: The JSON of states that carry nothing but their class and message (``Running("Starting task
#: run.")``, ``Pending()``), which most transitions go through: encoded once per process.
_PLAIN: dict[tuple[type[State], str | None], str] = {}


def encode_state(state: State) -> str:
    """``state`` as compact JSON."""
    plain = (
        state.result is None
        and state.checkpoint is None
        and len(attrs.fields(type(state))) == _N_BASE_FIELDS
    )
    if plain:
        key = (type(state), state.message)
        text = _PLAIN.get(key)
        if text is not None:
            return text
    text = json.dumps(_fields(state), separators=(",", ":"), allow_nan=False, default=repr)
    if plain and len(_PLAIN) < 1000:
        _PLAIN[key] = text
    return text


def _build(data: dict[str, Any], store: Store) -> State:
    from .result import StoreResult

    cls = state_class(data["type"])
    kw: dict[str, Any] = {}
    if "location" in data:
        kw["checkpoint"] = StoreResult(location=data["location"], store=store)
    if "start_time" in data:
        kw["start_time"] = datetime.fromisoformat(data["start_time"])
    for name in ("run_count", "loop_count"):
        if name in data:
            kw[name] = data[name]
    if "map_states" in data:
        kw["map_states"] = [_build(d, store) for d in data["map_states"]]
    return cls(data.get("message"), data.get("result"), **kw)


def decode_state(text: str, store: Store) -> State:
    """The state :func:`encode_state` wrote (results other than JSON scalars read as ``None``;
    a location becomes a :class:`~asyncflow.store.result.StoreResult` of ``store``)."""
    return _build(json.loads(text), store)


def encode_event(
    event: StateChange, last: dict[str | None, tuple[State, str]] | None = None
) -> EventRow:
    """The journal row of ``event``.

    Args:
        event: the event.
        last: the last new state encoded per task run, and its JSON (updated here): an
            event's old state is usually its task run's previous new state, encoded already.
    """
    old = event.old_state
    hit = last.get(event.task_run_id) if last is not None else None
    old_json = hit[1] if hit is not None and hit[0] is old else encode_state(old)
    new_json = encode_state(event.new_state)
    if last is not None:
        last[event.task_run_id] = (event.new_state, new_json)
    return (
        event.run_id,
        event.seq,
        event.timestamp,
        event.task_name,
        event.task_run_id,
        event.map_index,
        old_json,
        new_json,
        event.new_state.location,
    )


def decode_event(flow_name: str, row: Sequence[Any], store: Store) -> StateChange:
    """The event of a journal row (its ``subject`` is ``None``: the object is not stored)."""
    run_id, seq, timestamp, task_name, task_run_id, map_index, old, new = row[:8]
    return StateChange(
        run_id,
        seq,
        timestamp,
        flow_name,
        task_name,
        task_run_id,
        map_index,
        decode_state(old, store),
        decode_state(new, store),
        None,
    )


def dump_value(value: Any) -> bytes:
    """A checkpointed result or the parameters, pickled."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def load_value(data: bytes) -> Any:
    """What :func:`dump_value` wrote."""
    return pickle.loads(data)  # our own checkpoints, in the user's own store
