"""The stable JSON form of states, events and runs, shared by every web integration.

A **state** is an object whose ``"type"`` is the state's class name, followed by its fields in
declaration order (``attrs.fields``)::

    {"type": "Success", "message": "Task run succeeded.", "result": 42,
     "context": {}, "cached_inputs": null, "location": null}
    {"type": "Retrying", "message": "...", "result": "ValueError('flaky')", "context": {},
     "cached_inputs": null, "location": null,
     "start_time": "2024-05-01T12:00:00.500000+00:00", "run_count": 1}

Every state has ``type``, ``message``, ``result``, ``context``, ``cached_inputs`` and
``location`` (where its value was checkpointed, or ``null``); subclasses add their own fields:
``start_time`` (``Scheduled``, ``Paused``, ``Resume``, ``Retrying``; an ISO 8601 string or
``null``), ``run_count`` (``Retrying``), ``loop_count`` (``Looped``), ``map_states``
(``Mapped``: a list of states) and ``cached_parameters`` / ``cached_result_expiration`` /
``hashed_inputs`` (``Cached``). Values are converted by :func:`to_json`: ``None``, booleans,
strings, integers and finite floats stay as they are; lists and tuples become lists; dicts with
string keys become objects; a state inside a value becomes its JSON; any other value (an
exception, a datetime in a result, a set, a custom object, a dict with other keys) becomes its
``repr`` string (shortened by :mod:`reprlib`). A flow state's ``result`` (its ``{task:
state}``) is ``null``: the task states are the run's ``"tasks"``, and each one has its events.

Conversion is defensive, so that no value a run holds can break a listing or a stream: text
that UTF-8 cannot encode (a lone surrogate, as ``os.fsdecode`` makes of undecodable bytes)
has each such character replaced by U+FFFD; an integer too long to print becomes a short
description; and one value (a result, a parameter, a list of map states) whose JSON would take
more than :data:`MAX_VALUE_CHARS` characters, or nest deeper than :data:`MAX_DEPTH` levels,
becomes the marker ``{"truncated": true, "preview": "<the start of its JSON text>"}``.

An **event** uses the :class:`~asyncflow.events.StateChange` field names, without ``subject``
(the live ``Task`` or ``Flow`` object)::

    {"run_id": "4f1c...", "seq": 3, "timestamp": 1714564800.5, "flow_name": "prices",
     "task_name": "fetch", "task_run_id": "4f1c.../fetch-1", "map_index": 0,
     "old_state": {...}, "new_state": {...}}

A **run summary** (:func:`run_summary`) is ``{"id", "flow", "state": {"type", "message"},
"created", "updated", "finished", "task_counts": {state type: number of tasks},
"awaiting_approval"}`` (times in ISO 8601, ``finished`` null while the run goes on,
``awaiting_approval`` true while a task or mapped child is ``Paused``): no task states, no
results. The **run detail** (:func:`run_detail`) is the summary with the whole ``"state"``,
``"parameters"``, ``"tasks"``: ``{task name: state}``, ``"task_runs"``: ``{task name:
activity}`` where an activity is ``{"start", "end", "runs", "traceback"}`` (event timestamps,
the number of times it began running, the formatted exception of a failure) and a mapped task's
also has ``"children"``: a list of ``{"map_index", "state": brief state, "start", "end",
"runs", "traceback"}`` (a brief state is ``type``, ``message`` and, when set, ``start_time``
and ``run_count``), ``"logs"``: the last log records kept (:func:`log_json`),
``"dropped_logs"`` and ``"dropped_events"`` (how many the size limits dropped), and
``"last_seq"``: the ``seq`` of the last event these reflect (where a stream may resume). Over
Server-Sent Events, each event is one message ``id: <seq>`` / ``event: state`` / ``data:
<event JSON>``, each log record one message ``event: log`` / ``data: <log JSON>``, and the
stream ends with one message ``event: end`` / ``data: <run summary>`` after the flow's final
transition.
"""

from __future__ import annotations

import collections
import json
import math
import re
import reprlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..events import StateChange
from ..exceptions import ParameterError, RunStateError
from ..states import State
from ..task import Task
from .activity import LogEntry
from .errors import InvalidQuery, RequestRefused
from .runtime import InvalidParameters, RuntimeUnavailable, UnknownFlow, UnknownRun, UnknownTask
from .static import UnknownAsset

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..flow import Flow
    from .activity import TaskActivity
    from .runtime import RunRecord, Runtime

__all__ = (
    "MAX_VALUE_CHARS",
    "MAX_DEPTH",
    "text",
    "to_json",
    "state_json",
    "state_brief",
    "event_json",
    "task_keys",
    "run_summary",
    "run_detail",
    "log_json",
    "flow_json",
    "flows_json",
    "dumps",
    "encode",
    "sse_state",
    "sse_log",
    "sse_messages",
    "sse_end",
    "SSE_PING",
    "error_status",
    "error_json",
)

#: Characters of JSON text one value (a result, a parameter, ...) may take before it is cut.
MAX_VALUE_CHARS = 16_384
#: Levels of nesting one value may have before it is cut.
MAX_DEPTH = 32
#: An SSE comment line: keeps idle streams (and the proxies in between) alive.
SSE_PING = ": ping\n\n"
_EVENT_FIELDS = tuple(f.name for f in attrs.fields(StateChange) if f.name != "subject")
_TEXT_FIELDS = ("run_id", "flow_name", "task_name", "task_run_id")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_BITS = 4000 * 3  # under the 4300 digits that int -> str allows (sys.get_int_max_str_digits)
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 1000
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdict = 100
_repr.maxdeque = _repr.maxarray = 100
_repr.maxlevel = 4


def text(value: str) -> str:
    """``value`` with every character UTF-8 cannot encode (lone surrogates) made U+FFFD."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def _describe(value: Any) -> str:
    """A short ``repr`` of any value, whatever its ``__repr__`` does."""
    if isinstance(value, int) and value.bit_length() > _INT_BITS:
        return f"<int of {value.bit_length()} bits>"
    try:
        return text(_repr.repr(value))
    except Exception:  # a __repr__ that raises, an int too long inside a container, ...
        return f"<{type(value).__name__} object>"


class _Converter:
    """One value to JSON data, within a budget of characters and levels of nesting."""

    __slots__ = ("cut", "left")

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.cut = False

    def __call__(self, value: Any, depth: int) -> Any:
        if value is None or value is True or value is False:
            self.left -= 5
            return value
        if isinstance(value, str):
            self.left -= len(value) + 2
            return text(value)
        if isinstance(value, int) and value.bit_length() <= _INT_BITS:
            self.left -= value.bit_length() * 3 // 10 + 1  # ~ its digits
            return value
        if isinstance(value, float):
            self.left -= 24
            return value if math.isfinite(value) else repr(value)
        if depth >= MAX_DEPTH:
            self.cut = True
            return "..."
        if isinstance(value, State):
            return _state(value, self, depth + 1)
        if isinstance(value, list | tuple):
            return self._items(value, depth)
        if isinstance(value, Mapping):
            if all(isinstance(k, str) for k in value):
                return self._pairs(value, depth)
            if value and all(isinstance(k, Task) for k in value):
                return None  # a flow state's {task: state}: the run's "tasks" has them
        described = _describe(value)
        self.left -= len(described) + 2
        return described

    def _items(self, values: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        out = []
        for v in values:
            if self.left < 0:
                self.cut = True
                break
            out.append(self(v, depth + 1))
            self.left -= 1
        return out

    def _pairs(self, values: Mapping[str, Any], depth: int) -> dict[str, Any]:
        out = {}
        for k, v in values.items():
            if self.left < 0:
                self.cut = True
                break
            self.left -= len(k) + 4
            out[text(k)] = self(v, depth + 1)
        return out


def to_json(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    """``value`` as plain JSON data (see the module docstring for the rules and the caps)."""
    kind = type(value)
    if value is None or (kind in (bool, int) and abs(value) < 1 << 63):
        return value  # the common cases, spared the walk
    if not value and kind in (dict, list, tuple):
        return {} if kind is dict else []
    convert = _Converter(limit)
    out = convert(value, 0)
    if not convert.cut and convert.left >= 0:
        return out
    return {"truncated": True, "preview": dumps(out)[:limit]}


_FIELDS: dict[type[State], tuple[str, ...]] = {}


def _fields(cls: type[State]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in attrs.fields(cls))
    return names


def _state(state: State, convert: _Converter | None = None, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(state).__name__}
    for name in _fields(type(state)):
        value = getattr(state, name)
        if name == "checkpoint":  # the Result object stays server-side: its location
            out["location"] = _text_or_none(state.location)
        elif value is None:
            out[name] = None
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        elif isinstance(value, str):
            out[name] = text(value)
        elif convert is not None:
            out[name] = convert(value, depth)
        else:
            out[name] = to_json(value)
    return out


def state_json(state: State) -> dict[str, Any]:
    """A state as ``{"type": class name, <every field>...}``, each field within the caps."""
    return _state(state)


def state_brief(state: State) -> dict[str, Any]:
    """``type`` and ``message`` of a state, with ``start_time`` and ``run_count`` when set."""
    out: dict[str, Any] = {"type": type(state).__name__, "message": _text_or_none(state.message)}
    start_time = getattr(state, "start_time", None)
    if start_time is not None:
        out["start_time"] = start_time.isoformat()
    run_count = getattr(state, "run_count", None)
    if run_count is not None:
        out["run_count"] = run_count
    return out


def _text_or_none(value: str | None) -> str | None:
    return None if value is None else text(value)


def event_json(event: StateChange) -> dict[str, Any]:
    """An event with the ``StateChange`` field names (``subject`` left out)."""
    out: dict[str, Any] = {}
    for name in _EVENT_FIELDS:
        value = getattr(event, name)
        if name in ("old_state", "new_state"):
            value = _state(value)
        elif name in _TEXT_FIELDS:
            value = _text_or_none(value)
        out[name] = value
    return out


def task_keys(tasks: Iterable[Task]) -> dict[Task, str]:
    """The JSON key of each task: its name, or its slug where several tasks share the name."""
    tasks = list(tasks)
    seen = collections.Counter(t.name for t in tasks)
    return {t: text(t.name if seen[t.name] == 1 else (t.slug or t.name)) for t in tasks}


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def run_summary(record: RunRecord) -> dict[str, Any]:
    """A run without its task states or results (what ``GET /runs`` lists)."""
    counts = collections.Counter(type(s).__name__ for s in record.task_states.values())
    return {
        "id": text(record.id),
        "flow": text(record.flow_name),
        "state": state_brief(record.state),
        "created": _iso(record.created),
        "updated": _iso(record.updated),
        "finished": _iso(record.finished),
        "task_counts": dict(sorted(counts.items())),
        "awaiting_approval": record.activity.awaiting_approval,
    }


def run_detail(record: RunRecord) -> dict[str, Any]:
    """The summary of a run with its whole state, its parameters, its tasks' states, their
    activity and its log records."""
    states = record.task_states
    keys = task_keys(states)
    activity = record.activity
    task_runs: dict[str, Any] = {}
    for run_id, one in activity.tasks.items():
        if one.map_index is None:
            entry = task_runs[keys[one.task]] = _activity_json(one)
            children = activity.children.get(run_id)
            if children is not None:
                entry["children"] = [
                    {"map_index": c.map_index, "state": state_brief(c.state), **_activity_json(c)}
                    for c in sorted(children, key=_by_index)
                ]
    return {
        **run_summary(record),
        "state": state_json(record.state),
        "parameters": to_json(record.parameters),
        "tasks": {keys[t]: state_json(s) for t, s in states.items()},
        "task_runs": task_runs,
        "logs": [log_json(e, record, keys) for e in activity.logs],
        "dropped_logs": activity.dropped_logs,
        "dropped_events": record.dropped_events,
        "last_seq": record.last_seq,
    }


def _by_index(activity: TaskActivity) -> int:
    return activity.map_index or 0


def _activity_json(one: TaskActivity) -> dict[str, Any]:
    return {
        "start": one.start,
        "end": one.end,
        "runs": one.runs,
        "traceback": _text_or_none(one.traceback),
    }


def log_json(entry: LogEntry, record: RunRecord, keys: Mapping[Task, str]) -> dict[str, Any]:
    """A log record: ``{"n", "time", "level", "task", "map_index", "message"}``.

    ``task`` is the task's JSON key (``None`` for a record of the flow run itself); ``keys``
    comes from :func:`task_keys` over the run's tasks.
    """
    one = record.activity.tasks.get(entry.task_run_id) if entry.task_run_id else None
    return {
        "n": entry.n,
        "time": entry.time,
        "level": entry.level,
        "task": keys.get(one.task) if one is not None else None,
        "map_index": one.map_index if one is not None else None,
        "message": text(entry.message),
    }


def flow_json(name: str, flow: Flow, next_run: datetime | None = None) -> dict[str, Any]:
    """A registered flow: its name, parameters, tasks (upstream first), edges and next run.

    Each edge is ``{"from": upstream task, "to": downstream task, "mapped": bool}``;
    ``next_run`` is the next start on the flow's schedule as ISO 8601, or ``null``.
    """
    params = sorted(flow.parameters(), key=lambda p: p.name)
    keys = task_keys(flow.sorted_tasks())
    order = {t: i for i, t in enumerate(keys)}
    edges = sorted(flow.edges, key=lambda e: (order[e.upstream_task], order[e.downstream_task]))
    return {
        "name": text(name),
        "parameters": [
            {"name": text(p.name), "required": p.required, "default": to_json(p.default)}
            for p in params
        ],
        "tasks": list(keys.values()),
        "edges": [
            {"from": keys[e.upstream_task], "to": keys[e.downstream_task], "mapped": e.mapped}
            for e in edges
        ],
        "next_run": next_run.isoformat() if next_run is not None else None,
    }


def flows_json(runtime: Runtime) -> list[dict[str, Any]]:
    """``GET /flows``: every flow of ``runtime``, with its next scheduled run."""
    return [flow_json(n, f, runtime.next_run(n)) for n, f in runtime.flows.items()]


def dumps(data: Any) -> str:
    """Compact JSON text (never with a raw newline, so it fits one SSE ``data:`` line)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode(data: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes; text made elsewhere that UTF-8 cannot encode becomes "?"."""
    return dumps(data).encode("utf-8", "replace")


def sse_state(event: StateChange) -> str:
    """One SSE message for ``event``."""
    return f"id: {event.seq}\nevent: state\ndata: {dumps(event_json(event))}\n\n"


def sse_log(entry: LogEntry, record: RunRecord, keys: Mapping[Task, str]) -> str:
    """One SSE message for a log record of ``record``'s run."""
    return f"event: log\ndata: {dumps(log_json(entry, record, keys))}\n\n"


def sse_messages(
    batch: Iterable[StateChange | LogEntry], record: RunRecord, keys: Mapping[Task, str]
) -> str:
    """The SSE messages of a batch from :meth:`RunRecord.follow_with_logs`, as one text."""
    return "".join(
        sse_log(item, record, keys) if isinstance(item, LogEntry) else sse_state(item)
        for item in batch
    )


def sse_end(record: RunRecord) -> str:
    """The SSE message that closes a run's stream."""
    return f"event: end\ndata: {dumps(run_summary(record))}\n\n"


def error_status(exc: Exception) -> int | None:
    """The HTTP status for an error of the runtime's API, or ``None`` for an unexpected one."""
    if isinstance(exc, RequestRefused):
        return exc.status
    if isinstance(exc, UnknownFlow | UnknownRun | UnknownTask | UnknownAsset):
        return 404
    if isinstance(exc, ParameterError | InvalidQuery):
        return 422
    if isinstance(exc, RunStateError):
        return 409
    if isinstance(exc, RuntimeUnavailable):
        return 503
    return None


def error_json(exc: Exception) -> dict[str, Any]:
    """``{"detail": message}`` and the error's named fields.

    Bad parameters add ``"unknown"`` and ``"missing"`` (lists of names); a bad query argument
    adds ``"field"`` (its name).
    """
    out: dict[str, Any] = {"detail": text(str(exc))}
    if isinstance(exc, InvalidParameters):
        out["unknown"] = [text(n) for n in exc.unknown]
        out["missing"] = [text(n) for n in exc.missing]
    elif isinstance(exc, InvalidQuery):
        out["field"] = exc.field
    return out
