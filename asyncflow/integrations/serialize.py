"""The stable JSON form of states, events and runs, shared by every web integration.

A **state** is an object whose ``"type"`` is the state's class name, followed by its fields in
declaration order (``attrs.fields``)::

    {"type": "Success", "message": "Task run succeeded.", "result": 42,
     "context": {}, "cached_inputs": null, "location": null}
    {"type": "Retrying", "message": "...", "result": "ValueError('flaky')", "context": {},
     "cached_inputs": null, "location": null,
     "start_time": "2024-05-01T12:00:00.500000+00:00", "run_count": 1}

Every state has ``type``, ``message``, ``result``, ``context``, ``cached_inputs`` and ``location``
(where its value was checkpointed, or ``null``); subclasses add their own fields: ``start_time``
(``Scheduled``, ``Paused``, ``Resume``, ``Retrying``; an ISO 8601 string or ``null``), ``run_count``
(``Retrying``), ``loop_count`` (``Looped``), ``map_states`` (``Mapped``: a list of states) and
``cached_parameters`` / ``cached_result_expiration`` / ``hashed_inputs`` (``Cached``). Values are
converted by :func:`to_json`: ``None``, booleans, strings, integers and finite floats stay as they
are; lists and tuples become lists; dicts with string keys become objects; a state inside a value
becomes its JSON; a mapping from tasks to states (a flow state's ``result``) becomes an object keyed
by task name (by slug when two tasks share a name); any other value (an exception, a datetime in a
result, a set, a custom object, a dict with other keys) becomes its ``repr`` string.

An **event** uses the :class:`~asyncflow.events.StateChange` field names, without ``subject``
(the live ``Task`` or ``Flow`` object)::

    {"run_id": "4f1c...", "seq": 3, "timestamp": 1714564800.5, "flow_name": "prices",
     "task_name": "fetch", "task_run_id": "4f1c.../fetch-1", "map_index": 0,
     "old_state": {...}, "new_state": {...}}

A **run** is ``{"id", "flow", "state", "created", "finished", "awaiting_approval"}``
(:func:`run_summary`; times in ISO 8601, ``finished`` null while it goes on,
``awaiting_approval`` true while a task or mapped child is ``Paused``); its detail
(:func:`run_detail`) adds ``"tasks"``: ``{task name: state}``, ``"task_runs"``: ``{task name:
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

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..events import StateChange
from ..exceptions import ParameterError, RunStateError
from ..states import State
from ..task import Task
from .activity import LogEntry
from .runtime import InvalidParameters, RuntimeUnavailable, UnknownFlow, UnknownRun, UnknownTask
from .static import UnknownAsset

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..flow import Flow
    from .activity import TaskActivity
    from .runtime import RunRecord, Runtime

__all__ = (
    "to_json",
    "state_json",
    "event_json",
    "task_keys",
    "run_summary",
    "run_detail",
    "state_brief",
    "log_json",
    "flow_json",
    "flows_json",
    "dumps",
    "sse_state",
    "sse_log",
    "sse_messages",
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


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def run_summary(record: RunRecord) -> dict[str, Any]:
    """``{"id", "flow", "state", "created", "finished", "awaiting_approval"}`` of a run."""
    return {
        "id": record.id,
        "flow": record.flow_name,
        "state": state_json(record.state),
        "created": _iso(record.created),
        "finished": _iso(record.finished),
        "awaiting_approval": record.activity.awaiting_approval,
    }


def run_detail(record: RunRecord) -> dict[str, Any]:
    """The summary of a run plus its tasks' states, their activity and its log records."""
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
    return {"start": one.start, "end": one.end, "runs": one.runs, "traceback": one.traceback}


def state_brief(state: State) -> dict[str, Any]:
    """``type`` and ``message`` of a state, with ``start_time`` and ``run_count`` when set."""
    out: dict[str, Any] = {"type": type(state).__name__, "message": state.message}
    start_time = getattr(state, "start_time", None)
    if start_time is not None:
        out["start_time"] = start_time.isoformat()
    run_count = getattr(state, "run_count", None)
    if run_count is not None:
        out["run_count"] = run_count
    return out


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
        "message": entry.message,
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
        "name": name,
        "parameters": [
            {"name": p.name, "required": p.required, "default": to_json(p.default)} for p in params
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
    if isinstance(exc, UnknownFlow | UnknownRun | UnknownTask | UnknownAsset):
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
