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
from json.encoder import encode_basestring_ascii
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
    "encode_event",
    "encode_state",
    "LastEncoded",
    "load_value",
    "state_class",
    "state_json",
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


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=repr)


def encode_state(state: State) -> str:
    """``state`` as compact JSON."""
    return state_json(state)


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


#: The JSON of states that carry nothing but their class and message, by class then message,
#: built once per process (most transitions go through a few of them).
_PLAIN_JSON: dict[type[State], dict[str | None, str]] = {cls: {} for cls in _PLAIN_CLASSES}


def state_json(state: State) -> str:
    """``state`` as compact JSON (:func:`encode_state`), cached for plain states."""
    by_message = _PLAIN_JSON.get(type(state))
    if by_message is not None and state.result is None and state.checkpoint is None:
        text = by_message.get(state.message)
        if text is None:
            text = _dumps(_fields(state))
            if len(by_message) < 100:
                by_message[state.message] = text
        return text
    return _dumps(_fields(state))


class LastEncoded:
    """What a journal encoded last per task run: its last new state, that state's JSON, and
    the JSON of its ``task_name, task_run_id, map_index`` (an event's old state is usually the
    previous new one). Three dicts rather than a tuple per event: nothing for the garbage
    collector to track."""

    __slots__ = ("ident", "json", "state")

    def __init__(self) -> None:
        self.state: dict[str | None, State] = {}
        self.json: dict[str | None, str] = {}
        self.ident: dict[str | None, str] = {}


def _scalar(value: Any) -> str:
    """A JSON scalar, without the encoder's set-up for the common types."""
    kind = type(value)
    if kind is str:
        text: str = encode_basestring_ascii(value)
        return text
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    return _dumps(value)


def _ident(task_name: str | None, task_run_id: str | None, map_index: int | None) -> str:
    return f"{_scalar(task_name)},{_scalar(task_run_id)},{_scalar(map_index)}"


def encode_event(
    seq: int,
    timestamp: float,
    task_name: str | None,
    task_run_id: str | None,
    map_index: int | None,
    old: State,
    new: State,
    last: LastEncoded,
) -> str:
    """One event as the JSON array a journal row holds a list of (see :func:`decode_chunk`).

    This runs on the event loop for every transition of a durable run: it calls nothing it
    need not (states without fields of their own come from a cache).

    Args:
        last: what was encoded last per task run (read and updated here).
    """
    ident = last.ident.get(task_run_id)
    if ident is None:
        ident = last.ident[task_run_id] = _ident(task_name, task_run_id, map_index)
        old_json = state_json(old)
    elif last.state.get(task_run_id) is old:
        old_json = last.json[task_run_id]
    else:
        old_json = state_json(old)
    new_json = state_json(new)
    last.state[task_run_id] = new
    last.json[task_run_id] = new_json
    if type(timestamp) is float and timestamp - timestamp == 0.0:  # finite
        return f"[{seq},{timestamp!r},{ident},{old_json},{new_json}]"
    return f"[{seq},{_dumps(timestamp)},{ident},{old_json},{new_json}]"


def encode_chunk(rows: Sequence[str]) -> str:
    """Events encoded by :func:`encode_event` as one journal row."""
    return f"[{','.join(rows)}]"


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
