"""How states, events and results are written into a store, and read back.

A state is kept as compact JSON: ``{"type": "Success", "message": ..., ...}`` with the fields a
resume needs (``location``, ``start_time``, ``run_count``, ``loop_count``, ``map_states``). A
result that is a plain JSON scalar is kept in the state itself; the error of a failed state is
kept as its ``repr`` under ``result_repr``; other results read back as ``None``: values worth
keeping are checkpointed (pickled) apart, under the state's ``location``.
"""

from __future__ import annotations

import json
import pickle
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from .. import states as _states
from ..events import StateChange
from ..states import Failed, Mapped, State

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .base import Store

__all__ = (
    "decode_chunk",
    "decode_state",
    "dump_value",
    "encode_chunk",
    "encode_state",
    "state_fields",
    "load_value",
    "state_class",
    "state_names",
)

_CLASSES: dict[str, type[State]] = {
    name: obj
    for name in _states.__all__
    if isinstance(obj := getattr(_states, name), type) and issubclass(obj, State)
}
_SCALARS = (type(None), bool, int, float, str)
_N_BASE_FIELDS = len(attrs.fields(State))
#: State classes with no field of their own.
_PLAIN_CLASSES = frozenset(c for c in _CLASSES.values() if len(attrs.fields(c)) == _N_BASE_FIELDS)


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
    elif isinstance(state, Failed):  # the error, for readers (a flow's {task: state} is not)
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


#: The fields of states that carry nothing but their class and message (``Running("Starting
#: task run.")``, ``Pending()``), which most transitions go through: built once per process.
_PLAIN: dict[tuple[type[State], str | None], dict[str, Any]] = {}


def state_fields(state: State) -> dict[str, Any]:
    """``state`` as a JSON-ready dict (shared for plain states: never change it)."""
    cls = type(state)
    if state.result is None and state.checkpoint is None and cls in _PLAIN_CLASSES:
        key = (cls, state.message)
        fields = _PLAIN.get(key)
        if fields is None:
            fields = _fields(state)
            if len(_PLAIN) < 1000:
                _PLAIN[key] = fields
        return fields
    return _fields(state)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=repr)


def encode_state(state: State) -> str:
    """``state`` as compact JSON."""
    return _dumps(state_fields(state))


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


def encode_chunk(
    events: Sequence[StateChange], last: dict[str | None, tuple[State, dict[str, Any]]]
) -> str:
    """Consecutive events of one run as one JSON array (one journal row).

    Args:
        events: the events, in ``seq`` order.
        last: the last new state encoded per task run, with its fields (updated here): an
            event's old state is usually its task run's previous new state, encoded already.
    """
    out = []
    for e in events:
        old, new = e.old_state, e.new_state
        hit = last.get(e.task_run_id)
        old_fields = hit[1] if hit is not None and hit[0] is old else state_fields(old)
        new_fields = state_fields(new)
        last[e.task_run_id] = (new, new_fields)
        out.append(
            [e.seq, e.timestamp, e.task_name, e.task_run_id, e.map_index, old_fields, new_fields]
        )
    return _dumps(out)


def decode_chunk(
    run_id: str, flow_name: str, text: str, store: Store, after: int = 0
) -> list[StateChange]:
    """The events of one journal row with ``seq > after`` (their ``subject`` is ``None``: the
    objects are not stored)."""
    return [
        StateChange(
            run_id,
            seq,
            timestamp,
            flow_name,
            task_name,
            task_run_id,
            map_index,
            _build(old, store),
            _build(new, store),
            None,
        )
        for seq, timestamp, task_name, task_run_id, map_index, old, new in json.loads(text)
        if seq > after
    ]


def dump_value(value: Any) -> bytes:
    """A checkpointed result or the parameters, pickled."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def load_value(data: bytes) -> Any:
    """What :func:`dump_value` wrote."""
    return pickle.loads(data)  # our own checkpoints, in the user's own store
