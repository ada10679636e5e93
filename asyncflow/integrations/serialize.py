"""The stable JSON form of states, events and runs, shared by every web integration.

A **state** is an object whose ``"type"`` is the state's class name, followed by its fields in
declaration order (``attrs.fields``)::

    {"type": "Success", "message": "Task run succeeded.", "result": 42,
     "context": null, "cached_inputs": null, "location": null}
    {"type": "Retrying", "message": "...", "result": "ValueError('flaky')", "context": null,
     "cached_inputs": null, "location": null,
     "start_time": "2024-05-01T12:00:00.500000+00:00", "run_count": 1}

Every state has ``type``, ``message``, ``result``, ``context``, ``cached_inputs`` and
``location`` (where its value was checkpointed, or ``null``); subclasses
add their own fields: ``start_time`` (``Scheduled``, ``Paused``, ``Resume``, ``Retrying``; an ISO
8601 string or ``null``), ``run_count`` (``Retrying``), ``loop_count`` (``Looped``),
``map_states`` (``Mapped``: a list of states) and ``cached_parameters`` /
``cached_result_expiration`` (``Cached``). Values are converted by :func:`to_json`: ``None``,
booleans, strings, integers and finite floats stay as they are; lists and tuples become lists;
dicts with string keys become objects; a state inside a value becomes its JSON; a mapping from
tasks to states (a flow state's ``result``) becomes an object keyed by task name (by slug when
two tasks share a name); any other value (an exception, a datetime in a result, a set, a custom
object, a dict with other keys) becomes its ``repr`` string.

An **event** uses the :class:`~asyncflow.events.StateChange` field names, without ``subject``
(the live ``Task`` or ``Flow`` object)::

    {"run_id": "4f1c...", "seq": 3, "timestamp": 1714564800.5, "flow_name": "prices",
     "task_name": "fetch", "task_run_id": "4f1c.../fetch-1", "map_index": 0,
     "old_state": {...}, "new_state": {...}}

A **run** is ``{"id", "flow", "state"}`` (:func:`run_summary`); its detail adds ``"tasks"``:
``{task name: state}`` (:func:`run_detail`). Over Server-Sent Events, each event is one message
``id: <seq>`` / ``event: state`` / ``data: <event JSON>``, and the stream ends with one message
``event: end`` / ``data: <run summary>`` after the flow's final transition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..events import StateChange
from ..exceptions import ParameterError, RunStateError
from ..states import State
from ..task import Task
from .runtime import InvalidParameters, RuntimeUnavailable, UnknownFlow, UnknownRun, UnknownTask

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..flow import Flow
    from .runtime import RunRecord

__all__ = (
    "to_json",
    "state_json",
    "event_json",
    "task_keys",
    "run_summary",
    "run_detail",
    "flow_json",
    "dumps",
    "sse_state",
    "sse_end",
    "SSE_PING",
    "error_status",
    "error_json",
)

#: An SSE comment line: keeps idle streams (and the proxies in between) alive.
SSE_PING = ": ping\n\n"
_EVENT_FIELDS = tuple(f.name for f in attrs.fields(StateChange) if f.name != "subject")


def task_keys(tasks: Iterable[Task]) -> dict[Task, str]:
    """The JSON key of each task: its name, or its slug where several tasks share the name."""
    tasks = list(tasks)
    seen: dict[str, int] = {}
    for t in tasks:
        seen[t.name] = seen.get(t.name, 0) + 1
    return {t: t.name if seen[t.name] == 1 else (t.slug or t.name) for t in tasks}


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data (see the module docstring for the rules)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, State):
        return state_json(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: to_json(v) for k, v in value.items()}
        if value and all(isinstance(k, Task) for k in value):
            keys = task_keys(value)
            return {keys[t]: to_json(v) for t, v in value.items()}
    return repr(value)


def state_json(state: State) -> dict[str, Any]:
    """A state as ``{"type": class name, <every field>...}``."""
    out: dict[str, Any] = {"type": type(state).__name__}
    for field in attrs.fields(type(state)):
        value = getattr(state, field.name)
        if field.name == "checkpoint":  # the Result object stays server-side: its location
            out["location"] = state.location
        elif isinstance(value, datetime):
            out[field.name] = value.isoformat()
        else:
            out[field.name] = to_json(value)
    return out


def event_json(event: StateChange) -> dict[str, Any]:
    """An event with the ``StateChange`` field names (``subject`` left out)."""
    return {
        name: state_json(getattr(event, name))
        if name in ("old_state", "new_state")
        else getattr(event, name)
        for name in _EVENT_FIELDS
    }


def run_summary(record: RunRecord) -> dict[str, Any]:
    """``{"id", "flow", "state"}`` of a run."""
    return {"id": record.id, "flow": record.flow_name, "state": state_json(record.state)}


def run_detail(record: RunRecord) -> dict[str, Any]:
    """The summary of a run plus ``"tasks"``: ``{task name: state}``."""
    states = record.task_states
    keys = task_keys(states)
    return {**run_summary(record), "tasks": {keys[t]: state_json(s) for t, s in states.items()}}


def flow_json(name: str, flow: Flow) -> dict[str, Any]:
    """A registered flow: its name, its parameters and its tasks (upstream first)."""
    params = sorted(flow.parameters(), key=lambda p: p.name)
    return {
        "name": name,
        "parameters": [
            {"name": p.name, "required": p.required, "default": to_json(p.default)} for p in params
        ],
        "tasks": list(task_keys(flow.sorted_tasks()).values()),
    }


def dumps(data: Any) -> str:
    """Compact JSON text (never with a raw newline, so it fits one SSE ``data:`` line)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def sse_state(event: StateChange) -> str:
    """One SSE message for ``event``."""
    return f"id: {event.seq}\nevent: state\ndata: {dumps(event_json(event))}\n\n"


def sse_end(record: RunRecord) -> str:
    """The SSE message that closes a run's stream."""
    return f"event: end\ndata: {dumps(run_summary(record))}\n\n"


def error_status(exc: Exception) -> int | None:
    """The HTTP status for an error of the runtime's API, or ``None`` for an unexpected one."""
    if isinstance(exc, UnknownFlow | UnknownRun | UnknownTask):
        return 404
    if isinstance(exc, ParameterError):
        return 422
    if isinstance(exc, RunStateError):
        return 409
    if isinstance(exc, RuntimeUnavailable):
        return 503
    return None


def error_json(exc: Exception) -> dict[str, Any]:
    """``{"detail": message}``, plus ``"unknown"`` and ``"missing"`` for bad parameters."""
    out: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, InvalidParameters):
        out["unknown"] = list(exc.unknown)
        out["missing"] = list(exc.missing)
    return out
